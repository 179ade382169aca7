//! Behaviour of the RocksDB store: LWW, stamping, scans, durability policies and bad data dirs.

use proptest::prelude::*;
use vergent_hlc::Timestamp;
use vergent_storage::{Applied, Error, FsyncPolicy, Mutation, Record, Store, StoreOptions};
use vergent_types::{NodeId, Version};

fn v(hlc: u64, origin: &str) -> Version {
    Version::new(
        Timestamp::from_u64(hlc),
        NodeId::new(origin).expect("valid id"),
    )
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path(), &StoreOptions::default()).expect("open store")
}

fn put(value: &str) -> Mutation {
    Mutation::Put {
        value: value.as_bytes().to_vec(),
        ttl_ms: None,
    }
}

/// A stamp function that always stamps `version` (tests pick it).
fn stamp_as(
    version: Version,
) -> impl FnOnce(Option<&Version>) -> Result<Version, vergent_storage::StampError> {
    move |_| Ok(version)
}

#[test]
fn put_get_delete_round_trip_with_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let w = store
        .write(b"k", put("v1"), stamp_as(v(10, "a")))
        .expect("put");
    assert_eq!(w.previous, None);
    assert_eq!(store.get(b"k").expect("get"), Some(w.record.clone()));
    let d = store
        .write(b"k", Mutation::Delete, stamp_as(v(11, "a")))
        .expect("delete");
    assert_eq!(d.previous, Some(w.record));
    assert!(
        store
            .get(b"k")
            .expect("get")
            .expect("tombstone kept")
            .is_tombstone()
    );
    assert_eq!(store.get(b"missing").expect("get"), None);
}

#[test]
fn stamp_function_sees_the_stored_version_and_a_stale_stamp_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .write(b"k", put("v1"), stamp_as(v(10, "b")))
        .expect("put");
    let mut seen = None;
    store
        .write(b"k", put("v2"), |stored| {
            seen = stored.cloned();
            Ok(v(10, "c"))
        })
        .expect("put above");
    assert_eq!(seen, Some(v(10, "b")));
    let err = store
        .write(b"k", put("v3"), stamp_as(v(9, "z")))
        .expect_err("stale stamp refused");
    assert!(matches!(err, Error::StaleStamp { .. }), "{err}");
    assert_eq!(
        store.get(b"k").expect("get").and_then(|r| r.value),
        Some(b"v2".to_vec())
    );
}

#[test]
fn apply_keeps_the_greater_version_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let newer = Record::value(v(20, "a"), b"new".to_vec(), None);
    let older = Record::value(v(10, "z"), b"old".to_vec(), None);
    assert!(matches!(
        store.apply(b"k", newer.clone()).expect("apply"),
        Applied::Stored { .. }
    ));
    assert_eq!(store.apply(b"k", older).expect("apply"), Applied::NotNewer);
    assert_eq!(
        store.apply(b"k", newer.clone()).expect("apply"),
        Applied::NotNewer
    );
    assert_eq!(store.get(b"k").expect("get"), Some(newer));
}

#[test]
fn scan_returns_prefix_in_key_order_with_paging_and_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    for (i, k) in ["a/1", "a/2", "a/3", "b/1", "a/0"].iter().enumerate() {
        store
            .write(k.as_bytes(), put(k), stamp_as(v(i as u64 + 1, "n")))
            .expect("put");
    }
    store
        .write(b"a/2", Mutation::Delete, stamp_as(v(100, "n")))
        .expect("delete");
    let live = |r: &Record| !r.is_tombstone();
    let keys = |rows: Vec<(Vec<u8>, Record)>| -> Vec<String> {
        rows.into_iter()
            .map(|(k, _)| String::from_utf8(k).expect("utf8"))
            .collect()
    };
    assert_eq!(
        keys(store.scan(b"a/", None, 10, live).expect("scan")),
        ["a/0", "a/1", "a/3"]
    );
    assert_eq!(
        keys(store.scan(b"a/", None, 2, live).expect("scan")),
        ["a/0", "a/1"]
    );
    assert_eq!(
        keys(store.scan(b"a/", Some(b"a/1"), 10, live).expect("scan")),
        ["a/3"]
    );
    assert_eq!(
        keys(store.scan(b"", None, 10, |_| true).expect("scan")).len(),
        5
    );
}

