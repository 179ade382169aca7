//! Garbage collection of per-key Paxos state: the `paxos-gc` worker.
//!
//! One voter at a time coordinates (the smallest id among the voters gossip
//! shows alive; two coordinating at once is only wasted work, since floors
//! only rise and every deletion is re-checked by the acceptor). A round:
//!
//! 1. picks a floor, [`NodeConfig::paxos_gc_after`](crate::NodeConfig)
//!    behind this node's clock, and asks every voter to list its reclaimable
//!    keys; each voter first raises its floor (durably), so from then on it
//!    refuses every ballot at or below it;
//! 2. asks every voter for its report on the union of those keys;
//! 3. tells every voter to delete the keys all reports agree on
//!    ([`vergent_consensus::gc::agreed`]).
//!
//! Any voter not answering steps 1–2 ends the round with nothing deleted.
//! The rules and why they are safe are in `vergent_consensus::gc`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use vergent_consensus::Ballot;
use vergent_consensus::gc::{Report, agreed, needs_round};
use vergent_gossip::State;
use vergent_hlc::Timestamp;
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::acceptor::KEYS_PAGE;
use super::{Strong, StrongError, wire};

/// Most keys one round considers.
const ROUND_KEYS: usize = 8 * KEYS_PAGE;
/// Reads one collection runs, at most, to settle keys a lost commit left
/// undecided on some voter.
const ROUNDS_PER_COLLECTION: usize = 64;

