//! A simulated node's eventual reads and writes at `QUORUM` and `ALL`, with
//! the production coordinator's rules (`crates/node/src/strong/levels.rs`)
//! and its pure trackers (`vergent_consensus::levels`): a write is the
//! ordinary local write, acknowledged once voters meeting the level
//! acknowledged the replication log up to it (this node's own copy once
//! synced); a read asks every voter, decides the newest once a level's
//! worth answered, repairs the stale ones durably and answers once voters
//! meeting the level hold it. A voter that bootstraps or catches up after a
//! wipe stays silent.
//!
//! Deliberate differences: a voter's reply carries the record at once (the
//! production coordinator asks for versions first and the data from one
//! voter), and every node of the world is a voter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vergent_consensus::VotingConfig;
use vergent_consensus::levels::{Level, ReadTracker, WriteTracker, caught_up};
use vergent_types::{NodeId, Version};

use super::{Msg, SimNode, addr};
use crate::history::{Event as HistoryEvent, History, LevelResult};
use crate::net::Class;
use crate::store::Rec;

/// How long a read or write at a level may take, as in production.
pub const LEVEL_DEADLINE: Duration = Duration::from_secs(5);
/// The voting configuration's epoch: fixed, the sim changes no membership.
const EPOCH: u64 = 1;

/// A level read's messages between simulated nodes; `id` routes a reply.
#[derive(Clone, Debug)]
pub enum LevelMsg {
    /// "Which version of `key` do you hold?"
    Read {
        /// The read.
        id: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// The voter's record of the key, if any.
    ReadReply {
        /// The read.
        id: u64,
        /// Its record.
        rec: Option<Rec>,
    },
    /// "Store this record (last writer wins), durably."
    Repair {
        /// The read.
        id: u64,
        /// The key.
        key: Vec<u8>,
        /// The newest record the read found.
        rec: Rec,
    },
    /// The repair is durable; the version now held.
    Repaired {
        /// The read.
        id: u64,
        /// What the voter holds now.
        version: Option<Version>,
    },
}

struct PendingWrite {
    id: u64,
    key: Vec<u8>,
    version: Version,
    seq: u64,
    tracker: WriteTracker,
    deadline: Instant,
    invoked_us: u64,
}

struct PendingRead {
    key: Vec<u8>,
    tracker: ReadTracker,
    /// Each voter's record, as it answered.
    recs: BTreeMap<NodeId, Option<Rec>>,
    repairing: bool,
    deadline: Instant,
    invoked_us: u64,
}

/// A node's volatile level state (lost by a crash), and whether its store
/// may lack acknowledged writes (kept, as production persists it).
#[derive(Default)]
pub(super) struct Levels {
    writes: Vec<PendingWrite>,
    reads: BTreeMap<u64, PendingRead>,
    /// Started empty (a wipe) and not yet synced with enough voters.
    pub(super) catching_up: bool,
    /// Serving voters this node completed a repair session with since then.
    pub(super) synced: std::collections::BTreeSet<NodeId>,
    /// Test-only mutant: trackers count this node alone.
    pub(super) broken: bool,
    /// Per peer (and its store): log entries it acknowledged without
    /// storing them; never counted as held.
    refused: BTreeMap<usize, (u64, std::collections::BTreeSet<u64>)>,
}

impl Levels {
    /// What a crash loses: every operation in flight (never answered).
    pub(super) fn crash(&mut self) {
        self.writes.clear();
        self.reads.clear();
        self.refused.clear();
    }
}

fn us_since(base: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(base).as_micros() as u64
}

impl SimNode {
    /// Test-only mutant: this node's level trackers count it alone, so the
    /// level invariants must report.
    #[doc(hidden)]
    pub fn break_levels(&mut self) {
        self.levels.broken = true;
    }

    /// The configuration levels count over: every node, or with the
    /// test-only mutant this node alone.
    fn level_config(&self) -> VotingConfig {
        if self.levels.broken {
            return VotingConfig::new(EPOCH, [self.id.clone()]);
        }
        let ids = (0..self.world_size).filter_map(|i| NodeId::new(addr(i)).ok());
        VotingConfig::new(EPOCH, ids)
    }

    /// The voters that look reachable (gossip), this node included.
    fn level_reachable(&self) -> std::collections::BTreeSet<NodeId> {
        let mut out: std::collections::BTreeSet<NodeId> = self
            .alive_view()
            .into_iter()
            .filter_map(|a| NodeId::new(a).ok())
            .collect();
        out.insert(self.id.clone());
        out
    }

    /// Whether this node's store may lack acknowledged writes (bootstrapping
    /// or catching up after a wipe).
    pub fn lacks_data(&self) -> bool {
        self.bootstrapping || self.levels.catching_up
    }

