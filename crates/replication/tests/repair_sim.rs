//! Repair sessions between in-memory replicas over a simulated stream:
//! random divergence in both directions converges, sessions cut short
//! resume, bytes grow with the divergence, and writes made during a session
//! are never overwritten by older records. Many seeds per run.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vergent_hlc::Timestamp;
use vergent_replication::repair::{
    Initiator, InitiatorOutput, RepairConfig, RepairRecord, RepairStats, Responder,
    ResponderOutput, ToInitiator, ToResponder,
};
use vergent_types::digest::{LEAVES, LeafEntry, Tree, leaf_of, record_hash};
use vergent_types::{NodeId, Version};

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    version: Version,
    value: Option<Vec<u8>>,
}

impl RepairRecord for Rec {
    fn version(&self) -> &Version {
        &self.version
    }
    fn wire_size(&self) -> usize {
        12 + self.version.origin.as_str().len() + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// A replica: records, a leaf index and the XOR bucket digests, kept the way
/// the store keeps them.
#[derive(Clone)]
struct Replica {
    data: BTreeMap<Vec<u8>, Rec>,
    index: HashMap<u16, BTreeSet<Vec<u8>>>,
    leaves: Vec<u64>,
}

impl Replica {
    fn new() -> Self {
        Self {
            data: BTreeMap::new(),
            index: HashMap::new(),
            leaves: vec![0; LEAVES],
        }
    }

    /// Last-writer-wins apply, as the store does it.
    fn apply(&mut self, key: &[u8], rec: Rec) {
        let leaf = leaf_of(key);
        if let Some(old) = self.data.get(key) {
            if old.version >= rec.version {
                return;
            }
            self.leaves[leaf as usize] ^= record_hash(key, &old.version);
        }
        self.leaves[leaf as usize] ^= record_hash(key, &rec.version);
        self.index.entry(leaf).or_default().insert(key.to_vec());
        self.data.insert(key.to_vec(), rec);
    }

    fn purge(&mut self, key: &[u8]) {
        if let Some(old) = self.data.remove(key) {
            let leaf = leaf_of(key);
            self.leaves[leaf as usize] ^= record_hash(key, &old.version);
            if let Some(keys) = self.index.get_mut(&leaf) {
                keys.remove(key);
            }
        }
    }

    fn tree(&self) -> Tree {
        Tree::from_leaves(self.leaves.clone())
    }

    fn leaf_entries(&self, leaf: u16) -> Vec<LeafEntry> {
        self.index
            .get(&leaf)
            .into_iter()
            .flatten()
            .map(|k| {
                let r = &self.data[k];
                LeafEntry {
                    key: k.clone(),
                    version: r.version.clone(),
                    tombstone: r.value.is_none(),
                }
            })
            .collect()
    }

    fn records(&self, keys: &[Vec<u8>]) -> Vec<(Vec<u8>, Rec)> {
        keys.iter()
            .filter_map(|k| self.data.get(k).map(|r| (k.clone(), r.clone())))
            .collect()
    }

    fn full_transfer_bytes(&self) -> usize {
        self.data
            .iter()
            .map(|(k, r)| 2 + k.len() + r.wire_size())
            .sum()
    }
}

fn version(hlc: u64, origin: &str) -> Version {
    Version::new(
        Timestamp::from_u64(hlc),
        NodeId::new(origin.to_string()).expect("valid id"),
    )
}

/// Carries one message to the production [`Responder`] and runs what it
/// asks for against `b`, as the node driver does, until it has an answer.
fn respond(b: &mut Replica, resp: &mut Responder<Rec>, msg: ToResponder<Rec>) -> ToInitiator<Rec> {
    resp.handle_message(msg).expect("well-formed message");
    let mut reply = None;
    while let Some(out) = resp.poll_output() {
        match out {
            ResponderOutput::Send(msg) => {
                assert!(reply.is_none(), "one answer per message");
                reply = Some(msg);
            }
            ResponderOutput::Apply(records) => {
                for (k, r) in records {
                    b.apply(&k, r);
                }
            }
            ResponderOutput::ReadLeaves(leaves) => {
                let lists = leaves.iter().map(|&l| b.leaf_entries(l)).collect();
                resp.handle_leaf_versions(lists);
            }
            ResponderOutput::ReadRecords(keys) => {
                let records = b.records(&keys);
                resp.handle_records(records);
            }
            ResponderOutput::Done(_) => assert!(resp.is_done()),
        }
    }
    reply.expect("the responder answers every message")
}

/// Runs one session from `a` to `b`; `cut_after` drops the stream after that
/// many messages from `a`; `meanwhile` writes to either side between steps.
fn session(
    a: &mut Replica,
    b: &mut Replica,
    config: &RepairConfig,
    horizon: Timestamp,
    cut_after: Option<usize>,
    meanwhile: impl FnMut(&mut Replica, &mut Replica),
) -> Option<RepairStats> {
    session_sized(a, b, config, horizon, cut_after, meanwhile).map(|(s, _)| s)
}

/// The largest tree-walk message: every level-3 node's 16 children.
const TREE_MESSAGE_MAX: usize = 2 + 4_096 * (4 + 16 * 8);

/// [`session`], also returning the largest leaf-round message either side sent.
fn session_sized(
    a: &mut Replica,
    b: &mut Replica,
    config: &RepairConfig,
    horizon: Timestamp,
    cut_after: Option<usize>,
    mut meanwhile: impl FnMut(&mut Replica, &mut Replica),
) -> Option<(RepairStats, usize)> {
    let mut largest = 0;
    let mut init = Initiator::new(config.clone(), a.tree());
    // The responder compares against the tree as it was when the session
    // opened, as the node does.
    let mut resp = Responder::new(config.clone(), b.tree(), horizon);
    let mut sent = 0;
    for _ in 0..1_000_000 {
        meanwhile(a, b);
        let out = init.poll_output().expect("initiator never stalls");
        match out {
            InitiatorOutput::Send(msg) => {
                sent += 1;
                if cut_after == Some(sent) {
                    return None;
                }
                // Tree messages are bounded by the tree's shape (at most
                // 4,096 parents × 16 hashes); only leaf rounds are budgeted.
                let leaf_round = matches!(msg, ToResponder::Leaves { .. });
                if leaf_round {
                    largest = largest.max(msg.wire_size());
                } else {
                    assert!(msg.wire_size() <= TREE_MESSAGE_MAX, "{}", msg.wire_size());
                }
                let reply = respond(b, &mut resp, msg);
                if leaf_round {
                    largest = largest.max(reply.wire_size());
                }
                init.handle_message(reply).expect("protocol followed");
            }
            InitiatorOutput::ReadLeaves(leaves) => {
                let lists = leaves.iter().map(|&l| a.leaf_entries(l)).collect();
                init.handle_leaf_versions(lists);
            }
            InitiatorOutput::Apply(records) => {
                for (k, r) in records {
                    a.apply(&k, r);
                }
            }
            InitiatorOutput::ReadRecords(keys) => {
                let records = a.records(&keys);
                init.handle_records(records);
            }
            InitiatorOutput::Done(stats) => return Some((stats, largest)),
        }
    }
    panic!("session did not finish");
}

/// A base data set and two replicas diverging from it in every way.
///
/// Versions are unique per write, as in the system: `tag` keeps those of
/// separate calls apart.
fn diverged(
    rng: &mut StdRng,
    tag: &str,
    keys: usize,
    changed: usize,
    value_len: usize,
) -> (Replica, Replica) {
    let mut base = Replica::new();
    for i in 0..keys {
        let value = vec![b'v'; value_len];
        base.apply(
            format!("key/{i:06}").as_bytes(),
            Rec {
                version: version(1_000 + i as u64, "n0"),
                value: Some(value),
            },
        );
    }
    let (mut a, mut b) = (base.clone(), base);
    for n in 0..changed {
        let key = format!("key/{:06}", rng.random_range(0..keys + keys / 10));
        let newer = Rec {
            version: version(
                1_000_000 + n as u64,
                &format!("{tag}{}", rng.random_range(1..3)),
            ),
            value: rng.random_bool(0.7).then(|| vec![b'w'; value_len]),
        };
        let side = if rng.random() { &mut a } else { &mut b };
        match rng.random_range(0..4) {
            // A newer value or tombstone on one side.
            0 | 1 => side.apply(key.as_bytes(), newer),
            // A key one side lost (or never got).
            2 => side.purge(key.as_bytes()),
            // Different newer versions on both sides.
            _ => {
                a.apply(key.as_bytes(), newer.clone());
                let mut other = newer;
                other.version = version(other.version.hlc.as_u64() + 1, &format!("{tag}3"));
                b.apply(key.as_bytes(), other);
            }
        }
    }
    (a, b)
}

fn assert_same(a: &Replica, b: &Replica, seed: u64) {
    assert!(
        a.data == b.data,
        "seed {seed}: replicas differ after repair"
    );
    assert_eq!(a.tree().root(), b.tree().root(), "seed {seed}");
}

#[test]
fn replicas_with_random_divergence_in_both_directions_converge_in_one_session() {
    for seed in 0..64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let changed = rng.random_range(1..400);
        let (mut a, mut b) = diverged(&mut rng, "a", 2_000, changed, 20);
        let config = RepairConfig {
            leaves_per_round: rng.random_range(1..300),
            reply_budget_bytes: rng.random_range(100..100_000),
            message_budget_bytes: rng.random_range(100..100_000),
            ..RepairConfig::default()
        };
        let stats =
            session(&mut a, &mut b, &config, Timestamp::ZERO, None, |_, _| {}).expect("not cut");
        assert_same(&a, &b, seed);
        assert!(stats.differing_leaves > 0, "seed {seed}: divergence found");
        // Nothing is left: a second session finds equal roots at once.
        let again =
            session(&mut a, &mut b, &config, Timestamp::ZERO, None, |_, _| {}).expect("not cut");
        assert_eq!(again.differing_leaves, 0);
        assert_eq!(
            again.hashes_compared, 1,
            "seed {seed}: only the root compared"
        );
    }
}

#[test]
fn sessions_cut_short_at_random_resume_and_three_replicas_converge() {
    for seed in 0..48 {
        let mut rng = StdRng::seed_from_u64(1_000 + seed);
        let (a, b) = diverged(&mut rng, "a", 1_000, 300, 16);
        let (c, _) = diverged(&mut rng, "c", 1_200, 300, 16);
        let mut replicas = [a, b, c];
        let config = RepairConfig {
            leaves_per_round: 8,
            reply_budget_bytes: 512,
            ..RepairConfig::default()
        };
        let mut sessions = 0;
        while !(replicas[0].data == replicas[1].data && replicas[1].data == replicas[2].data) {
            sessions += 1;
            assert!(
                sessions < 200,
                "seed {seed}: no convergence after 200 sessions"
            );
            let i = rng.random_range(0..3);
            let j = (i + rng.random_range(1..3)) % 3;
            let cut = rng.random_bool(0.5).then(|| rng.random_range(1..12));
            let [x, y] = replicas.get_disjoint_mut([i, j]).expect("distinct");
            session(x, y, &config, Timestamp::ZERO, cut, |_, _| {});
        }
        assert_same(&replicas[0], &replicas[2], seed);
    }
}

#[test]
fn bytes_for_one_percent_divergence_of_100k_keys_stay_under_5_percent_of_a_full_transfer() {
    for seed in 0..3 {
        let mut rng = StdRng::seed_from_u64(2_000 + seed);
        let (mut a, mut b) = diverged(&mut rng, "a", 100_000, 1_000, 100);
        let full = b.full_transfer_bytes();
        let stats = session(
            &mut a,
            &mut b,
            &RepairConfig::default(),
            Timestamp::ZERO,
            None,
            |_, _| {},
        )
        .expect("not cut");
        assert_same(&a, &b, seed);
        let ratio = stats.bytes as f64 / full as f64;
        println!(
            "seed {seed}: {} bytes for {} differing leaves vs {full} for everything: {:.2}%",
            stats.bytes,
            stats.differing_leaves,
            ratio * 100.0
        );
        assert!(
            ratio < 0.05,
            "seed {seed}: {:.2}% of a full transfer",
            ratio * 100.0
        );
    }
}

#[test]
fn an_empty_replica_is_rebuilt_completely_by_sessions_with_a_small_reply_budget() {
    let mut rng = StdRng::seed_from_u64(7);
    let (full, _) = diverged(&mut rng, "a", 5_000, 0, 50);
    let mut empty = Replica::new();
    let mut donor = full.clone();
    let config = RepairConfig {
        leaves_per_round: 64,
        reply_budget_bytes: 16 << 10,
        ..RepairConfig::default()
    };
    // The empty side initiates, as a starting node does; cut twice to show
    // that a rebuild resumes rather than restarts.
    session(
        &mut empty,
        &mut donor,
        &config,
        Timestamp::ZERO,
        Some(20),
        |_, _| {},
    );
    session(
        &mut empty,
        &mut donor,
        &config,
        Timestamp::ZERO,
        Some(60),
        |_, _| {},
    );
    let partial = empty.data.len();
    assert!(
        partial > 0 && partial < 5_000,
        "{partial} keys after two cut sessions"
    );
    session(
        &mut empty,
        &mut donor,
        &config,
        Timestamp::ZERO,
        None,
        |_, _| {},
    )
    .expect("done");
    assert_same(&empty, &full, 7);
}

#[test]
fn writes_made_during_a_session_are_never_overwritten_by_older_records() {
    for seed in 0..32 {
        let mut rng = StdRng::seed_from_u64(3_000 + seed);
        let (mut a, mut b) = diverged(&mut rng, "a", 500, 200, 8);
        let mut clock = 10_000_000u64;
        let mut newest: BTreeMap<Vec<u8>, Version> = BTreeMap::new();
        let config = RepairConfig {
            leaves_per_round: 4,
            reply_budget_bytes: 256,
            ..RepairConfig::default()
        };
        let mut write_rng = StdRng::seed_from_u64(seed);
        session(&mut a, &mut b, &config, Timestamp::ZERO, None, |a, b| {
            if write_rng.random_bool(0.3) {
                clock += 1;
                let key = format!("key/{:06}", write_rng.random_range(0..550)).into_bytes();
                let v = version(clock, "w");
                let side = if write_rng.random() { a } else { b };
                side.apply(
                    &key,
                    Rec {
                        version: v.clone(),
                        value: Some(b"new".to_vec()),
                    },
                );
                newest.insert(key, v);
            }
        });
        // Writes stopped: one more quiet session settles what raced.
        session(&mut b, &mut a, &config, Timestamp::ZERO, None, |_, _| {});
        assert_same(&a, &b, seed);
        for (key, v) in &newest {
            assert_eq!(
                &a.data[key].version, v,
                "seed {seed}: a write made during repair lost"
            );
        }
    }
}

#[test]
fn a_tombstone_one_side_purged_is_not_handed_back_by_the_other() {
    let mut a = Replica::new();
    let mut b = Replica::new();
    let tomb = Rec {
        version: version(5, "n1"),
        value: None,
    };
    a.apply(b"gone", tomb.clone());
    b.apply(b"gone", tomb);
    a.purge(b"gone");
    let horizon = Timestamp::from_u64(100);
    let config = RepairConfig::default();
    let stats = session(&mut a, &mut b, &config, horizon, None, |_, _| {}).expect("done");
    assert_eq!(stats.differing_leaves, 1);
    assert!(
        !a.data.contains_key(b"gone".as_slice()),
        "pulled back into a"
    );
    session(&mut b, &mut a, &config, horizon, None, |_, _| {}).expect("done");
    assert!(
        !a.data.contains_key(b"gone".as_slice()),
        "pushed back into a"
    );
    // A tombstone still inside the grace period does travel.
    let young = Rec {
        version: version(500, "n1"),
        value: None,
    };
    b.apply(b"young", young);
    session(&mut a, &mut b, &config, horizon, None, |_, _| {}).expect("done");
    assert!(a.data.contains_key(b"young".as_slice()));
}

/// Keys that all fall into digest bucket `leaf`, found by trying names.
fn keys_in_leaf(leaf: u16, n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0u64..)
        .map(|i| format!("{tag}/{i}").into_bytes())
        .filter(|k| leaf_of(k) == leaf)
        .take(n)
        .collect()
}