impl Strong {
    /// The `paxos-gc` worker: a collection round every half of
    /// `gc_after` (between 1 s and 5 min) while this node coordinates.
    pub(crate) async fn run_gc(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.gc_after / 2).clamp(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if !self.coordinates_gc() {
                continue;
            }
            match self.collect().await {
                Ok(0) => {}
                Ok(n) => info!(
                    keys = n,
                    "reclaimed per-key consensus state every voter had committed"
                ),
                Err(e) => {
                    debug!(error = %e, "per-key consensus state collection skipped this round")
                }
            }
        }
    }

    /// Per-key consensus records held here, the register's excluded
    /// (counted up to a million; 0 when the count fails).
    pub(crate) fn paxos_records(&self) -> u64 {
        let register = self
            .store
            .paxos_state(super::voting::CONFIG_KEY)
            .ok()
            .flatten()
            .is_some();
        let n = self.store.paxos_state_count(1_000_000).unwrap_or(0);
        (n - usize::from(register && n > 0)) as u64
    }

    /// Whether this node runs collection rounds: it is the smallest voter
    /// gossip shows alive, and no voter change is in flight.
    fn coordinates_gc(&self) -> bool {
        let Some(held) = self.voting.held() else {
            return false;
        };
        if held.config.joining.is_some() || !held.config.voters.contains(&self.me) {
            return false;
        }
        let members = self.members.borrow();
        let alive = |id: &NodeId| {
            *id == self.me
                || members
                    .iter()
                    .any(|m| m.id == id.as_str() && matches!(m.state, State::Alive))
        };
        held.config.voters.iter().find(|id| alive(id)) == Some(&self.me)
    }

    /// One round; returns how many keys every voter was told to delete.
    pub(crate) async fn collect(self: &Arc<Self>) -> Result<usize, StrongError> {
        // This node answers for itself below: it must be a voter in good standing.
        self.availability.check_writable()?;
        if self.voting.forfeit() {
            return Err(StrongError::Forfeit);
        }
        let held = self
            .voting
            .held()
            .ok_or_else(|| StrongError::NoConfig(self.voting.pending()))?;
        if held.config.joining.is_some() {
            return Ok(0);
        }
        let voters: Vec<NodeId> = held.config.voters.iter().cloned().collect();
        let now = self.clock.with_hlc(&self.store, |hlc, now| hlc.now(now))?;
        let age_ms = u64::try_from(self.gc_after.as_millis()).unwrap_or(u64::MAX);
        let floor = Ballot::new(
            Timestamp::new(now.physical_ms().saturating_sub(age_ms), 0),
            self.me.clone(),
        );

        // 1. Every voter raises its floor and lists its candidates.
        let mut candidates = BTreeSet::new();
        for v in &voters {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let q = pb::PaxosGcList {
                    from: self.me.to_string(),
                    floor: Some(wire::ballot_to(&floor)),
                    keys: Vec::new(),
                    from_start: after.is_none(),
                    start_after: after.clone().unwrap_or_default(),
                    limit: KEYS_PAGE as u32,
                };
                let reply = self.gc_list_at(v, q).await?;
                for e in reply.entries {
                    candidates.insert(wire::gc_entry_from(e)?.0);
                }
                if !reply.more || candidates.len() >= ROUND_KEYS || reply.last.is_empty() {
                    break;
                }
                after = Some(reply.last);
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }

        // 2. Every voter reports on every candidate.
        let candidates: Vec<Vec<u8>> = candidates.into_iter().take(ROUND_KEYS).collect();
        let mut reports: BTreeMap<Vec<u8>, Vec<(NodeId, Report)>> = BTreeMap::new();
        for chunk in candidates.chunks(KEYS_PAGE) {
            for v in &voters {
                let q = pb::PaxosGcList {
                    from: self.me.to_string(),
                    floor: Some(wire::ballot_to(&floor)),
                    keys: chunk.to_vec(),
                    ..Default::default()
                };
                let reply = self.gc_list_at(v, q).await?;
                let mut answered = BTreeSet::new();
                for e in reply.entries {
                    let (key, report) = wire::gc_entry_from(e)?;
                    if chunk.contains(&key) && answered.insert(key.clone()) {
                        reports.entry(key).or_default().push((v.clone(), report));
                    }
                }
                if answered.len() != chunk.len() {
                    return Err(StrongError::NoAnswer(format!(
                        "{v} (reported on {} of {} keys)",
                        answered.len(),
                        chunk.len()
                    )));
                }
            }
        }
        let complete: Vec<(&Vec<u8>, Vec<&Report>)> = reports
            .iter()
            .filter(|(_, r)| r.len() == voters.len())
            .map(|(k, r)| (k, r.iter().map(|(_, report)| report).collect()))
            .collect();

        // 3. Delete what every report agrees on, everywhere.
        let mut forget: BTreeMap<&NodeId, Vec<pb::PaxosGcEntry>> = BTreeMap::new();
        let mut agreed_keys = 0;
        for (key, _) in complete
            .iter()
            .filter(|(_, r)| agreed(r.iter().copied()).is_some())
        {
            agreed_keys += 1;
            for (v, report) in &reports[*key] {
                if matches!(report, Report::Reclaimable(_)) {
                    forget
                        .entry(v)
                        .or_default()
                        .push(wire::gc_entry_to(key, report));
                }
            }
        }
        for (v, entries) in forget {
            for chunk in entries.chunks(KEYS_PAGE) {
                let f = pb::PaxosForget {
                    from: self.me.to_string(),
                    floor: Some(wire::ballot_to(&floor)),
                    entries: chunk.to_vec(),
                };
                // A voter that misses this keeps its records; the next round
                // finds them again.
                if let Err(e) = self.gc_forget_at(v, f).await {
                    debug!(voter = %v, error = %e, "a voter did not delete reclaimable state");
                }
            }
        }

        // 4. A key some voters could release while another holds a proposal
        // never committed there (its commit was lost) stays until a round
        // decides it: a read completes the proposal and commits it on every
        // voter, and a later collection finds the key agreed.
        let unsettled: Vec<Vec<u8>> = complete
            .iter()
            .filter(|(_, r)| needs_round(r.iter().copied()))
            .map(|(k, _)| (*k).clone())
            .take(ROUNDS_PER_COLLECTION)
            .collect();
        for key in unsettled {
            if let Err(e) = self.read(key).await {
                debug!(error = %e, "a read to settle a key for collection failed");
            }
        }
        Ok(agreed_keys)
    }

    async fn gc_list_at(
        self: &Arc<Self>,
        to: &NodeId,
        q: pb::PaxosGcList,
    ) -> Result<pb::PaxosGcListReply, StrongError> {
        match self.gc_ask(to, Body::PaxosGcList(q)).await? {
            Body::PaxosGcListReply(r) => Ok(r),
            _ => Err(wire::WireError::Unexpected("not a collection report").into()),
        }
    }

    async fn gc_forget_at(
        self: &Arc<Self>,
        to: &NodeId,
        f: pb::PaxosForget,
    ) -> Result<u32, StrongError> {
        match self.gc_ask(to, Body::PaxosForget(f)).await? {
            Body::PaxosForgotten(r) => Ok(r.forgotten),
            _ => Err(wire::WireError::Unexpected("not a deletion answer").into()),
        }
    }

    /// Sends a collection request to voter `to`: this node's own acceptor
    /// on a blocking thread, a peer within the strong deadline.
    async fn gc_ask(self: &Arc<Self>, to: &NodeId, body: Body) -> Result<Body, StrongError> {
        if *to == self.me {
            let this = self.clone();
            return tokio::task::spawn_blocking(move || match body {
                Body::PaxosGcList(q) => this.gc_list(q).map(Body::PaxosGcListReply),
                Body::PaxosForget(f) => this.gc_forget(f).map(Body::PaxosForgotten),
                _ => Err(wire::WireError::Unexpected("not a collection request").into()),
            })
            .await
            .map_err(|e| StrongError::Task(e.to_string()))?;
        }
        tokio::time::timeout(super::STRONG_DEADLINE, self.remote(to, body))
            .await
            .map_err(|_| StrongError::NoAnswer(to.to_string()))?
    }
}
