//! Eventual reads and writes at `quorum` and `all`, counted over the agreed
//! voting configuration with the pure trackers of
//! `vergent_consensus::levels`.
//!
//! A write is the ordinary local write (stamped, durable, logged), then a
//! wait until enough voters acknowledged the log up to it: replication's own
//! acknowledgements ([`LogAcks`]), not a second copy of the data. A read asks
//! every voter for its version of the key, fetches the data from one holding
//! the newest, and repairs stale voters with it before answering (blocking
//! read repair), so quorum reads are monotonic.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use vergent_consensus::VotingConfig;
use vergent_consensus::levels::{self, Level, ReadTracker, Shortfall, WriteTracker};
use vergent_storage::Record;
use vergent_types::{NodeId, Version};
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::{STRONG_DEADLINE, Strong, StrongError, wire};
use crate::kv::records;

/// How long a read or write at a level may take before it reports what it
/// knows (a write: outcome unknown; a read: timed out).
pub(crate) const LEVEL_DEADLINE: std::time::Duration = STRONG_DEADLINE;

/// Present while this node's store, started empty, may lack writes a
/// `quorum` acknowledged before (see `vergent_consensus::levels::caught_up`):
/// it then stays silent to level reads. Survives restarts.
pub(crate) const CATCHING_UP_META: &str = "levels/catching_up";

/// The name of a level in messages, as clients spell it.
pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Quorum => "QUORUM",
        Level::All => "ALL",
    }
}

impl From<Shortfall> for StrongError {
    fn from(s: Shortfall) -> Self {
        Self::Unavailable {
            needed: s.needed,
            voters: s.voters,
            reachable: s.reachable,
        }
    }
}

/// A voter's report on a key: its version, and its record when asked for data.
type Report = (Option<Version>, Option<Record>);

/// What one voter said during a read.
enum Heard {
    /// Its version of the key (`None`: it holds nothing of it), with the
    /// record when it was asked for data.
    Version(NodeId, Option<Version>, Option<Record>),
    /// It made a repair durable and now holds this version.
    Repaired(NodeId, Option<Version>),
    /// It did not answer a data request.
    NoData(NodeId),
}

impl Strong {
    /// Whether this node's store may still lack quorum-acknowledged writes.
    pub(crate) fn catching_up(&self) -> bool {
        self.catching_up.load(Ordering::SeqCst)
    }

    /// A repair session with serving peer `peer` completed with nothing
    /// left unsettled: this node holds all that peer held.
    pub(crate) fn note_synced(&self, peer: &str) {
        if !self.catching_up() {
            return;
        }
        let Ok(id) = NodeId::new(peer) else { return };
        let synced = {
            let mut s = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
            s.insert(id);
            s.clone()
        };
        let Some(held) = self.voting.held() else {
            return;
        };
        if levels::caught_up(&held.config, &self.me, &synced) {
            self.caught_up("synced with enough voters");
        }
    }

    /// The cluster formed with every store empty: nothing to catch up on.
    pub(crate) fn note_forming(&self) {
        if self.catching_up() {
            self.caught_up("the cluster formed empty");
        }
    }

    fn caught_up(&self, why: &str) {
        match self.store.delete_meta(CATCHING_UP_META) {
            Ok(()) => {
                self.catching_up.store(false, Ordering::SeqCst);
                info!(reason = why, "this node answers QUORUM and ALL reads again");
            }
            // Stays silent a while longer; the next session retries.
            Err(e) => warn!(error = %e, "cannot record that this node caught up"),
        }
    }

    /// The voters that look reachable: gossip's alive or suspect members
    /// and this node. Only ever used to refuse early; never counted.
    pub(super) fn reachable(&self) -> BTreeSet<NodeId> {
        let mut out: BTreeSet<NodeId> = self
            .members
            .borrow()
            .iter()
            .filter(|m| {
                matches!(
                    m.state,
                    vergent_gossip::State::Alive | vergent_gossip::State::Suspect
                )
            })
            .filter_map(|m| NodeId::new(m.id.clone()).ok())
            .collect();
        out.insert(self.me.clone());
        out
    }

    /// The configuration an operation at `level` is counted over; refuses
    /// (nothing sent, nothing written) when too few voters look reachable.
    pub(crate) fn level_precheck(&self, level: Level) -> Result<VotingConfig, StrongError> {
        let held = self
            .voting
            .held()
            .ok_or_else(|| StrongError::NoConfig(self.voting.pending()))?;
        level.precheck(&held.config, &self.reachable())?;
        Ok(held.config)
    }

