//! One conformance suite, run against both engines the cores are tested on:
//! the RocksDB [`Store`] and the simulation's in-memory
//! [`MemStore`](vergent_sim::MemStore). The simulation proves things about
//! the cores only if its store behaves as the real one does, so every case
//! here runs on both, and seeded random operation sequences must leave both
//! with the same records, the same bucket digests, the same leaf listings
//! and the same durable log (as Garage and TiKV test their engines).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vergent_hlc::Timestamp;
use vergent_sim::{MemStore, Rec};
use vergent_storage::{Applied, Mutation, Record, Store, StoreOptions};
use vergent_types::digest::LeafEntry;
use vergent_types::{NodeId, Version};

/// A record as both engines can report it: version and value (`None` is a
/// tombstone).
type Seen = Option<(Version, Option<Vec<u8>>)>;

/// A durable log entry as both engines can report it: sequence number, key,
/// version and value.
type Logged = (u64, Vec<u8>, Version, Option<Vec<u8>>);

/// The operations the cores use, over either engine.
trait Engine {
    /// Which engine, for failure messages.
    fn name(&self) -> &'static str;
    /// A local client write, logged; `version` is above what `key` holds.
    fn write(&mut self, key: &[u8], version: Version, value: Option<Vec<u8>>);
    /// A replicated or repaired record, last writer wins; whether it stored.
    fn apply(&mut self, key: &[u8], version: Version, value: Option<Vec<u8>>) -> bool;
    /// Removes `key` if it holds exactly `version`.
    fn purge(&mut self, key: &[u8], version: &Version) -> bool;
    /// Makes everything written durable.
    fn sync(&mut self);
    /// The stored record of `key`, tombstones included.
    fn get(&self, key: &[u8]) -> Seen;
    /// The bucket digests as maintained with every write.
    fn digest(&self) -> Vec<u64>;
    /// The bucket digests recomputed from the records.
    fn recompute_digest(&self) -> Vec<u64>;
    /// The `(key, version, tombstone)` listings of `leaves`.
    fn leaf_versions(&self, leaves: &[u16]) -> Vec<Vec<LeafEntry>>;
    /// The durable log after `after`: `(seq, key, version, value)`.
    fn read_log(&self, after: u64) -> Vec<Logged>;
}

struct Rocks {
    store: Store,
    _dir: tempfile::TempDir,
}

impl Rocks {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open store");
        Self { store, _dir: dir }
    }
}

impl Engine for Rocks {
    fn name(&self) -> &'static str {
        "rocksdb"
    }
    fn write(&mut self, key: &[u8], version: Version, value: Option<Vec<u8>>) {
        let mutation = match value {
            Some(value) => Mutation::Put {
                value,
                ttl_ms: None,
            },
            None => Mutation::Delete,
        };
        self.store
            .write(key, mutation, move |_| Ok(version))
            .expect("write");
    }
    fn apply(&mut self, key: &[u8], version: Version, value: Option<Vec<u8>>) -> bool {
        let record = match value {
            Some(v) => Record::value(version, v, None),
            None => Record::tombstone(version),
        };
        matches!(
            self.store.apply(key, record).expect("apply"),
            Applied::Stored { .. }
        )
    }
    fn purge(&mut self, key: &[u8], version: &Version) -> bool {
        self.store.purge(key, version).expect("purge")
    }
    fn sync(&mut self) {
        self.store.sync().expect("sync");
    }
    fn get(&self, key: &[u8]) -> Seen {
        self.store
            .get(key)
            .expect("get")
            .map(|r| (r.version, r.value))
    }
    fn digest(&self) -> Vec<u64> {
        self.store.digest()
    }
    fn recompute_digest(&self) -> Vec<u64> {
        self.store.recompute_digest().expect("recompute digest")
    }
    fn leaf_versions(&self, leaves: &[u16]) -> Vec<Vec<LeafEntry>> {
        self.store.leaf_versions(leaves).expect("leaf versions")
    }
    fn read_log(&self, after: u64) -> Vec<Logged> {
        self.store
            .read_log(after, usize::MAX, usize::MAX)
            .expect("read log")
            .into_iter()
            .map(|e| (e.seq, e.key, e.record.version, e.record.value))
            .collect()
    }
}