#[test]
fn live_key_count_follows_puts_deletes_and_replicated_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .write(b"a", put("1"), stamp_as(v(1, "n")))
        .expect("put");
    store
        .write(b"b", put("1"), stamp_as(v(2, "n")))
        .expect("put");
    store
        .write(b"a", put("2"), stamp_as(v(3, "n")))
        .expect("overwrite");
    assert_eq!(store.live_keys().expect("count"), 2);
    store
        .write(b"a", Mutation::Delete, stamp_as(v(4, "n")))
        .expect("delete");
    store
        .write(b"zz", Mutation::Delete, stamp_as(v(5, "n")))
        .expect("delete of absent key");
    assert_eq!(store.live_keys().expect("count"), 1);
    store
        .apply(b"c", Record::value(v(6, "m"), b"x".to_vec(), None))
        .expect("apply");
    assert_eq!(store.live_keys().expect("count"), 2);
    drop(store);
    let store = open(&dir);
    assert_eq!(store.live_keys().expect("count persists"), 2);
}

#[test]
fn ttl_sets_an_expiry_relative_to_the_write_hlc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let hlc = Timestamp::new(1_000_000, 0);
    let w = store
        .write(
            b"k",
            Mutation::Put {
                value: b"v".to_vec(),
                ttl_ms: Some(500),
            },
            stamp_as(Version::new(hlc, NodeId::new("n").expect("valid"))),
        )
        .expect("put");
    assert_eq!(w.record.expires_at_ms, Some(1_000_500));
    assert_eq!(w.record.live_value(1_000_499), Some(&b"v"[..]));
    assert_eq!(w.record.live_value(1_000_500), None);
}

#[test]
fn every_fsync_policy_persists_acknowledged_writes_across_reopen() {
    for policy in [FsyncPolicy::Group, FsyncPolicy::PerWrite, FsyncPolicy::Off] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = StoreOptions {
            fsync: policy,
            ..StoreOptions::default()
        };
        {
            let store = Store::open(dir.path(), &opts).expect("open");
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let store = &store;
                    s.spawn(move || {
                        for i in 0..50u64 {
                            let key = format!("{t}/{i}");
                            store
                                .write(key.as_bytes(), put("x"), stamp_as(v(i + 1, "n")))
                                .expect("put");
                        }
                    });
                }
            });
        }
        let store = Store::open(dir.path(), &opts).expect("reopen");
        assert_eq!(store.live_keys().expect("count"), 200, "policy {policy}");
        assert_eq!(
            store.scan(b"", None, 1000, |_| true).expect("scan").len(),
            200
        );
    }
}

#[test]
fn a_second_open_of_the_same_dir_is_refused_as_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = open(&dir);
    let err = Store::open(dir.path(), &StoreOptions::default()).expect_err("second open");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}

#[test]
fn a_damaged_data_dir_is_reported_not_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(&dir));
    std::fs::write(dir.path().join("CURRENT"), b"garbage-manifest-name\n").expect("damage");
    let err = Store::open(dir.path(), &StoreOptions::default()).expect_err("damaged dir");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::CorruptDir { .. } | Error::Engine(_)),
        "unexpected error: {msg}"
    );
    assert!(
        msg.contains(&dir.path().display().to_string()) || msg.contains("MANIFEST"),
        "{msg}"
    );
}

#[test]
fn meta_entries_round_trip_and_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        assert_eq!(store.get_meta("node_id").expect("meta"), None);
        store.put_meta("node_id", b"n-1").expect("put meta");
    }
    let store = open(&dir);
    assert_eq!(
        store.get_meta("node_id").expect("meta"),
        Some(b"n-1".to_vec())
    );
}

#[test]
fn apply_batch_with_repeated_keys_keeps_the_greatest_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let out = store
        .apply_batch(vec![
            (b"k".to_vec(), Record::value(v(5, "a"), b"5".to_vec(), None)),
            (b"k".to_vec(), Record::value(v(3, "a"), b"3".to_vec(), None)),
            (b"k".to_vec(), Record::value(v(7, "a"), b"7".to_vec(), None)),
        ])
        .expect("batch");
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Applied::Stored { .. }))
            .count(),
        2
    );
    assert_eq!(
        store.get(b"k").expect("get").and_then(|r| r.value),
        Some(b"7".to_vec())
    );
    assert_eq!(store.live_keys().expect("count"), 1);
}

