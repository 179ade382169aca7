//! Changes of the voter set by joint consensus: the register moves to a
//! joint configuration (quorums need majorities of the old and the new
//! set), every key with consensus state is re-proposed under it so that a
//! majority of the new set holds its latest value, and then the register
//! moves to the new set alone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_consensus::{Expect, Op, Outcome, VotingConfig};
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;
use vergent_wire::peer::v1::frame::Body;

use super::acceptor::KEYS_PAGE;
use super::voting::{CONFIG_KEY, Held, decode_config, encode_config};
use super::{ConfigChange, Strong, StrongError, wire};

/// Marks a node that has voted: once removed, it does not join again by
/// itself (an operator removed it); wiping its data dir lets it.
const WAS_VOTER_META: &str = "voting/was_voter";
/// A joint change in flight this long is finished by whichever member sees it.
const STALLED_CHANGE: Duration = Duration::from_secs(3);
/// How often a non-voter checks whether to ask to join.
const JOIN_EVERY: Duration = Duration::from_secs(1);

impl Strong {
    /// Moves the voters to `target` by a joint change, resuming one already
    /// in flight toward the same set; returns the final configuration.
    pub(crate) async fn change_voters(
        self: &Arc<Self>,
        target: BTreeSet<NodeId>,
    ) -> Result<ConfigChange, StrongError> {
        self.availability.check_writable()?;
        if target.is_empty() {
            return Err(StrongError::BadChange(
                "a configuration needs at least one voter".into(),
            ));
        }
        let held = self
            .voting
            .held()
            .ok_or_else(|| StrongError::NoConfig(self.voting.pending()))?;
        let joint = match &held.config.joining {
            Some(j) if *j == target => held,
            Some(j) => {
                return Err(StrongError::BadChange(format!(
                    "another change (to {}) is in flight; finish it first",
                    names(j)
                )));
            }
            None if held.config.voters == target => return Ok(self.confirm(held).await),
            None => {
                let next = Held {
                    config: VotingConfig::joint(
                        held.epoch() + 1,
                        held.config.voters.iter().cloned(),
                        target.iter().cloned(),
                    ),
                    strict: held.strict.clone(),
                };
                self.cas_register(&held, &next).await?;
                info!(
                    from = %names(&held.config.voters),
                    to = %names(&target),
                    epoch = next.epoch(),
                    "joint configuration in force; re-proposing every key"
                );
                next
            }
        };
        let moved = self.transfer(&joint).await?;
        let last = Held {
            config: VotingConfig::new(joint.epoch() + 1, target.iter().cloned()),
            strict: joint.strict.clone(),
        };
        self.cas_register(&joint, &last).await?;
        info!(voters = %names(&target), epoch = last.epoch(), keys = moved, "voter change done");
        Ok(self.confirm(last).await)
    }

    /// Moves the register from `from` to `to` by CAS; anything else there
    /// means another change won, which is reported as contention.
    async fn cas_register(self: &Arc<Self>, from: &Held, to: &Held) -> Result<(), StrongError> {
        let op = Op::Cas {
            expect: Expect::Value(encode_config(from)),
            new: Some(encode_config(to)),
        };
        match self.execute(CONFIG_KEY.to_vec(), op).await? {
            Outcome::Applied { .. } => Ok(()),
            Outcome::NotApplied {
                value: Some(bytes), ..
            } => {
                let Ok(h) = decode_config(&bytes) else {
                    return Err(StrongError::Corrupt("the configuration register".into()));
                };
                self.voting.adopt(&self.store, &h)?;
                // Another member finishing the same change got there first.
                if h == *to {
                    Ok(())
                } else {
                    Err(StrongError::Contention)
                }
            }
            _ => Err(StrongError::Contention),
        }
    }

    /// Re-proposes (reads, writing back where the replicas disagree) every
    /// key a majority of the old voters holds consensus state for: a value
    /// chosen under the old set sits at a majority of it, so that majority
    /// knows every such key. Returns how many keys were handled.
    async fn transfer(self: &Arc<Self>, joint: &Held) -> Result<usize, StrongError> {
        let old = &joint.config.voters;
        let mut keys = BTreeSet::new();
        let mut answered = 0;
        for id in old {
            match self.list_keys(id).await {
                Ok(k) => {
                    keys.extend(k);
                    answered += 1;
                }
                Err(e) => debug!(peer = %id, error = %e, "could not list its keys"),
            }
        }
        let needed = old.len() / 2 + 1;
        if answered < needed {
            return Err(StrongError::Unavailable {
                needed,
                voters: old.len(),
                reachable: answered,
            });
        }
        keys.remove(CONFIG_KEY);
        let n = keys.len();
        for key in keys {
            self.execute(key, Op::Read).await?;
        }
        Ok(n)
    }