#[test]
fn no_repair_message_outgrows_its_budget_however_large_one_leaf_is() {
    // One leaf holding ten times the reply budget, and hundreds of leaves
    // whose key lists together are far above the message budget: every
    // message must stay within the budget (a frame must never exceed the
    // transport's limit), and both directions still converge.
    let config = RepairConfig {
        reply_budget_bytes: 64 << 10,
        message_budget_bytes: 64 << 10,
        ..RepairConfig::default()
    };
    let record = 20 << 10;
    let mut full = Replica::new();
    for key in keys_in_leaf(7, 32, "big") {
        full.apply(
            &key,
            Rec {
                version: version(10, "n1"),
                value: Some(vec![b'x'; record]),
            },
        );
    }
    for i in 0..3_000u64 {
        let key = format!("many/{i:0400}").into_bytes();
        full.apply(
            &key,
            Rec {
                version: version(20 + i, "n1"),
                value: Some(b"v".to_vec()),
            },
        );
    }
    // The largest message may exceed the budget by at most one record or
    // one leaf list (which travel alone when larger than the budget).
    let allowed = config.reply_budget_bytes + record + 64;
    for pull in [true, false] {
        let mut empty = Replica::new();
        let mut donor = full.clone();
        let (stats, largest) = if pull {
            session_sized(
                &mut empty,
                &mut donor,
                &config,
                Timestamp::ZERO,
                None,
                |_, _| {},
            )
        } else {
            session_sized(
                &mut donor,
                &mut empty,
                &config,
                Timestamp::ZERO,
                None,
                |_, _| {},
            )
        }
        .expect("not cut");
        assert!(
            largest <= allowed,
            "pull {pull}: a message of {largest} bytes against a budget of {allowed}"
        );
        assert_eq!(stats.unsettled_leaves, 0);
        assert_same(&empty, &full, u64::from(pull));
    }
}
