//! When a tombstone may go, and what the write log may still deliver: the
//! purge rule as pure functions, tested on their own.
//!
//! A delete leaves a tombstone so that an older value elsewhere loses to it.
//! Purging the tombstone is safe only once no replica can still produce an
//! older value of the key. Vergent's rule (Garage's "every replica has
//! acknowledged", with Cassandra's grace period on top):
//!
//! 1. the tombstone (or expired value) is older than the grace period by its
//!    HLC ([`Grace::purgeable`]);
//! 2. every member of the *roster* — every peer this node ever learned of,
//!    persisted, not only the members gossip lists right now — answered a
//!    purge check for it: "I hold this version, a newer one, or nothing of
//!    the key" (a holder of an older record applies the tombstone first, and
//!    answers only once that is durable);
//! 3. that was so in two sweeps in a row ([`PurgeGate`]), so a record that was
//!    in flight between two replicas during the first check (read from one
//!    before it held the tombstone, applied at the other after it answered)
//!    has landed and been checked again;
//! 4. and no peer answered with a member this node had not heard of (its
//!    roster is learned first, and counts from the next sweep).
//!
//! A member that cannot be asked (down, partitioned, never reachable) holds
//! every purge back, however long: a partition that outlives the grace
//! period therefore never brings deleted keys back when it heals. The cost
//! is that tombstones accumulate meanwhile; `status` says which member holds
//! them back.
//!
//! The replication log is a second copy of recent writes outside the
//! digests that repair compares and the purge check covers, so it must never
//! deliver a value old enough that its tombstone may have been purged: the
//! sender withholds entries older than [`Grace::ship_from_ms`] and the
//! receiver ignores replicated records older than [`Grace::apply_from_ms`]
//! (both leave them to repair, which the purge check covers). The margins
//! between the three horizons absorb clock offsets between nodes and
//! batches in flight.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use vergent_types::Version;

/// The grace period and the margins derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grace {
    /// Tombstones younger than this are never purged, in ms.
    pub grace_ms: u64,
    /// Largest clock offset accepted between nodes, in ms.
    pub max_offset_ms: u64,
}

impl Grace {
    /// Distance between the purge horizon and the log's horizons: a quarter
    /// of the grace, and at least twice the clock offset nodes may have.
    pub fn margin_ms(&self) -> u64 {
        (self.grace_ms / 4).max(2 * self.max_offset_ms)
    }

    /// Tombstones and expired values with an HLC (or expiry) below this
    /// physical time are old enough to be checked for purging.
    pub fn purge_before_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.grace_ms)
    }

    /// Whether a record is old enough to be a purge candidate: a tombstone
    /// older than the grace, or a value that expired longer ago than that.
    pub fn purgeable(
        &self,
        now_ms: u64,
        hlc_ms: u64,
        tombstone: bool,
        expires_at_ms: Option<u64>,
    ) -> bool {
        let before = self.purge_before_ms(now_ms);
        hlc_ms < before && (tombstone || expires_at_ms.is_some_and(|at| at < before))
    }

    /// Log entries with an HLC below this are not shipped: a tombstone that
    /// superseded them may have been purged by the time they land.
    pub fn ship_from_ms(&self, now_ms: u64) -> u64 {
        self.purge_before_ms(now_ms)
            .saturating_add(self.margin_ms())
    }

    /// Replicated records with an HLC below this are not applied (repair
    /// brings them, under the purge check), whatever the sender's clock said.
    pub fn apply_from_ms(&self, now_ms: u64) -> u64 {
        self.purge_before_ms(now_ms)
            .saturating_add(self.margin_ms() / 2)
    }
}

/// One peer's answer to a purge check of a page of candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReply {
    /// Per candidate, in order: the peer holds that version, a newer one, or
    /// nothing of the key (durably).
    pub held: Vec<bool>,
    /// Every member the peer knows of, so no holder is missed.
    pub roster: Vec<String>,
}

/// Why nothing of a page may be purged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldBack {
    /// Roster members that did not answer (unreachable, or refused).
    pub unanswered: Vec<String>,
    /// Members a peer knows that this node did not: add them to the roster;
    /// they count from the next sweep.
    pub unknown: Vec<String>,
}

/// The two-sweep gate of the purge rule (see the module docs).
#[derive(Debug)]
pub struct PurgeGate {
    /// Candidates every member confirmed in the previous sweep.
    previous: HashSet<(Vec<u8>, Version)>,
    /// Confirmed so far in this sweep.
    current: HashSet<(Vec<u8>, Version)>,
    /// Most candidates remembered from one sweep to the next; the rest wait.
    capacity: usize,
}

impl PurgeGate {
    /// A gate remembering at most `capacity` confirmed candidates per sweep.
    pub fn new(capacity: usize) -> Self {
        Self {
            previous: HashSet::new(),
            current: HashSet::new(),
            capacity,
        }
    }