fn arb_versions() -> impl Strategy<Value = Vec<(u8, Record)>> {
    proptest::collection::vec(
        (
            0u8..4,
            0u64..6,
            prop_oneof![Just("a"), Just("b")],
            any::<bool>(),
        ),
        1..12,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(key, hlc, origin, tomb)| {
                let version = v(hlc, origin);
                // Equal versions must carry equal content, as they do in the
                // system (a version is stamped once); derive it from the version.
                let rec = if tomb {
                    Record::tombstone(version)
                } else {
                    Record::value(version, format!("{hlc}{origin}").into_bytes(), None)
                };
                (key, rec)
            })
            .collect()
    })
}

fn dump(store: &Store) -> Vec<(Vec<u8>, Record)> {
    store.scan(b"", None, usize::MAX, |_| true).expect("scan")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_permutation_of_the_same_versions_gives_identical_state(
        versions in arb_versions(),
        seed in any::<u64>(),
    ) {
        // Equal versions with different tombstone flags cannot exist in the
        // system; keep one record per (key, version).
        let mut uniq: Vec<(u8, Record)> = Vec::new();
        for (k, r) in versions {
            if !uniq.iter().any(|(k2, r2)| *k2 == k && r2.version == r.version) {
                uniq.push((k, r));
            }
        }
        let mut shuffled = uniq.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let (d1, d2) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let (s1, s2) = (open(&d1), open(&d2));
        for (k, r) in &uniq { s1.apply(&[*k], r.clone()).expect("apply"); }
        for (k, r) in &shuffled { s2.apply(&[*k], r.clone()).expect("apply"); }
        // Applying everything again changes nothing (idempotence).
        for (k, r) in &uniq { s2.apply(&[*k], r.clone()).expect("apply"); }
        prop_assert_eq!(dump(&s1), dump(&s2));
        prop_assert_eq!(s1.live_keys().expect("count"), s2.live_keys().expect("count"));
        // Same state, same digest, whatever the arrival order.
        prop_assert!(s1.digest() == s2.digest());
        prop_assert!(s1.digest() == s1.recompute_digest().expect("recompute"));
    }
}

#[test]
fn the_maintained_digest_equals_a_full_recompute_after_writes_applies_and_purges_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        for i in 0..300u64 {
            let key = format!("k{}", i % 97);
            store
                .write(key.as_bytes(), put("x"), |prev| {
                    Ok(v(prev.map_or(1, |p| p.hlc.as_u64() + 1), "a"))
                })
                .expect("write");
            if i % 5 == 0 {
                store
                    .apply(key.as_bytes(), Record::tombstone(v(10_000 + i, "b")))
                    .expect("apply");
            }
        }
        let tomb = store.get(b"k4").expect("get").expect("stored");
        assert!(tomb.is_tombstone());
        assert!(store.purge(b"k4", &tomb.version).expect("purge"));
        assert_eq!(store.get(b"k4").expect("get"), None);
        assert_eq!(store.digest(), store.recompute_digest().expect("recompute"));
        assert!(store.digest().iter().any(|&h| h != 0));
    }
    let store = open(&dir);
    assert_eq!(store.digest(), store.recompute_digest().expect("recompute"));
}

#[test]
fn leaf_versions_list_every_key_of_a_bucket_with_its_current_version() {
    use vergent_types::digest::leaf_of;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    for i in 0..50u64 {
        store
            .apply(
                format!("k{i}").as_bytes(),
                Record::value(v(i + 1, "a"), b"x".to_vec(), None),
            )
            .expect("apply");
    }
    store
        .apply(b"k7", Record::tombstone(v(99, "b")))
        .expect("newer tombstone");
    let leaf = leaf_of(b"k7");
    let listed = store.leaf_versions(&[leaf]).expect("list").remove(0);
    let expect: Vec<(Vec<u8>, Version)> = (0..50u64)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|k| leaf_of(k) == leaf)
        .map(|k| {
            let version = store.get(&k).expect("get").expect("stored").version;
            (k, version)
        })
        .collect();
    let listed: Vec<(Vec<u8>, Version)> = listed
        .into_iter()
        .map(|e| {
            assert_eq!(e.tombstone, e.key == b"k7", "tombstone flag of {:?}", e.key);
            (e.key, e.version)
        })
        .collect();
    assert!(listed.contains(&(b"k7".to_vec(), v(99, "b"))));
    let mut sorted = expect.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
}