    /// Whether this node may report versions to level reads.
    fn level_may_report(&self) -> bool {
        self.up && !self.bootstrapping && !self.levels.catching_up
    }

    /// A client write at `level` through this node: refused (recorded as
    /// unavailable, nothing written) when too few voters look reachable.
    pub fn level_write(
        &mut self,
        now: Instant,
        id: u64,
        key: &[u8],
        value: Option<Vec<u8>>,
        level: Level,
        history: &mut History,
    ) {
        if !self.up {
            return;
        }
        let config = self.level_config();
        if level.precheck(&config, &self.level_reachable()).is_err() {
            let at_us = us_since(self.base, now);
            history.push(HistoryEvent::LevelWrite {
                id,
                key: key.to_vec(),
                version: None,
                level,
                result: LevelResult::Unavailable,
                invoked_us: at_us,
                at_us,
            });
            return;
        }
        let (version, seq) = self.stamp_and_write(now, key, value, history);
        self.levels.writes.push(PendingWrite {
            id,
            key: key.to_vec(),
            version,
            seq,
            tracker: WriteTracker::new(level, config),
            deadline: now + LEVEL_DEADLINE,
            invoked_us: us_since(self.base, now),
        });
        self.levels_progress(now, history);
    }

    /// A client read at `level` through this node.
    pub fn level_read(
        &mut self,
        now: Instant,
        id: u64,
        key: &[u8],
        level: Level,
        history: &mut History,
    ) {
        if !self.up {
            return;
        }
        let config = self.level_config();
        let invoked_us = us_since(self.base, now);
        if level.precheck(&config, &self.level_reachable()).is_err() {
            history.push(HistoryEvent::LevelRead {
                id,
                key: key.to_vec(),
                version: None,
                level,
                result: LevelResult::Unavailable,
                invoked_us,
                at_us: invoked_us,
            });
            return;
        }
        let mut read = PendingRead {
            key: key.to_vec(),
            tracker: ReadTracker::new(level, config.clone()),
            recs: BTreeMap::new(),
            repairing: false,
            deadline: now + LEVEL_DEADLINE,
            invoked_us,
        };
        if self.level_may_report() {
            let rec = self.store.get(key).cloned();
            read.tracker
                .handle_version(&self.id, rec.as_ref().map(|r| r.version.clone()));
            read.recs.insert(self.id.clone(), rec);
        }
        self.levels.reads.insert(id, read);
        for m in config.members() {
            if m != self.id
                && let Some(i) = super::idx_of(m.as_str())
            {
                self.send(
                    i,
                    Class::Datagram,
                    Msg::Level(LevelMsg::Read {
                        id,
                        key: key.to_vec(),
                    }),
                );
            }
        }
        self.levels_progress(now, history);
    }