    /// Every key `id`'s acceptor holds state for.
    async fn list_keys(&self, id: &NodeId) -> Result<Vec<Vec<u8>>, StrongError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (keys, more) = if *id == self.me {
                let store = self.store.clone();
                let from = after.clone();
                let page = tokio::task::spawn_blocking(move || {
                    store.paxos_states(from.as_deref(), KEYS_PAGE + 1)
                })
                .await
                .map_err(|e| StrongError::Task(e.to_string()))??;
                let more = page.len() > KEYS_PAGE;
                (
                    page.into_iter().take(KEYS_PAGE).map(|(k, _)| k).collect(),
                    more,
                )
            } else {
                let body = Body::PaxosKeys(pb::PaxosKeys {
                    from: self.me.to_string(),
                    from_start: after.is_none(),
                    start_after: after.clone().unwrap_or_default(),
                    limit: KEYS_PAGE as u32,
                });
                let reply = tokio::time::timeout(Duration::from_secs(5), self.remote(id, body))
                    .await
                    .map_err(|_| StrongError::NoAnswer(id.to_string()))??;
                let Body::PaxosKeysReply(r) = reply else {
                    return Err(wire::WireError::Unexpected("not a key listing").into());
                };
                if r.from != id.as_str() {
                    return Err(StrongError::NoAnswer(format!(
                        "{id} (answered as {})",
                        r.from
                    )));
                }
                (r.keys, r.more)
            };
            after = keys.last().cloned();
            out.extend(keys);
            if !more || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// While this node holds a configuration it is not a voter of, and it
    /// serves (bootstrap done), it asks to be added; a node that was a voter
    /// and was removed stays out until its data dir is wiped.
    pub(crate) async fn run_join(self: Arc<Self>, shutdown: CancellationToken) {
        // How long this node has seen the current joint change in flight.
        let mut joint_since: Option<(u64, tokio::time::Instant)> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(JOIN_EVERY) => {}
            }
            let Some(held) = self.voting.held() else {
                continue;
            };
            // A change whose coordinator failed or died midway: any member
            // finishes it (every step is a CAS, so two finishers are harmless).
            if let Some(target) = &held.config.joining {
                let since = match joint_since {
                    Some((epoch, at)) if epoch == held.epoch() => at,
                    _ => {
                        let now = tokio::time::Instant::now();
                        joint_since = Some((held.epoch(), now));
                        now
                    }
                };
                if held.config.is_member(&self.me) && since.elapsed() >= STALLED_CHANGE {
                    match self.change_voters(target.clone()).await {
                        Ok(c) => info!(epoch = c.held.epoch(), "finished a stalled voter change"),
                        Err(e) => {
                            info!(error = %e, "finishing a stalled voter change failed; retrying")
                        }
                    }
                }
                continue;
            }
            if self.voting.forfeit() {
                if held.config.is_member(&self.me) {
                    // Out first (the others' majority decides), then back in
                    // as a fresh voter by the ordinary join below.
                    let mut target = held.config.voters.clone();
                    target.remove(&self.me);
                    match self.change_voters(target).await {
                        Ok(_) => info!("a wiped voter's old vote is removed; joining afresh"),
                        Err(e) => {
                            info!(error = %e, "removing this store's forfeit vote failed; retrying")
                        }
                    }
                } else if let Err(e) = self.voting.clear_forfeit(&self.store) {
                    warn!(error = %e, "could not clear the forfeit mark");
                }
                continue;
            }
            if held.config.is_member(&self.me) {
                if let Ok(None) = self.store.get_meta(WAS_VOTER_META)
                    && let Err(e) = self.store.put_meta(WAS_VOTER_META, &[1])
                {
                    warn!(error = %e, "could not record that this node votes");
                }
                continue;
            }
            if matches!(self.store.get_meta(WAS_VOTER_META), Ok(Some(_))) {
                self.voting.set_pending(
                    "this node was removed from the voting configuration; wipe its data dir to join again".into(),
                );
                continue;
            }
            if held.config.joining.is_some() || self.availability.check_writable().is_err() {
                continue;
            }
            let mut target = held.config.voters.clone();
            target.insert(self.me.clone());
            match self.change_voters(target).await {
                Ok(c) => info!(epoch = c.held.epoch(), "joined the voting configuration"),
                Err(e) => info!(error = %e, "joining the voting configuration failed; retrying"),
            }
        }
    }
}

fn names(ids: &BTreeSet<NodeId>) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