#[test]
fn purge_removes_only_the_exact_version_it_was_asked_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .apply(b"k", Record::tombstone(v(5, "a")))
        .expect("apply");
    store
        .apply(b"k", Record::value(v(6, "a"), b"back".to_vec(), None))
        .expect("newer value");
    // The tombstone the sweep saw is gone: the newer value must stay.
    assert!(!store.purge(b"k", &v(5, "a")).expect("purge"));
    assert!(store.get(b"k").expect("get").is_some());
    assert!(!store.purge(b"missing", &v(5, "a")).expect("purge"));
    assert!(store.is_empty().is_ok_and(|e| !e));
}

#[test]
fn the_observer_sees_every_committed_record_once_with_its_origin_kind() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(&dir);
    type Seen = Vec<(Vec<u8>, u64, bool)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = seen.clone();
    store.set_observer(Box::new(move |key, rec, local| {
        sink.lock()
            .expect("lock")
            .push((key.to_vec(), rec.version.hlc.as_u64(), local));
    }));
    store
        .write(b"a", put("1"), stamp_as(v(1, "n")))
        .expect("put");
    store
        .write(b"a", Mutation::Delete, stamp_as(v(2, "n")))
        .expect("delete");
    store
        .apply(b"b", Record::value(v(3, "m"), b"x".to_vec(), None))
        .expect("apply");
    // Not newer: nothing committed, nothing observed.
    store
        .apply(b"b", Record::value(v(1, "m"), b"old".to_vec(), None))
        .expect("apply");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![
            (b"a".to_vec(), 1, true),
            (b"a".to_vec(), 2, true),
            (b"b".to_vec(), 3, false)
        ]
    );
}

#[test]
fn local_writes_enter_the_replication_log_in_commit_order_and_applies_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.last_log_seq(), 0);
    store
        .write(b"a", put("1"), stamp_as(v(1, "n")))
        .expect("put");
    store
        .write(b"b", put("2"), stamp_as(v(2, "n")))
        .expect("put");
    store
        .apply(b"r", Record::value(v(3, "m"), b"x".to_vec(), None))
        .expect("replicated apply is not re-logged");
    store
        .write(b"a", Mutation::Delete, stamp_as(v(4, "n")))
        .expect("delete");
    let log = store.read_log(0, 100, usize::MAX).expect("log");
    let seen: Vec<(u64, &[u8], u64)> = log
        .iter()
        .map(|e| (e.seq, e.key.as_slice(), e.record.version.hlc.as_u64()))
        .collect();
    assert_eq!(
        seen,
        vec![(1, &b"a"[..], 1), (2, &b"b"[..], 2), (3, &b"a"[..], 4)]
    );
    assert!(log[2].record.is_tombstone());
    assert_eq!(store.read_log(2, 100, usize::MAX).expect("log").len(), 1);
    assert_eq!(store.read_log(0, 2, usize::MAX).expect("log").len(), 2);
    assert_eq!(
        store.read_log(0, 100, 1).expect("log").len(),
        1,
        "at least one entry"
    );
}

#[test]
fn truncation_keeps_the_newest_entry_so_sequence_numbers_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        for i in 1..=5u64 {
            store
                .write(format!("k{i}").as_bytes(), put("x"), stamp_as(v(i, "n")))
                .expect("put");
        }
        store.truncate_log(100).expect("truncate");
        assert_eq!(store.first_log_seq().expect("first"), Some(5));
    }
    let store = open(&dir);
    assert_eq!(store.last_log_seq(), 5);
    store
        .write(b"k6", put("x"), stamp_as(v(6, "n")))
        .expect("put");
    let log = store.read_log(5, 10, usize::MAX).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].seq, 6);
}

#[test]
fn concurrent_writers_never_leave_a_gap_below_a_visible_log_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &store;
            s.spawn(move || {
                for i in 0..100u64 {
                    let key = format!("{t}/{i}");
                    store
                        .write(key.as_bytes(), put("x"), stamp_as(v(t * 1000 + i + 1, "n")))
                        .expect("put");
                }
            });
        }
        // A reader polling the log while writers run only ever sees a
        // contiguous prefix 1..=n.
        let store = &store;
        s.spawn(move || {
            for _ in 0..200 {
                let log = store.read_log(0, usize::MAX, usize::MAX).expect("log");
                for (i, e) in log.iter().enumerate() {
                    assert_eq!(e.seq, i as u64 + 1, "gap in the log");
                }
            }
        });
    });
    assert_eq!(store.last_log_seq(), 400);
}

