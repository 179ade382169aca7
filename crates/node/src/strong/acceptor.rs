//! The acceptor side: applies the core's rules to this node's persisted
//! per-key state, durably before any reply, and answers peers' consensus
//! frames; plus the formation worker and configuration queries.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_consensus::gc::{self, Report};
use vergent_consensus::{
    Accept, AcceptReply, AcceptorState, Ballot, Commit, Expect, LwwRecord, Op, Outcome, Prepare,
    PrepareReply, VotingConfig, handle_accept, handle_commit, handle_prepare,
};
use vergent_storage::{Record, Unsynced};
use vergent_transport::FrameWriter;
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::voting::{
    self, Answer, CONFIG_KEY, Held, Step, decide_formation, encode_config, put_register_record,
    register_record,
};
use super::{Strong, StrongError, stripe, wire};

/// A stored acceptor record, or why it does not decode.
fn decode_state(key: &[u8], bytes: &[u8]) -> Result<AcceptorState, StrongError> {
    AcceptorState::decode(bytes)
        .map_err(|e| StrongError::Corrupt(format!("key {}: {e}", key.escape_ascii())))
}

/// Where the garbage-collection floor is persisted.
pub(super) const FLOOR_META: &str = "paxos/floor";

/// Keys per page of a key listing.
pub(super) const KEYS_PAGE: usize = 512;
/// How often a node without a configuration looks for its members.
const FORMATION_EVERY: Duration = Duration::from_millis(300);
/// After this long without a configuration, any member may propose it (the
/// smallest id may be gone).
const OTHERS_PROPOSE_AFTER: Duration = Duration::from_secs(3);

impl Strong {
    fn load_state(&self, key: &[u8]) -> Result<AcceptorState, StrongError> {
        match self.store.paxos_state(key)? {
            Some(bytes) => decode_state(key, &bytes),
            None => Ok(AcceptorState::default()),
        }
    }

    /// This node's last-writer-wins record of `key`, as a promise reports it
    /// (an expired value reads as absent).
    fn lww(&self, key: &[u8]) -> Result<Option<LwwRecord>, StrongError> {
        let record = if key == CONFIG_KEY {
            register_record(&self.store)?
        } else {
            self.store.get(key)?
        };
        let now = self.clock.physical_ms();
        Ok(record.map(|r| {
            let live = r.live_value(now).map(<[u8]>::to_vec);
            (r.version, live)
        }))
    }

    /// The epoch this acceptor answers `key` at, after adopting a newer
    /// configuration the proposer carried; `None` refuses a formation
    /// message this node cannot vote for.
    fn epoch_for(
        &self,
        key: &[u8],
        msg_epoch: u64,
        carried: Option<&Held>,
    ) -> Result<Option<u64>, StrongError> {
        if let Some(c) = carried
            && c.epoch() > 0
        {
            self.voting.adopt(&self.store, c)?;
        }
        let epoch = self.voting.epoch();
        if epoch == 0 && msg_epoch == 0 {
            // Formation: vote only on the register, and only for the set this
            // node would form with itself.
            let mine = voting::candidates(self.voting.expected, &self.members.borrow());
            let theirs = carried.map(|c| &c.config.voters);
            if key != CONFIG_KEY || mine.is_none() || mine.as_ref() != theirs {
                return Ok(None);
            }
        }
        Ok(Some(epoch))
    }

    /// Another proposer is working on `key`: this node's cached promise on it
    /// is (about to be) stale, and a cached round would only be refused.
    fn forget_cached(&self, key: &[u8], proposer: &NodeId) {
        if *proposer != self.me {
            self.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
        }
    }

