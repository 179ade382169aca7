//! An in-memory store with the semantics of `vergent-storage` that the
//! cores rely on: last-writer-wins on `(hlc, origin)`, XOR bucket digests
//! and a bucket index kept with every write, a local write log, and a
//! durable part that survives a crash while what was not synced is lost.

use std::collections::{BTreeMap, BTreeSet};

use vergent_consensus::AcceptorState;
use vergent_replication::repair::RepairRecord;
use vergent_types::Version;
use vergent_types::digest::{LEAVES, LeafEntry, Tree, leaf_of, record_hash};

/// A stored record: a value or a tombstone, with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    /// The version last-writer-wins compares.
    pub version: Version,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

impl Rec {
    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

impl RepairRecord for Rec {
    fn version(&self) -> &Version {
        &self.version
    }
    fn wire_size(&self) -> usize {
        16 + self.version.origin.as_str().len() + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// One entry of the local write log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The key written.
    pub key: Vec<u8>,
    /// The record written.
    pub rec: Rec,
}

/// The part of a store that a crash keeps or loses as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    data: BTreeMap<Vec<u8>, Rec>,
    index: BTreeMap<u16, BTreeSet<Vec<u8>>>,
    leaves: Vec<u64>,
    log: BTreeMap<u64, LogEntry>,
    last_seq: u64,
    /// Small named values: cursors, the clock ceiling.
    meta: BTreeMap<String, u64>,
    /// Per-key consensus acceptor state, beside the records as in the
    /// node's paxos column family, so a crash keeps or loses both together.
    paxos: BTreeMap<Vec<u8>, AcceptorState>,
}

impl State {
    fn new() -> Self {
        Self {
            leaves: vec![0; LEAVES],
            ..Self::default()
        }
    }

    fn put(&mut self, key: &[u8], rec: Rec) {
        let leaf = usize::from(leaf_of(key));
        if let Some(old) = self.data.get(key) {
            self.leaves[leaf] ^= record_hash(key, &old.version);
        }
        self.leaves[leaf] ^= record_hash(key, &rec.version);
        self.index
            .entry(leaf_of(key))
            .or_default()
            .insert(key.to_vec());
        self.data.insert(key.to_vec(), rec);
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.data.remove(key) {
            let leaf = leaf_of(key);
            self.leaves[usize::from(leaf)] ^= record_hash(key, &old.version);
            if let Some(keys) = self.index.get_mut(&leaf) {
                keys.remove(key);
            }
        }
    }
}

/// What a write to the store did, for the caller's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record was newer and is stored.
    Stored,
    /// An equal or newer version was there already.
    Stale,
}