struct Mem(MemStore);

impl Engine for Mem {
    fn name(&self) -> &'static str {
        "memstore"
    }
    fn write(&mut self, key: &[u8], version: Version, value: Option<Vec<u8>>) {
        self.0.write(key, Rec { version, value });
    }
    fn apply(&mut self, key: &[u8], version: Version, value: Option<Vec<u8>>) -> bool {
        matches!(
            self.0.apply(key, Rec { version, value }),
            vergent_sim::store::Applied::Stored
        )
    }
    fn purge(&mut self, key: &[u8], version: &Version) -> bool {
        self.0.purge(key, version)
    }
    fn sync(&mut self) {
        self.0.sync();
    }
    fn get(&self, key: &[u8]) -> Seen {
        self.0
            .get(key)
            .map(|r| (r.version.clone(), r.value.clone()))
    }
    fn digest(&self) -> Vec<u64> {
        self.0.digest()
    }
    fn recompute_digest(&self) -> Vec<u64> {
        self.0.recompute_digest()
    }
    fn leaf_versions(&self, leaves: &[u16]) -> Vec<Vec<LeafEntry>> {
        self.0.leaf_versions(leaves)
    }
    fn read_log(&self, after: u64) -> Vec<Logged> {
        self.0
            .read_log(after, usize::MAX)
            .into_iter()
            .map(|(seq, e)| (seq, e.key, e.rec.version, e.rec.value))
            .collect()
    }
}

fn engines() -> Vec<Box<dyn Engine>> {
    vec![Box::new(Rocks::new()), Box::new(Mem(MemStore::new()))]
}

fn v(hlc: u64, origin: &str) -> Version {
    Version::new(
        Timestamp::from_u64(hlc),
        NodeId::new(origin).expect("valid id"),
    )
}