    /// Handles a prepare (a peek changes nothing, so it writes nothing) up
    /// to the write: the reply may leave only once the returned writes are
    /// synced ([`Store::wait_synced`](vergent_storage::Store::wait_synced)).
    pub(super) fn prepare_unsynced(
        &self,
        p: &Prepare,
        carried: Option<&Held>,
    ) -> Result<(PrepareReply, Unsynced), StrongError> {
        let Some(epoch) = self.epoch_for(&p.key, p.epoch, carried)? else {
            return Ok((
                PrepareReply::EpochMismatch { current_epoch: 0 },
                Unsynced::NONE,
            ));
        };
        if self.voting.forfeit() {
            return Err(StrongError::Forfeit);
        }
        let _g = self.acceptor_locks[stripe(&p.key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !p.peek {
            // A peek promises nothing, so it leaves this node's cached promise good.
            self.forget_cached(&p.key, &p.ballot.node);
        }
        let state = gc::with_floor(&self.load_state(&p.key)?, self.floor().as_ref());
        let (next, reply) = handle_prepare(&state, self.lww(&p.key)?.as_ref(), p, epoch);
        let positive = matches!(reply, PrepareReply::Promise(_));
        let unsynced = self.persist_for_reply(&p.key, next, positive)?;
        Ok((reply, unsynced))
    }

    /// Handles an accept up to the write, as [`Self::prepare_unsynced`].
    pub(super) fn accept_unsynced(
        &self,
        a: &Accept,
        carried: Option<&Held>,
    ) -> Result<(AcceptReply, Unsynced), StrongError> {
        let Some(epoch) = self.epoch_for(&a.key, a.epoch, carried)? else {
            return Ok((
                AcceptReply::EpochMismatch { current_epoch: 0 },
                Unsynced::NONE,
            ));
        };
        if self.voting.forfeit() {
            return Err(StrongError::Forfeit);
        }
        let _g = self.acceptor_locks[stripe(&a.key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.forget_cached(&a.key, &a.ballot.node);
        let state = gc::with_floor(&self.load_state(&a.key)?, self.floor().as_ref());
        let (next, reply) = handle_accept(&state, self.lww(&a.key)?.as_ref(), a, epoch);
        let positive = matches!(reply, AcceptReply::Accepted);
        let unsynced = self.persist_for_reply(&a.key, next, positive)?;
        Ok((reply, unsynced))
    }

    /// Writes `next` (if any) for `key` under the caller's key lock and
    /// returns what must be synced before the reply leaves. The lock is
    /// released before the sync, so another message on the key may read
    /// this state first; that is safe because every reply waits for its own
    /// writes, which follow, in the log, whatever it read. A promise or an
    /// acceptance that writes nothing (a duplicate accept) may stand on
    /// state another message wrote and has not synced yet, so it waits for
    /// everything written so far. Refusals and peeks vouch for nothing and
    /// wait for nothing.
    fn persist_for_reply(
        &self,
        key: &[u8],
        next: Option<AcceptorState>,
        positive: bool,
    ) -> Result<Unsynced, StrongError> {
        Ok(match next {
            Some(s) => self.store.put_paxos_state_unsynced(key, &s.encode())?,
            None if positive => self.store.written(),
            None => Unsynced::NONE,
        })
    }

    /// Applies a decided value: the LWW record and the acceptor state in one
    /// batch, readable on return and durable once the result is synced (a
    /// commit lost to a crash loses nothing chosen: the accepted state it
    /// replaces stays). The register's commit (the record, the
    /// configuration it holds, then the state) is synced before this returns.
    pub(super) fn commit_unsynced(&self, c: &Commit) -> Result<Unsynced, StrongError> {
        let _g = self.acceptor_locks[stripe(&c.key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = self.load_state(&c.key)?;
        let effect = handle_commit(&state, c);
        let (version, value) = effect.lww;
        let record = match value {
            Some(v) => Record::value(version, v, None),
            None => Record::tombstone(version),
        };
        let next = effect.state.unwrap_or(state);
        if c.key == CONFIG_KEY {
            if let Some(bytes) = &record.value {
                match voting::decode_config(bytes) {
                    Ok(config) => {
                        self.voting.adopt(&self.store, &config)?;
                    }
                    Err(e) => warn!(error = %e, "a committed configuration does not decode"),
                }
            }
            put_register_record(&self.store, &record)?;
            self.store.put_paxos_state(CONFIG_KEY, &next.encode())?;
            Ok(Unsynced::NONE)
        } else {
            let (_, unsynced) =
                self.store
                    .commit_paxos_unsynced(&c.key, record, Some(&next.encode()))?;
            Ok(unsynced)
        }
    }

    /// The garbage-collection floor: ballots at or below it are refused on
    /// every key.
    pub(super) fn floor(&self) -> Option<Ballot> {
        self.floor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Raises the floor to `to` (never lowers it), durably before returning;
    /// refuses a floor from the future ([`gc::check_floor`]).
    fn raise_floor(&self, to: Ballot) -> Result<(), StrongError> {
        gc::check_floor(&to, self.clock.physical_ms(), self.clock.max_offset_ms())?;
        let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
        if floor.as_ref().is_some_and(|f| *f >= to) {
            return Ok(());
        }
        let bytes = prost::Message::encode_to_vec(&wire::ballot_to(&to));
        self.store.put_meta(FLOOR_META, &bytes)?;
        *floor = Some(to);
        Ok(())
    }

    /// Answers a garbage-collection listing or report (after raising the floor).
    pub(super) fn gc_list(&self, q: pb::PaxosGcList) -> Result<pb::PaxosGcListReply, StrongError> {
        let floor = wire::gc_floor_from(q.floor)?;
        self.raise_floor(floor.clone())?;
        let floor = self.floor().unwrap_or(floor);
        // A report vouches for commits, and a commit is written before it is
        // synced: only what is durable may be reported.
        self.store.wait_synced(self.store.written())?;
        let report = |key: &[u8], bytes: Option<Vec<u8>>| -> Result<Report, StrongError> {
            if key == CONFIG_KEY {
                // The register's record is never deleted.
                return Ok(Report::Keep);
            }
            let state = bytes.map(|b| decode_state(key, &b)).transpose()?;
            Ok(Report::of(state.as_ref(), &floor))
        };
        let mut reply = pb::PaxosGcListReply {
            from: self.me.to_string(),
            ..Default::default()
        };
        if q.keys.is_empty() {
            let limit = (q.limit as usize).clamp(1, KEYS_PAGE);
            let after = (!q.from_start).then_some(q.start_after);
            let page = self.store.paxos_states(after.as_deref(), limit + 1)?;
            reply.more = page.len() > limit;
            for (key, bytes) in page.into_iter().take(limit) {
                let r = report(&key, Some(bytes.clone()))?;
                if matches!(r, Report::Reclaimable(_)) {
                    reply.entries.push(wire::gc_entry_to(&key, &r));
                } else if key != CONFIG_KEY {
                    tracing::debug!(
                        key = %key.escape_ascii(),
                        state = ?decode_state(&key, &bytes).ok(),
                        floor = ?floor,
                        "collection keeps this record"
                    );
                }
                reply.last = key;
            }
        } else {
            for key in q.keys.iter().take(KEYS_PAGE) {
                let r = report(key, self.store.paxos_state(key)?)?;
                reply.entries.push(wire::gc_entry_to(key, &r));
            }
        }
        Ok(reply)
    }

    /// Deletes the records every voter agreed may go, each re-checked under
    /// its key's lock (after raising the floor).
    pub(super) fn gc_forget(&self, f: pb::PaxosForget) -> Result<pb::PaxosForgotten, StrongError> {
        let floor = wire::gc_floor_from(f.floor)?;
        self.raise_floor(floor.clone())?;
        let floor = self.floor().unwrap_or(floor);
        let mut forgotten = 0u32;
        for entry in f.entries.into_iter().take(KEYS_PAGE) {
            let (key, Report::Reclaimable(agreed)) = wire::gc_entry_from(entry)? else {
                continue;
            };
            if key == CONFIG_KEY {
                continue;
            }
            let _g = self.acceptor_locks[stripe(&key)]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(bytes) = self.store.paxos_state(&key)? else {
                continue;
            };
            let state = decode_state(&key, &bytes)?;
            if gc::may_forget(&state, &agreed, &floor) {
                self.store.delete_paxos_state(&key)?;
                forgotten += 1;
            }
        }
        Ok(pb::PaxosForgotten {
            from: self.me.to_string(),
            forgotten,
        })
    }

    /// What this node answers a configuration query with.
    fn config_info(&self) -> pb::ConfigInfo {
        let candidates = voting::candidates(self.voting.expected, &self.members.borrow());
        pb::ConfigInfo {
            from: self.me.to_string(),
            expected: self.voting.expected,
            candidates: candidates
                .into_iter()
                .flatten()
                .map(|id| id.to_string())
                .collect(),
            config: self.voting.held().as_ref().map(wire::config_to),
        }
    }

    /// Answers a peer's consensus frame (its sender was already checked
    /// against its certificate); one reply frame, once durable.
    pub(crate) async fn serve(
        self: Arc<Self>,
        body: Body,
        mut writer: FrameWriter,
    ) -> Result<(), StrongError> {
        if matches!(body, Body::LevelRead(_) | Body::LevelRepair(_)) {
            let this = self.clone();
            let reply = tokio::task::spawn_blocking(move || this.serve_level(body))
                .await
                .map_err(|e| StrongError::Task(e.to_string()))??;
            match reply {
                Some(r) => {
                    // The coordinator may have its level already and be gone.
                    if writer.send(&wire::encode(r)).await.is_ok() {
                        let _ = writer.finish();
                    }
                }
                None => {
                    let _ = writer.finish();
                }
            }
            return Ok(());
        }
        // An acceptor whose store is incomplete (bootstrapping) or refused
        // (fenced) stays silent: to the proposer it is one voter down.
        if !matches!(body, Body::ConfigQuery(_) | Body::PaxosKeys(_))
            && (self.availability.check_writable().is_err() || self.voting.forfeit())
        {
            let _ = writer.finish();
            return Ok(());
        }
        let this = self.clone();
        let reply = tokio::task::spawn_blocking(move || -> Result<Body, StrongError> {
            let me = this.me.clone();
            Ok(match body {
                Body::PaxosBatch(batch) => {
                    let items = batch
                        .items
                        .into_iter()
                        .map(|i| {
                            wire::item_from(i, &batch.from)
                                .inspect_err(|e| debug!(error = %e, "a batch item does not decode"))
                                .ok()
                        })
                        .collect();
                    let replies = this.serve_items(items);
                    let config = this.voting.held();
                    Body::PaxosBatchReply(pb::PaxosBatchReply {
                        from: me.to_string(),
                        items: replies
                            .iter()
                            .map(|r| wire::item_reply_to(&me, r.as_ref(), config.as_ref()))
                            .collect(),
                    })
                }
                Body::ConfigQuery(_) => Body::ConfigInfo(this.config_info()),
                Body::PaxosGcList(q) => Body::PaxosGcListReply(this.gc_list(q)?),
                Body::PaxosForget(f) => Body::PaxosForgotten(this.gc_forget(f)?),
                Body::PaxosKeys(q) => {
                    let limit = (q.limit as usize).clamp(1, KEYS_PAGE);
                    let after = (!q.from_start).then_some(q.start_after);
                    let page = this.store.paxos_states(after.as_deref(), limit + 1)?;
                    let more = page.len() > limit;
                    Body::PaxosKeysReply(pb::PaxosKeysReply {
                        from: me.to_string(),
                        keys: page.into_iter().take(limit).map(|(k, _)| k).collect(),
                        more,
                    })
                }
                _ => return Err(wire::WireError::Unexpected("not a consensus request").into()),
            })
        })
        .await
        .map_err(|e| StrongError::Task(e.to_string()))??;
        // The state is durable already; a proposer whose round ended (it
        // had its quorum, or gave up) stops the stream, which is no fault.
        match writer.send(&wire::encode(reply)).await {
            Ok(()) => {
                let _ = writer.finish();
            }
            Err(e) => debug!(error = %e, "the proposer stopped listening before this reply"),
        }
        Ok(())
    }

    /// Asks `id` what it expects, sees and holds.
    pub(super) async fn query(&self, id: &NodeId) -> Result<Answer, StrongError> {
        let body = Body::ConfigQuery(pb::ConfigQuery {
            from: self.me.to_string(),
            expected: self.voting.expected,
        });
        let Body::ConfigInfo(info) = self.remote(id, body).await? else {
            return Err(wire::WireError::Unexpected("not a configuration answer").into());
        };
        if info.from != id.as_str() {
            return Err(StrongError::NoAnswer(format!(
                "{id} (answered as {})",
                info.from
            )));
        }
        let candidates = info
            .candidates
            .into_iter()
            .map(NodeId::new)
            .collect::<Result<_, _>>()
            .map_err(wire::WireError::from)?;
        Ok(Answer {
            expected: info.expected,
            candidates,
            config: info.config.map(wire::config_from).transpose()?,
        })
    }

    /// The formation worker: until this node holds a configuration, finds
    /// its members, and forms or adopts one (see [`voting`]).
    pub(crate) async fn run_formation(self: Arc<Self>, shutdown: CancellationToken) {
        let started = tokio::time::Instant::now();
        while self.voting.get().is_none() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(FORMATION_EVERY) => {}
            }
            if let Err(e) = self
                .formation_step(started.elapsed() >= OTHERS_PROPOSE_AFTER)
                .await
            {
                debug!(error = %e, "formation step failed");
            }
        }
    }

    async fn formation_step(self: &Arc<Self>, others_may_propose: bool) -> Result<(), StrongError> {
        let members = self.members.borrow().clone();
        let mine = voting::candidates(self.voting.expected, &members);
        let mut answers = BTreeMap::new();
        for m in members.iter().filter(|m| m.id != self.me.as_str()) {
            let Ok(id) = NodeId::new(m.id.clone()) else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(2), self.query(&id)).await {
                Ok(Ok(a)) => {
                    answers.insert(id, a);
                }
                Ok(Err(e)) => debug!(peer = %id, error = %e, "configuration query failed"),
                Err(_) => debug!(peer = %id, "configuration query timed out"),
            }
        }
        match decide_formation(
            &self.me,
            self.voting.expected,
            mine.as_ref(),
            &answers,
            others_may_propose,
        ) {
            Step::Wait(why) => self.voting.set_pending(why),
            Step::Adopt(config) => {
                self.voting.adopt(&self.store, &config)?;
            }
            Step::Propose(voters) => {
                self.voting
                    .set_pending("proposing the first configuration".into());
                let first = Held::plain(VotingConfig::new(1, voters.iter().cloned()));
                let bootstrap = Held::plain(VotingConfig::new(0, voters));
                let op = Op::Cas {
                    expect: Expect::Absent,
                    new: Some(encode_config(&first)),
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                let outcome = self
                    .run_round(CONFIG_KEY, &op, &bootstrap, deadline)
                    .await?;
                match outcome {
                    Outcome::Applied { .. } => {
                        info!(
                            voters = first.config.voters.len(),
                            "formed the voting configuration"
                        );
                    }
                    Outcome::NotApplied {
                        value: Some(bytes), ..
                    } => {
                        // Another member formed it first (with the same set).
                        if let Ok(c) = voting::decode_config(&bytes) {
                            self.voting.adopt(&self.store, &c)?;
                        }
                    }
                    other => debug!(outcome = ?other, "formation round did not decide"),
                }
            }
        }
        Ok(())
    }
}