/// The store of one simulated node; see the module docs.
#[derive(Clone, Debug)]
pub struct MemStore {
    live: State,
    durable: State,
    /// `live` differs from `durable`.
    dirty: bool,
    /// The hash tree over `live`'s digests, until the next write.
    tree: std::cell::RefCell<Option<Tree>>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            live: State::new(),
            durable: State::new(),
            dirty: false,
            tree: std::cell::RefCell::new(None),
        }
    }

    /// The stored record of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Rec> {
        self.live.data.get(key)
    }

    /// The record of `key` that a crash now would keep.
    pub fn durable_get(&self, key: &[u8]) -> Option<&Rec> {
        self.durable.data.get(key)
    }

    /// Every record, in key order.
    pub fn records(&self) -> &BTreeMap<Vec<u8>, Rec> {
        &self.live.data
    }

    /// Applies `rec` if it is newer than what `key` holds (last writer
    /// wins); replicated and repaired records are not logged.
    pub fn apply(&mut self, key: &[u8], rec: Rec) -> Applied {
        if self
            .live
            .data
            .get(key)
            .is_some_and(|old| old.version >= rec.version)
        {
            return Applied::Stale;
        }
        self.live.put(key, rec);
        self.touch();
        Applied::Stored
    }

    /// A local write: stored and appended to the log. The caller stamped
    /// `rec` above whatever `key` held.
    pub fn write(&mut self, key: &[u8], rec: Rec) -> u64 {
        self.live.put(key, rec.clone());
        self.touch();
        self.live.last_seq += 1;
        let seq = self.live.last_seq;
        self.live.log.insert(
            seq,
            LogEntry {
                key: key.to_vec(),
                rec,
            },
        );
        seq
    }

    /// Removes `key` if it still holds exactly `version` (a purge).
    pub fn purge(&mut self, key: &[u8], version: &Version) -> bool {
        if self
            .live
            .data
            .get(key)
            .is_some_and(|r| &r.version == version)
        {
            self.live.remove(key);
            self.touch();
            return true;
        }
        false
    }

    /// Makes everything written so far durable (an fsync).
    pub fn sync(&mut self) {
        if self.dirty {
            self.durable = self.live.clone();
            self.dirty = false;
        }
    }

    fn touch(&mut self) {
        self.dirty = true;
        self.tree.get_mut().take();
    }

    /// The repair hash tree over the digests (built once per change).
    pub fn tree(&self) -> Tree {
        self.tree
            .borrow_mut()
            .get_or_insert_with(|| Tree::from_leaves(self.live.leaves.clone()))
            .clone()
    }

    /// Whether something was written since the last sync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// A crash: what was not synced is gone.
    pub fn crash(&mut self) {
        if self.dirty {
            self.live = self.durable.clone();
            self.dirty = false;
            self.tree.get_mut().take();
        }
    }

    /// Newest log sequence number that is durable.
    pub fn durable_log_seq(&self) -> u64 {
        self.durable.last_seq
    }

    /// Durable log entries after `after`, at most `max`.
    pub fn read_log(&self, after: u64, max: usize) -> Vec<(u64, LogEntry)> {
        self.durable
            .log
            .range(after + 1..)
            .take(max)
            .map(|(s, e)| (*s, e.clone()))
            .collect()
    }

    /// Drops the oldest log entries beyond the newest `keep` (the newest
    /// entry always stays, so sequence numbers survive).
    pub fn truncate_log(&mut self, keep: usize) {
        let keep = keep.max(1);
        while self.live.log.len() > keep {
            self.live.log.pop_first();
            self.touch();
        }
    }

    /// The bucket digests, the leaves of the repair tree.
    pub fn digest(&self) -> Vec<u64> {
        self.live.leaves.clone()
    }

    /// The digests recomputed from the records; must equal [`Self::digest`].
    pub fn recompute_digest(&self) -> Vec<u64> {
        let mut leaves = vec![0; LEAVES];
        for (k, r) in &self.live.data {
            leaves[usize::from(leaf_of(k))] ^= record_hash(k, &r.version);
        }
        leaves
    }

    /// The `(key, version)` lists of `leaves`, in key order.
    pub fn leaf_versions(&self, leaves: &[u16]) -> Vec<Vec<LeafEntry>> {
        leaves
            .iter()
            .map(|leaf| {
                self.live
                    .index
                    .get(leaf)
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        let r = &self.live.data[k];
                        LeafEntry {
                            key: k.clone(),
                            version: r.version.clone(),
                            tombstone: r.is_tombstone(),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The records of `keys` that exist.
    pub fn read(&self, keys: &[Vec<u8>]) -> Vec<(Vec<u8>, Rec)> {
        keys.iter()
            .filter_map(|k| self.live.data.get(k).map(|r| (k.clone(), r.clone())))
            .collect()
    }

    /// A small named value, as written (not only as synced).
    pub fn meta(&self, name: &str) -> Option<u64> {
        self.live.meta.get(name).copied()
    }

    /// Sets a small named value (durable at the next sync).
    pub fn set_meta(&mut self, name: &str, value: u64) {
        if self.live.meta.insert(name.to_string(), value) != Some(value) {
            self.touch();
        }
    }

    /// The acceptor state of `key` (the default when it never had one).
    pub fn paxos_state(&self, key: &[u8]) -> AcceptorState {
        self.live.paxos.get(key).cloned().unwrap_or_default()
    }

    /// Sets the acceptor state of `key` (durable at the next sync).
    pub fn put_paxos_state(&mut self, key: &[u8], state: AcceptorState) {
        self.live.paxos.insert(key.to_vec(), state);
        self.touch();
    }

    /// A commit: the chosen record through last-writer-wins (logged, so
    /// replication ships it) and the acceptor state, in one batch: nothing
    /// syncs between the two, so a crash keeps both or neither.
    pub fn commit_paxos(&mut self, key: &[u8], rec: Rec, state: Option<AcceptorState>) -> Applied {
        if let Some(state) = state {
            self.put_paxos_state(key, state);
        }
        if self.get(key).is_some_and(|old| old.version >= rec.version) {
            return Applied::Stale;
        }
        self.write(key, rec);
        Applied::Stored
    }

    /// Tombstones with an HLC below `before_ms`, as purge candidates.
    pub fn tombstones_before(&self, before_ms: u64, max: usize) -> Vec<(Vec<u8>, Version)> {
        self.live
            .data
            .iter()
            .filter(|(_, r)| r.is_tombstone() && r.version.hlc.physical_ms() < before_ms)
            .take(max)
            .map(|(k, r)| (k.clone(), r.version.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;
    use vergent_types::NodeId;

    use super::*;

    fn rec(ms: u64, value: Option<&str>) -> Rec {
        Rec {
            version: Version::new(Timestamp::new(ms, 0), NodeId::new("n").expect("id")),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn the_newest_version_wins_and_the_digest_follows_the_records() {
        let mut s = MemStore::new();
        assert_eq!(s.apply(b"k", rec(2, Some("b"))), Applied::Stored);
        assert_eq!(s.apply(b"k", rec(1, Some("a"))), Applied::Stale);
        assert_eq!(s.get(b"k"), Some(&rec(2, Some("b"))));
        s.write(b"j", rec(3, None));
        assert_eq!(s.digest(), s.recompute_digest());
        assert!(s.purge(b"j", &rec(3, None).version));
        assert_eq!(s.digest(), s.recompute_digest());
        assert_eq!(s.digest(), {
            let mut only_k = MemStore::new();
            only_k.apply(b"k", rec(2, Some("b")));
            only_k.digest()
        });
    }

    #[test]
    fn a_crash_loses_exactly_what_was_not_synced() {
        let mut s = MemStore::new();
        s.write(b"a", rec(1, Some("1")));
        s.sync();
        s.write(b"b", rec(2, Some("2")));
        assert_eq!(s.read_log(0, 10).len(), 1, "only durable entries ship");
        s.crash();
        assert!(s.get(b"a").is_some());
        assert!(s.get(b"b").is_none());
        assert_eq!(s.durable_log_seq(), 1);
    }

    #[test]
    fn acceptor_state_survives_a_crash_exactly_as_far_as_it_was_synced() {
        let mut s = MemStore::new();
        let promised = AcceptorState {
            committed: None,
            accepted: None,
            promised: Some(vergent_consensus::Ballot::new(
                Timestamp::new(5, 0),
                NodeId::new("n").expect("id"),
            )),
        };
        s.put_paxos_state(b"k", promised.clone());
        s.sync();
        s.commit_paxos(b"k", rec(9, Some("x")), Some(AcceptorState::default()));
        s.crash();
        assert_eq!(s.paxos_state(b"k"), promised);
        assert!(s.get(b"k").is_none(), "the record went with the state");
        assert_eq!(
            s.commit_paxos(b"k", rec(9, Some("x")), None),
            Applied::Stored
        );
        assert_eq!(
            s.commit_paxos(b"k", rec(8, Some("y")), None),
            Applied::Stale
        );
        assert_eq!(s.get(b"k"), Some(&rec(9, Some("x"))));
    }
}