    /// Judges one page of candidates (key and version, all past the grace)
    /// against the answers of this sweep: returns the indices that may be
    /// purged now, or why none may.
    ///
    /// `me` is this node (it appears in the peers' rosters); `roster` is
    /// every other member this node knows of.
    pub fn page(
        &mut self,
        me: &str,
        candidates: &[(Vec<u8>, Version)],
        roster: &BTreeSet<String>,
        replies: &BTreeMap<String, CheckReply>,
    ) -> Result<Vec<usize>, HeldBack> {
        let unanswered: Vec<String> = roster
            .iter()
            .filter(|id| {
                replies
                    .get(*id)
                    .is_none_or(|r| r.held.len() != candidates.len())
            })
            .cloned()
            .collect();
        let unknown: BTreeSet<String> = replies
            .values()
            .flat_map(|r| r.roster.iter())
            .filter(|id| id.as_str() != me && !roster.contains(*id))
            .cloned()
            .collect();
        if !unanswered.is_empty() || !unknown.is_empty() {
            return Err(HeldBack {
                unanswered,
                unknown: unknown.into_iter().collect(),
            });
        }
        let mut purge = Vec::new();
        for (i, candidate) in candidates.iter().enumerate() {
            let confirmed = roster.iter().all(|id| replies[id].held[i]);
            if !confirmed {
                continue;
            }
            if self.previous.contains(candidate) {
                purge.push(i);
            } else if self.current.len() < self.capacity {
                self.current.insert(candidate.clone());
            }
        }
        Ok(purge)
    }