    /// Waits until voters meeting `level` hold this node's write at log
    /// position `seq` (written and durable here already).
    pub(crate) async fn await_durable(
        &self,
        level: Level,
        config: VotingConfig,
        seq: u64,
    ) -> Result<(), StrongError> {
        let deadline = Instant::now() + LEVEL_DEADLINE;
        let config = if self.unsafe_levels_of_one {
            // The broken tracker the chaos suite must catch: this node its
            // only voter.
            VotingConfig::new(config.epoch, [self.me.clone()])
        } else {
            config
        };
        let mut tracker = WriteTracker::new(level, config);
        tracker.handle_durable(&self.me);
        let changed = self.acks.watch(seq);
        let members = tracker.config().members();
        loop {
            for m in members.iter().filter(|m| **m != self.me) {
                if self.acks.holds(m.as_str(), seq) {
                    tracker.handle_durable(m);
                }
            }
            if tracker.is_done() {
                return Ok(());
            }
            tokio::select! {
                () = changed.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(StrongError::LevelUnknown {
                        level: level_name(level),
                        held: tracker.durable().len(),
                        voters: members.len(),
                    });
                }
            }
        }
    }

    /// A read of `key` at `level`: the newest record a level's worth of
    /// voters reported, once that many voters hold it (stale ones repaired
    /// first). `None`: no voter holds anything of the key.
    pub(crate) async fn level_read(
        self: &Arc<Self>,
        level: Level,
        key: Vec<u8>,
    ) -> Result<Option<Record>, StrongError> {
        let deadline = Instant::now() + LEVEL_DEADLINE;
        let config = self.level_precheck(level)?;
        let mut tracker = ReadTracker::new(level, config.clone());
        let members = config.members();
        let (tx, mut rx) = mpsc::channel(4 * members.len() + 4);
        for m in &members {
            self.spawn_ask(m.clone(), key.clone(), false, tx.clone());
        }
        // The record to answer with and repair from, once known.
        let mut record: Option<Record> = None;
        let mut fetching: BTreeSet<NodeId> = BTreeSet::new();
        let mut repairing = false;
        loop {
            if let Some(d) = tracker.decision().cloned() {
                if d.newest.is_none() {
                    return Ok(None);
                }
                if record.is_none() && fetching.is_empty() {
                    // Ask one voter that reported the newest for the data;
                    // another one if it fails.
                    match d.source.clone() {
                        Some(src) => {
                            fetching.insert(src.clone());
                            self.spawn_ask(src, key.clone(), true, tx.clone());
                        }
                        None => return Err(self.read_timeout(level, &tracker)),
                    }
                }
                if let Some(rec) = &record
                    && !repairing
                {
                    repairing = true;
                    for stale in &d.stale {
                        self.spawn_repair(stale.clone(), key.clone(), rec.clone(), tx.clone());
                    }
                }
                if record.is_some() && tracker.is_done() {
                    return Ok(record);
                }
            }
            let heard = tokio::select! {
                h = rx.recv() => h,
                () = tokio::time::sleep_until(deadline) => None,
            };
            match heard {
                None => return Err(self.read_timeout(level, &tracker)),
                Some(Heard::Version(from, version, data)) => {
                    tracker.handle_version(&from, version.clone());
                    if let Some(rec) = data
                        && record.is_none()
                    {
                        // The source may hold something newer by now: the
                        // read then answers with that, held by enough voters.
                        tracker.raise(&rec.version);
                        tracker.handle_holds(&from, Some(&rec.version));
                        record = Some(rec);
                    }
                }
                Some(Heard::Repaired(from, version)) => {
                    tracker.handle_holds(&from, version.as_ref());
                }
                Some(Heard::NoData(from)) => {
                    let next = tracker
                        .holders()
                        .iter()
                        .find(|h| !fetching.contains(*h))
                        .cloned();
                    match next {
                        Some(n) if record.is_none() => {
                            fetching.insert(n.clone());
                            self.spawn_ask(n, key.clone(), true, tx.clone());
                        }
                        _ => debug!(peer = %from, "no data from a voter that reported the newest"),
                    }
                }
            }
        }
    }

    fn read_timeout(&self, level: Level, tracker: &ReadTracker) -> StrongError {
        StrongError::ReadTimeout {
            level: level_name(level),
            heard: tracker.reported(),
        }
    }

    /// Asks voter `to` (this node included) for its version of `key`, or
    /// its record when `data`; silence is no answer.
    fn spawn_ask(self: &Arc<Self>, to: NodeId, key: Vec<u8>, data: bool, tx: mpsc::Sender<Heard>) {
        let this = self.clone();
        tokio::spawn(async move {
            let heard = if to == this.me {
                let local = this.clone();
                let key = key.clone();
                tokio::task::spawn_blocking(move || local.local_report(&key))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            } else {
                let body = Body::LevelRead(pb::LevelRead {
                    from: this.me.to_string(),
                    key,
                    data,
                });
                match tokio::time::timeout(LEVEL_DEADLINE, this.remote(&to, body)).await {
                    Ok(Ok(Body::LevelReadReply(r))) if r.from == to.as_str() => read_reply(r).ok(),
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => {
                        debug!(peer = %to, error = %e, "no level read reply");
                        None
                    }
                    Err(_) => None,
                }
            };
            let msg = match heard {
                Some((version, record)) => {
                    Heard::Version(to, version, data.then_some(record).flatten())
                }
                None if data => Heard::NoData(to),
                None => return,
            };
            let _ = tx.send(msg).await;
        });
    }

    /// Repairs voter `to` (this node included) with `record`; silence is no answer.
    fn spawn_repair(
        self: &Arc<Self>,
        to: NodeId,
        key: Vec<u8>,
        record: Record,
        tx: mpsc::Sender<Heard>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let held = if to == this.me {
                let local = this.clone();
                tokio::task::spawn_blocking(move || local.apply_repair(key, record))
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                let body = Body::LevelRepair(pb::LevelRepair {
                    from: this.me.to_string(),
                    record: Some(records::to_wire(0, &key, &record)),
                });
                match tokio::time::timeout(LEVEL_DEADLINE, this.remote(&to, body)).await {
                    Ok(Ok(Body::LevelRepaired(r))) if r.from == to.as_str() => {
                        r.version.map(wire::version_from).transpose().ok()
                    }
                    _ => None,
                }
            };
            if let Some(version) = held {
                let _ = tx.send(Heard::Repaired(to, version)).await;
            }
        });
    }

    /// This node's own report on `key` as a voter: `None` when it may not
    /// report (not serving yet, its vote forfeit, or catching up).
    fn local_report(&self, key: &[u8]) -> Result<Option<Report>, StrongError> {
        if self.availability.check_readable().is_err()
            || self.voting.forfeit()
            || self.catching_up()
        {
            return Ok(None);
        }
        let rec = self.store.get(key)?;
        Ok(Some((rec.as_ref().map(|r| r.version.clone()), rec)))
    }

    /// Applies a read repair by last-writer-wins, durably; returns the
    /// version held afterwards.
    fn apply_repair(&self, key: Vec<u8>, record: Record) -> Result<Option<Version>, StrongError> {
        self.limits
            .check_key(&key)
            .map_err(crate::kv::KvError::from)?;
        if let Some(v) = &record.value {
            self.limits
                .check_value(v)
                .map_err(crate::kv::KvError::from)?;
        }
        self.clock.update(record.version.hlc)?;
        self.store.apply(&key, record)?;
        Ok(self.store.get(&key)?.map(|r| r.version))
    }

    /// Serves a coordinator's level read or repair (the peer layer routes
    /// them here); `None`: stay silent.
    pub(super) fn serve_level(&self, body: Body) -> Result<Option<Body>, StrongError> {
        let me = self.me.to_string();
        match body {
            Body::LevelRead(q) => {
                let Some((version, record)) = self.local_report(&q.key)? else {
                    return Ok(None);
                };
                Ok(Some(Body::LevelReadReply(pb::LevelReadReply {
                    from: me,
                    found: version.is_some(),
                    version: version.as_ref().map(wire::version_to),
                    record: if q.data {
                        record.map(|r| records::to_wire(0, &q.key, &r))
                    } else {
                        None
                    },
                })))
            }
            Body::LevelRepair(r) => {
                let record = r
                    .record
                    .ok_or(wire::WireError::Unexpected("a repair without a record"))?;
                let (key, record) = records::from_wire(record)
                    .map_err(|e| StrongError::Corrupt(format!("a repaired record: {e}")))?;
                let held = self.apply_repair(key, record)?;
                Ok(Some(Body::LevelRepaired(pb::LevelRepaired {
                    from: me,
                    version: held.as_ref().map(wire::version_to),
                })))
            }
            _ => Err(wire::WireError::Unexpected("not a level request").into()),
        }
    }
}

/// A voter's reply: its version and, if sent, its record (which must be
/// of that version).
fn read_reply(r: pb::LevelReadReply) -> Result<Report, StrongError> {
    let version = if r.found {
        Some(wire::version_from(r.version.ok_or(
            wire::WireError::Unexpected("a found key without a version"),
        )?)?)
    } else {
        None
    };
    let record = match r.record {
        None => None,
        Some(w) => {
            let (_, rec) = records::from_wire(w)
                .map_err(|e| StrongError::Corrupt(format!("a read record: {e}")))?;
            if Some(&rec.version) != version.as_ref() {
                return Err(wire::WireError::Unexpected("a record of another version").into());
            }
            Some(rec)
        }
    };
    Ok((version, record))
}