#[test]
fn metadata_written_with_an_applied_batch_persists_even_when_no_record_is_newer() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        store
            .apply(b"k", Record::value(v(5, "a"), b"x".to_vec(), None))
            .expect("apply");
        let stale = vec![(
            b"k".to_vec(),
            Record::value(v(4, "a"), b"old".to_vec(), None),
        )];
        let out = store
            .apply_batch_with_meta(stale, &[("cursor", b"7".as_slice())])
            .expect("apply with meta");
        assert_eq!(out, vec![Applied::NotNewer]);
        store
            .put_meta_relaxed("relaxed", b"1")
            .expect("relaxed meta");
    }
    let store = open(&dir);
    assert_eq!(store.get_meta("cursor").expect("meta"), Some(b"7".to_vec()));
    assert_eq!(
        store.get_meta("relaxed").expect("meta"),
        Some(b"1".to_vec())
    );
    assert_eq!(
        store.get(b"k").expect("get").expect("kept").version,
        v(5, "a")
    );
}

#[test]
fn a_write_group_logs_each_mutation_in_order_and_chains_versions_of_a_repeated_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .write(b"a", put("0"), stamp_as(v(1, "n")))
        .expect("put");
    let mut next = 10;
    let mut seen_previous = Vec::new();
    let results = store
        .write_many(
            vec![
                (b"a".to_vec(), put("1")),
                (b"b".to_vec(), put("2")),
                (b"a".to_vec(), Mutation::Delete),
            ],
            |stored| {
                seen_previous.push(stored.map(|s| s.hlc.as_u64()));
                next += 1;
                Ok(v(next, "n"))
            },
        )
        .expect("group written");
    // The second write of `a` sees the first one of the same group.
    assert_eq!(seen_previous, vec![Some(1), None, Some(11)]);
    let versions: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().expect("written").record.version.hlc.as_u64())
        .collect();
    assert_eq!(versions, vec![11, 12, 13]);
    let prev_of_delete = results[2].as_ref().expect("written").previous.clone();
    assert_eq!(prev_of_delete.map(|p| p.version.hlc.as_u64()), Some(11));
    assert!(
        store
            .get(b"a")
            .expect("get")
            .expect("tombstone")
            .is_tombstone()
    );
    let log: Vec<(u64, Vec<u8>, u64)> = store
        .read_log(0, 100, usize::MAX)
        .expect("log")
        .into_iter()
        .map(|e| (e.seq, e.key, e.record.version.hlc.as_u64()))
        .collect();
    assert_eq!(
        log,
        vec![
            (1, b"a".to_vec(), 1),
            (2, b"a".to_vec(), 11),
            (3, b"b".to_vec(), 12),
            (4, b"a".to_vec(), 13)
        ]
    );
    let seqs: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().expect("written").seq)
        .collect();
    assert_eq!(seqs, vec![2, 3, 4], "what a write at QUORUM waits on");
    assert_eq!(store.recompute_digest().expect("recompute"), store.digest());
}

#[test]
fn a_failed_stamp_skips_only_its_own_mutation_in_a_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let mut calls = 0;
    let results = store
        .write_many(
            vec![
                (b"a".to_vec(), put("1")),
                (b"b".to_vec(), put("2")),
                (b"c".to_vec(), put("3")),
            ],
            |_| {
                calls += 1;
                if calls == 2 {
                    Err("clock refused".into())
                } else {
                    Ok(v(calls, "n"))
                }
            },
        )
        .expect("group written");
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(Error::Stamp(_))));
    assert!(results[2].is_ok());
    assert!(store.get(b"b").expect("get").is_none());
    let keys: Vec<Vec<u8>> = store
        .read_log(0, 100, usize::MAX)
        .expect("log")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys,
        vec![b"a".to_vec(), b"c".to_vec()],
        "no gap in the log"
    );
    assert_eq!(store.last_log_seq(), 2);
    let seqs: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|w| w.seq))
        .collect();
    assert_eq!(
        seqs,
        vec![1, 2],
        "each written mutation knows its log entry"
    );
}