    /// The earliest level deadline.
    pub(super) fn levels_timeout(&self) -> Option<Instant> {
        let w = self.levels.writes.iter().map(|w| w.deadline).min();
        let r = self.levels.reads.values().map(|r| r.deadline).min();
        match (w, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Counts acknowledgements, drives reads, answers what is done and
    /// gives up on what passed its deadline.
    pub(super) fn levels_progress(&mut self, now: Instant, history: &mut History) {
        let durable = self.store.durable_log_seq();
        let acked: Vec<(usize, NodeId, u64, u64)> = self
            .senders
            .iter()
            .filter_map(|(&i, (store, s))| {
                NodeId::new(addr(i))
                    .ok()
                    .map(|id| (i, id, *store, s.cursor()))
            })
            .collect();
        let at_us = us_since(self.base, now);
        let mut still = Vec::new();
        for mut w in std::mem::take(&mut self.levels.writes) {
            if durable >= w.seq {
                w.tracker.handle_durable(&self.id);
            }
            for (i, id, store, cursor) in &acked {
                let refused = self
                    .levels
                    .refused
                    .get(i)
                    .is_some_and(|(s, set)| s == store && set.contains(&w.seq));
                if *cursor >= w.seq && !refused {
                    w.tracker.handle_durable(id);
                }
            }
            let result = if w.tracker.is_done() {
                LevelResult::Ok
            } else if now >= w.deadline {
                LevelResult::Unknown
            } else {
                still.push(w);
                continue;
            };
            history.push(HistoryEvent::LevelWrite {
                id: w.id,
                key: w.key,
                version: Some(w.version),
                level: w.tracker.level(),
                result,
                invoked_us: w.invoked_us,
                at_us,
            });
        }
        self.levels.writes = still;

        let ids: Vec<u64> = self.levels.reads.keys().copied().collect();
        for id in ids {
            self.drive_read(now, id, history);
        }
    }

    fn drive_read(&mut self, now: Instant, id: u64, history: &mut History) {
        let Some(read) = self.levels.reads.get_mut(&id) else {
            return;
        };
        let mut repairs = Vec::new();
        if let Some(d) = read.tracker.decision().cloned()
            && !read.repairing
        {
            read.repairing = true;
            let rec = d
                .source
                .as_ref()
                .and_then(|s| read.recs.get(s).cloned().flatten());
            if let Some(rec) = rec {
                for s in d.stale {
                    repairs.push((s, read.key.clone(), rec.clone()));
                }
            }
        }
        for (to, key, rec) in repairs {
            if to == self.id {
                let held = self.repair_here(now, &key, rec);
                if let Some(r) = self.levels.reads.get_mut(&id) {
                    r.tracker.handle_holds(&to, held.as_ref());
                }
            } else if let Some(i) = super::idx_of(to.as_str()) {
                self.send(
                    i,
                    Class::Datagram,
                    Msg::Level(LevelMsg::Repair { id, key, rec }),
                );
            }
        }
        let Some(read) = self.levels.reads.get(&id) else {
            return;
        };
        let (result, version) = if read.tracker.is_done() {
            let newest = read.tracker.decision().and_then(|d| d.newest.clone());
            (LevelResult::Ok, newest)
        } else if now >= read.deadline {
            (LevelResult::Unknown, None)
        } else {
            return;
        };
        let Some(read) = self.levels.reads.remove(&id) else {
            return;
        };
        history.push(HistoryEvent::LevelRead {
            id,
            key: read.key,
            version,
            level: read.tracker.level(),
            result,
            invoked_us: read.invoked_us,
            at_us: us_since(self.base, now),
        });
    }

    /// Applies a read repair by last-writer-wins, durably; what is held after.
    fn repair_here(&mut self, now: Instant, key: &[u8], rec: Rec) -> Option<Version> {
        let physical = self.physical_ms(now);
        // As production: a record too far ahead of this clock is refused.
        if self.hlc.update(physical, rec.version.hlc).is_ok() {
            self.store.apply(key, rec);
            self.store.sync();
        }
        self.store.get(key).map(|r| r.version.clone())
    }

    /// Handles a level message from node `from`.
    pub(super) fn handle_level(
        &mut self,
        now: Instant,
        from: usize,
        msg: LevelMsg,
        history: &mut History,
    ) {
        let Ok(from_id) = NodeId::new(addr(from)) else {
            return;
        };
        match msg {
            LevelMsg::Read { id, key } => {
                if self.level_may_report() {
                    let rec = self.store.get(&key).cloned();
                    self.send(
                        from,
                        Class::Datagram,
                        Msg::Level(LevelMsg::ReadReply { id, rec }),
                    );
                }
            }
            LevelMsg::Repair { id, key, rec } => {
                let version = self.repair_here(now, &key, rec);
                self.send(
                    from,
                    Class::Datagram,
                    Msg::Level(LevelMsg::Repaired { id, version }),
                );
            }
            LevelMsg::ReadReply { id, rec } => {
                if let Some(read) = self.levels.reads.get_mut(&id)
                    && read
                        .tracker
                        .handle_version(&from_id, rec.as_ref().map(|r| r.version.clone()))
                {
                    read.recs.insert(from_id, rec);
                }
                self.drive_read(now, id, history);
            }
            LevelMsg::Repaired { id, version } => {
                if let Some(read) = self.levels.reads.get_mut(&id) {
                    read.tracker.handle_holds(&from_id, version.as_ref());
                }
                self.drive_read(now, id, history);
            }
        }
    }

    /// Peer `from` (store `store`) acknowledged `seqs` of this node's log
    /// without storing them.
    pub(super) fn levels_note_refused(&mut self, from: usize, store: u64, seqs: &[u64]) {
        let entry = self
            .levels
            .refused
            .entry(from)
            .or_insert_with(|| (store, Default::default()));
        if entry.0 != store {
            *entry = (store, Default::default());
        }
        entry.1.extend(seqs.iter().copied());
    }

    /// A repair session with serving peer `peer` completed: this store holds
    /// what it held; caught up once enough voters were synced with.
    pub(super) fn levels_note_synced(&mut self, peer: usize) {
        if !self.levels.catching_up {
            return;
        }
        // What the session brought must be durable before it counts.
        self.store.sync();
        if let Ok(id) = NodeId::new(addr(peer)) {
            self.levels.synced.insert(id);
        }
        let config = self.level_config();
        if caught_up(&config, &self.id, &self.levels.synced) {
            self.levels.catching_up = false;
        }
    }
}