    /// Closes a sweep whose checks were made: what it confirmed (and did not
    /// purge yet) is what the next sweep may purge.
    pub fn end_sweep(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    /// Closes a sweep that stopped early (a member did not answer): what it
    /// confirmed joins what the previous sweeps confirmed, so a candidate
    /// confirmed once is purged at its next confirmation.
    pub fn abort_sweep(&mut self) {
        let current = std::mem::take(&mut self.current);
        for c in current {
            if self.previous.len() >= self.capacity {
                break;
            }
            self.previous.insert(c);
        }
    }

    /// Candidates waiting for their second confirmation.
    pub fn waiting(&self) -> usize {
        self.previous.len()
    }
}

/// Member expiry, the rule that replaced refusing a node that was away
/// longer than the grace: charges `elapsed_ms` of this node's own running
/// time (at most `max_step_ms` per call, so a node that was down itself
/// does not hold its downtime against the others) to every member not in
/// `alive`, resets those in it, and returns the members whose unseen time
/// now exceeds `expiry_ms`: they stop holding purges back and are fenced.
pub fn charge_unseen<'a>(
    members: impl IntoIterator<Item = (&'a String, &'a mut u64)>,
    alive: &BTreeSet<String>,
    elapsed_ms: u64,
    max_step_ms: u64,
    expiry_ms: u64,
) -> Vec<String> {
    let step = elapsed_ms.min(max_step_ms);
    let mut expired = Vec::new();
    for (id, unseen) in members {
        if alive.contains(id) {
            *unseen = 0;
        } else {
            *unseen = unseen.saturating_add(step);
            if *unseen > expiry_ms {
                expired.push(id.clone());
            }
        }
    }
    expired
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;
    use vergent_types::NodeId;

    use super::*;

    fn cand(key: &str, ms: u64) -> (Vec<u8>, Version) {
        (
            key.as_bytes().to_vec(),
            Version::new(Timestamp::new(ms, 0), NodeId::new("a").expect("id")),
        )
    }

    fn roster(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn reply(held: &[bool], knows: &[&str]) -> CheckReply {
        CheckReply {
            held: held.to_vec(),
            roster: knows.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_tombstones_and_expired_values_older_than_the_grace_are_candidates() {
        let g = Grace {
            grace_ms: 1_000,
            max_offset_ms: 10,
        };
        let now = 10_000;
        assert!(g.purgeable(now, 8_999, true, None));
        assert!(!g.purgeable(now, 9_000, true, None), "exactly at the grace");
        assert!(!g.purgeable(now, 1, false, None), "a live value");
        assert!(g.purgeable(now, 100, false, Some(8_000)));
        assert!(
            !g.purgeable(now, 100, false, Some(9_500)),
            "expired less than a grace ago"
        );
    }

    #[test]
    fn the_log_horizons_sit_between_the_purge_horizon_and_now() {
        let g = Grace {
            grace_ms: 20_000,
            max_offset_ms: 500,
        };
        let now = 100_000;
        assert_eq!(g.purge_before_ms(now), 80_000);
        assert_eq!(g.apply_from_ms(now), 82_500);
        assert_eq!(g.ship_from_ms(now), 85_000);
        // A large clock offset widens the margin.
        let skewed = Grace {
            grace_ms: 1_000,
            max_offset_ms: 500,
        };
        assert_eq!(skewed.margin_ms(), 1_000);
        // Early in time nothing underflows.
        assert_eq!(g.ship_from_ms(5), 5_000);
    }

    #[test]
    fn a_candidate_is_purged_only_after_every_member_confirmed_it_in_two_sweeps() {
        let mut gate = PurgeGate::new(100);
        let page = [cand("k1", 1), cand("k2", 2)];
        let members = roster(&["b", "c"]);
        let replies = BTreeMap::from([
            ("b".to_string(), reply(&[true, true], &["a", "c"])),
            ("c".to_string(), reply(&[true, false], &["a", "b"])),
        ]);
        assert_eq!(gate.page("a", &page, &members, &replies), Ok(vec![]));
        gate.end_sweep();
        assert_eq!(gate.waiting(), 1);
        assert_eq!(gate.page("a", &page, &members, &replies), Ok(vec![0]));
    }

    #[test]
    fn a_member_that_does_not_answer_holds_every_purge_back() {
        let mut gate = PurgeGate::new(100);
        let page = [cand("k", 1)];
        let members = roster(&["b", "c"]);
        let only_b = BTreeMap::from([("b".to_string(), reply(&[true], &["a", "c"]))]);
        for _ in 0..3 {
            let held = gate
                .page("a", &page, &members, &only_b)
                .expect_err("c never answered");
            assert_eq!(held.unanswered, vec!["c".to_string()]);
            gate.end_sweep();
        }
        // A malformed answer counts as none.
        let short = BTreeMap::from([
            ("b".to_string(), reply(&[true], &[])),
            ("c".to_string(), reply(&[], &[])),
        ]);
        assert!(gate.page("a", &page, &members, &short).is_err());
    }

    #[test]
    fn a_confirmation_from_a_sweep_cut_short_still_counts_once() {
        let mut gate = PurgeGate::new(100);
        let page = [cand("k", 1)];
        let members = roster(&["b"]);
        let yes = BTreeMap::from([("b".to_string(), reply(&[true], &[]))]);
        assert_eq!(gate.page("a", &page, &members, &yes), Ok(vec![]));
        gate.abort_sweep();
        assert_eq!(gate.page("a", &page, &members, &yes), Ok(vec![0]));
    }

    #[test]
    fn a_member_only_a_peer_knew_of_is_learned_before_anything_is_purged() {
        let mut gate = PurgeGate::new(100);
        let page = [cand("k", 1)];
        let members = roster(&["b"]);
        let replies = BTreeMap::from([("b".to_string(), reply(&[true], &["a", "d"]))]);
        for _ in 0..2 {
            let held = gate
                .page("a", &page, &members, &replies)
                .expect_err("d is unknown");
            assert_eq!(held.unknown, vec!["d".to_string()]);
            gate.end_sweep();
        }
    }

    #[test]
    fn with_no_peers_at_all_a_candidate_needs_only_the_two_sweeps() {
        let mut gate = PurgeGate::new(100);
        let page = [cand("k", 1)];
        let none = BTreeMap::new();
        assert_eq!(gate.page("a", &page, &roster(&[]), &none), Ok(vec![]));
        gate.end_sweep();
        assert_eq!(gate.page("a", &page, &roster(&[]), &none), Ok(vec![0]));
    }

    #[test]
    fn a_newer_version_of_a_confirmed_key_starts_over() {
        let mut gate = PurgeGate::new(100);
        let members = roster(&[]);
        let none = BTreeMap::new();
        assert_eq!(gate.page("a", &[cand("k", 1)], &members, &none), Ok(vec![]));
        gate.end_sweep();
        assert_eq!(gate.page("a", &[cand("k", 2)], &members, &none), Ok(vec![]));
    }

    #[test]
    fn a_member_expires_only_after_the_expiry_of_this_nodes_own_running_time() {
        let mut unseen: BTreeMap<String, u64> = [("a".to_string(), 0), ("b".to_string(), 0)]
            .into_iter()
            .collect();
        let alive: BTreeSet<String> = ["a".to_string()].into_iter().collect();
        // A pass after this node was down for a day charges one step only.
        assert!(charge_unseen(&mut unseen, &alive, 86_400_000, 120_000, 300_000).is_empty());
        assert_eq!(unseen["b"], 120_000);
        assert!(charge_unseen(&mut unseen, &alive, 120_000, 120_000, 300_000).is_empty());
        assert_eq!(
            charge_unseen(&mut unseen, &alive, 120_000, 120_000, 300_000),
            ["b".to_string()]
        );
        assert_eq!(unseen["a"], 0, "a member seen alive is never charged");
        // Seen again: its clock starts over.
        let both: BTreeSet<String> = ["a".to_string(), "b".to_string()].into_iter().collect();
        assert!(charge_unseen(&mut unseen, &both, 1, 120_000, 300_000).is_empty());
        assert_eq!(unseen["b"], 0);
    }
}