#[test]
fn a_log_entry_and_its_change_event_are_visible_only_once_the_sync_covering_them_is_done() {
    // Peers must never be shipped an entry a power loss could take back (the
    // origin would reuse its sequence number and peers would skip the new
    // write as a duplicate), and watchers must not hear of it either.
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(&dir);
    assert_eq!(store.fsync_policy(), FsyncPolicy::Group);
    let (entered, syncing) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    store.set_sync_hook(Box::new(move || {
        let _ = entered.send(());
        // Holds the sync open until the test has looked (or gave up).
        let _ = released
            .lock()
            .expect("hook lock")
            .recv_timeout(Duration::from_secs(30));
    }));
    let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = seen.clone();
    store.set_observer(Box::new(move |key, _, _| {
        sink.lock().expect("observer lock").push(key.to_vec());
    }));
    let store = Arc::new(store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || store.write(b"k", put("v"), stamp_as(v(5, "a"))))
    };
    syncing
        .recv_timeout(Duration::from_secs(30))
        .expect("the write reaches its sync");
    let shipped = store.read_log(0, 100, usize::MAX).expect("log");
    let announced = seen.lock().expect("observer lock").clone();
    release.send(()).expect("release the sync");
    writer.join().expect("writer thread").expect("write");
    assert!(
        shipped.is_empty(),
        "log entries readable before their sync: {shipped:?}"
    );
    assert!(
        announced.is_empty(),
        "watchers told of a write before its sync: {announced:?}"
    );
    assert_eq!(store.read_log(0, 100, usize::MAX).expect("log").len(), 1);
    assert_eq!(store.durable_log_seq(), 1);
    assert_eq!(*seen.lock().expect("observer lock"), vec![b"k".to_vec()]);
}

#[test]
fn a_scan_page_stops_at_its_bounds_and_says_where_to_resume() {
    use vergent_storage::ScanBounds;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    for i in 0..10u64 {
        let key = format!("t{i}");
        store
            .write(key.as_bytes(), Mutation::Delete, stamp_as(v(i + 1, "a")))
            .expect("delete");
    }
    store
        .write(b"tz", put("live"), stamp_as(v(100, "a")))
        .expect("put");
    let live = |r: &Record| !r.is_tombstone();
    // A long run of tombstones costs a bounded number of records per page.
    let bounds = ScanBounds {
        limit: 100,
        max_bytes: 1 << 20,
        max_visited: 4,
    };
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0;
    let mut rows = Vec::new();
    loop {
        let page = store
            .scan_page(b"t", after.as_deref(), bounds, live)
            .expect("scan");
        pages += 1;
        rows.extend(page.rows);
        match page.resume_after {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    assert_eq!(pages, 3, "11 records, 4 looked at per page");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, b"tz".to_vec());
    // The byte bound: at least one row, then stop once it is reached.
    for i in 0..5u64 {
        store
            .write(
                format!("v{i}").as_bytes(),
                put(&"x".repeat(100)),
                stamp_as(v(200 + i, "a")),
            )
            .expect("put");
    }
    let page = store
        .scan_page(
            b"v",
            None,
            ScanBounds {
                limit: 100,
                max_bytes: 150,
                max_visited: 100,
            },
            live,
        )
        .expect("scan");
    assert_eq!(page.rows.len(), 2);
    assert_eq!(page.resume_after, Some(b"v1".to_vec()));
}

#[test]
fn consensus_state_round_trips_survives_a_reopen_and_stays_out_of_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        let digest = store.digest();
        store
            .put_paxos_state(b"k", b"promised 7")
            .expect("put state");
        assert_eq!(
            store.paxos_state(b"k").expect("read"),
            Some(b"promised 7".to_vec())
        );
        // Not a record: no digest change, nothing to scan or repair.
        assert_eq!(store.digest(), digest);
        assert_eq!(store.get(b"k").expect("get"), None);
        assert!(store.is_empty().expect("is_empty"));
    }
    let store = open(&dir);
    assert_eq!(
        store.paxos_state(b"k").expect("read after reopen"),
        Some(b"promised 7".to_vec())
    );
    assert_eq!(store.paxos_state(b"other").expect("read"), None);
}