fn val(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

#[test]
fn both_engines_keep_the_newer_version_and_break_hlc_ties_by_origin() {
    for mut e in engines() {
        assert!(e.apply(b"k", v(10, "b"), val("b10")), "{}", e.name());
        assert!(
            !e.apply(b"k", v(9, "z"), val("z9")),
            "{}: older hlc",
            e.name()
        );
        assert!(
            !e.apply(b"k", v(10, "b"), val("again")),
            "{}: equal",
            e.name()
        );
        assert!(
            !e.apply(b"k", v(10, "a"), val("a10")),
            "{}: lower origin",
            e.name()
        );
        assert!(
            e.apply(b"k", v(10, "c"), val("c10")),
            "{}: higher origin",
            e.name()
        );
        assert_eq!(e.get(b"k"), Some((v(10, "c"), val("c10"))), "{}", e.name());
    }
}

#[test]
fn on_both_engines_a_tombstone_wins_only_when_newer_and_stays_readable() {
    for mut e in engines() {
        e.apply(b"k", v(10, "a"), val("x"));
        assert!(!e.apply(b"k", v(5, "a"), None), "{}", e.name());
        assert!(e.apply(b"k", v(11, "a"), None), "{}", e.name());
        assert_eq!(e.get(b"k"), Some((v(11, "a"), None)), "{}", e.name());
        // An older value cannot bring the key back past its tombstone.
        assert!(!e.apply(b"k", v(10, "z"), val("old")), "{}", e.name());
        assert_eq!(e.get(b"k"), Some((v(11, "a"), None)), "{}", e.name());
    }
}

#[test]
fn on_both_engines_a_purge_removes_only_the_exact_version_it_names() {
    for mut e in engines() {
        e.apply(b"k", v(10, "a"), None);
        assert!(!e.purge(b"k", &v(9, "a")), "{}", e.name());
        assert!(!e.purge(b"absent", &v(10, "a")), "{}", e.name());
        assert!(e.get(b"k").is_some(), "{}", e.name());
        assert!(e.purge(b"k", &v(10, "a")), "{}", e.name());
        assert_eq!(e.get(b"k"), None, "{}", e.name());
        assert_eq!(e.digest(), vec![0; e.digest().len()], "{}", e.name());
    }
}

#[test]
fn on_both_engines_only_local_writes_are_logged_and_only_once_durable() {
    for mut e in engines() {
        e.write(b"a", v(1, "n"), val("1"));
        e.apply(b"b", v(2, "m"), val("2"));
        e.write(b"a", v(3, "n"), None);
        e.sync();
        let log = e.read_log(0);
        assert_eq!(
            log,
            vec![
                (1, b"a".to_vec(), v(1, "n"), val("1")),
                (2, b"a".to_vec(), v(3, "n"), None),
            ],
            "{}",
            e.name()
        );
        assert_eq!(e.read_log(1).len(), 1, "{}", e.name());
    }
}

/// Runs one seeded sequence of writes, applies, purges and syncs on both
/// engines and compares everything the cores read after every step.
fn same_behaviour_on(seed: u64, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rocks = Rocks::new();
    let mut mem = Mem(MemStore::new());
    let keys: Vec<Vec<u8>> = (0..12).map(|i| format!("key-{i}").into_bytes()).collect();
    let origins = ["a", "b", "c"];
    let mut local_hlc = 1_000;
    for step in 0..steps {
        let key = keys[rng.random_range(0..keys.len())].clone();
        let value = if rng.random_bool(0.3) {
            None
        } else {
            Some(format!("v{step}").into_bytes())
        };
        match rng.random_range(0..10) {
            0..=2 => {
                // A local write is stamped above the stored version, as the
                // writer does.
                let stored = rocks.get(&key).map(|(v, _)| v.hlc.as_u64()).unwrap_or(0);
                local_hlc = local_hlc.max(stored) + 1;
                let version = v(local_hlc, "n");
                rocks.write(&key, version.clone(), value.clone());
                mem.write(&key, version, value);
            }
            3..=6 => {
                // Small hlc range and three origins, so ties and stale
                // records are frequent.
                let version = v(
                    rng.random_range(990..1_010),
                    origins[rng.random_range(0..3)],
                );
                let a = rocks.apply(&key, version.clone(), value.clone());
                let b = mem.apply(&key, version, value);
                assert_eq!(a, b, "seed {seed} step {step}: apply outcome");
            }
            7 => {
                let version = match rocks.get(&key) {
                    Some((version, _)) if rng.random_bool(0.8) => version,
                    _ => v(rng.random_range(990..1_010), "a"),
                };
                let a = rocks.purge(&key, &version);
                let b = mem.purge(&key, &version);
                assert_eq!(a, b, "seed {seed} step {step}: purge outcome");
            }
            _ => {
                rocks.sync();
                mem.sync();
            }
        }
        for k in &keys {
            assert_eq!(rocks.get(k), mem.get(k), "seed {seed} step {step}: {k:?}");
        }
        assert_eq!(
            rocks.digest(),
            mem.digest(),
            "seed {seed} step {step}: digest"
        );
    }
    rocks.sync();
    mem.sync();
    assert_eq!(
        rocks.digest(),
        rocks.recompute_digest(),
        "seed {seed}: rocksdb"
    );
    assert_eq!(
        mem.digest(),
        mem.recompute_digest(),
        "seed {seed}: memstore"
    );
    let mut leaves: Vec<u16> = keys
        .iter()
        .map(|k| vergent_types::digest::leaf_of(k))
        .collect();
    leaves.sort_unstable();
    leaves.dedup();
    assert_eq!(
        rocks.leaf_versions(&leaves),
        mem.leaf_versions(&leaves),
        "seed {seed}: leaf listings"
    );
    assert_eq!(
        rocks.read_log(0),
        mem.read_log(0),
        "seed {seed}: durable log"
    );
}

#[test]
fn random_operation_sequences_leave_both_engines_in_the_same_state() {
    for seed in 0..20 {
        same_behaviour_on(seed, 300);
    }
}

#[test]
fn the_comparison_notices_an_engine_that_differs() {
    // The suite can fail: a record only one engine holds is reported.
    let mut rocks = Rocks::new();
    let mut mem = Mem(MemStore::new());
    rocks.apply(b"k", v(1, "a"), val("x"));
    mem.apply(b"k", v(1, "a"), val("x"));
    mem.apply(b"k", v(2, "a"), val("y"));
    assert_ne!(rocks.get(b"k"), mem.get(b"k"));
    assert_ne!(rocks.digest(), mem.digest());
}