#[test]
fn a_decided_value_and_the_consensus_state_are_written_together_and_lww_still_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store.put_paxos_state(b"k", b"accepted").expect("put state");
    let applied = store
        .commit_paxos(
            b"k",
            Record::value(v(20, "a"), b"chosen".to_vec(), None),
            Some(b"committed 20"),
        )
        .expect("commit");
    assert!(matches!(applied, Applied::Stored { previous: None }));
    assert_eq!(
        store.get(b"k").expect("get").map(|r| r.value),
        Some(Some(b"chosen".to_vec()))
    );
    assert_eq!(
        store.paxos_state(b"k").expect("state"),
        Some(b"committed 20".to_vec())
    );
    // An older decided value loses to the stored record, but the state
    // still moves: the commit happened.
    let applied = store
        .commit_paxos(
            b"k",
            Record::value(v(10, "a"), b"older".to_vec(), None),
            None,
        )
        .expect("commit older");
    assert_eq!(applied, Applied::NotNewer);
    assert_eq!(
        store.get(b"k").expect("get").map(|r| r.value),
        Some(Some(b"chosen".to_vec()))
    );
    assert_eq!(store.paxos_state(b"k").expect("state"), None);
    assert_eq!(store.digest(), store.recompute_digest().expect("recompute"));
}

#[test]
fn consensus_state_is_synced_even_when_the_fsync_policy_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(
        dir.path(),
        &StoreOptions {
            fsync: FsyncPolicy::Off,
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let syncs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = syncs.clone();
    store.set_sync_hook(Box::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    store
        .write(b"eventual", put("x"), stamp_as(v(1, "a")))
        .expect("eventual write");
    assert_eq!(
        syncs.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "off never syncs a write"
    );
    store.put_paxos_state(b"k", b"promise").expect("put state");
    assert_eq!(
        syncs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a promise is synced"
    );
    store
        .commit_paxos(b"k", Record::value(v(5, "a"), b"v".to_vec(), None), None)
        .expect("commit");
    assert_eq!(
        syncs.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "a commit is synced"
    );
}

#[test]
fn consensus_states_are_listed_in_key_order_from_a_resume_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    for k in ["c", "a", "b", "d"] {
        store
            .put_paxos_state(k.as_bytes(), k.as_bytes())
            .expect("put");
    }
    let first = store.paxos_states(None, 2).expect("list");
    let keys: Vec<&[u8]> = first.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"a".as_slice(), b"b"]);
    let rest = store.paxos_states(Some(b"b"), 10).expect("list");
    let keys: Vec<&[u8]> = rest.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"c".as_slice(), b"d"]);
}

#[test]
fn group_commit_counts_each_wal_sync_and_its_time_and_engine_stats_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    assert_eq!(store.fsync_policy(), FsyncPolicy::Group);
    let before = store.io_stats();
    for i in 0..3u64 {
        store
            .write(b"k", put("v"), stamp_as(v(10 + i, "a")))
            .expect("put");
    }
    let after = store.io_stats();
    // Each write waited for its own group sync: nothing ran concurrently.
    assert_eq!(after.wal_syncs - before.wal_syncs, 3);
    assert!(after.wal_sync_nanos > before.wal_sync_nanos);
    let engine = store.engine_stats();
    assert!(!engine.write_stopped);
    assert_eq!(engine.delayed_write_rate, 0);
}

#[test]
fn a_checkpoint_opens_as_a_store_with_what_was_written_before_it_and_nothing_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .write(b"kept", put("v1"), stamp_as(v(10, "a")))
        .expect("put");
    store
        .write(b"gone", Mutation::Delete, stamp_as(v(11, "a")))
        .expect("delete");
    store.put_meta("m", b"1").expect("meta");
    let copy = tempfile::tempdir().expect("tempdir");
    let target = copy.path().join("cp");
    store.checkpoint(&target).expect("checkpoint");
    store
        .write(b"later", put("v2"), stamp_as(v(12, "a")))
        .expect("put after");
    // A second checkpoint into an existing directory is refused, not merged.
    assert!(store.checkpoint(&target).is_err());
    drop(store);
    let restored = Store::open(&target, &StoreOptions::default()).expect("open checkpoint");
    assert_eq!(
        restored.get(b"kept").expect("get").and_then(|r| r.value),
        Some(b"v1".to_vec())
    );
    assert!(
        restored
            .get(b"gone")
            .expect("get")
            .expect("tombstone kept")
            .is_tombstone()
    );
    assert_eq!(restored.get(b"later").expect("get"), None);
    assert_eq!(restored.get_meta("m").expect("meta"), Some(b"1".to_vec()));
    assert_eq!(
        restored.digest(),
        restored.recompute_digest().expect("digest")
    );
}
