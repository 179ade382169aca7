//! Garbage collection of per-key acceptor state: the rules that decide when
//! a key's record may be deleted without changing what any later round can
//! learn.
//!
//! A record holds a promise, an accepted proposal and the highest committed
//! ballot. Once a decision is committed on **every** voter (each holds the
//! value in its LWW store and no newer proposal), the record only repeats
//! what the LWW store says, except for two things a deletion would lose:
//!
//! - **the promise**: an old proposer could then be promised a ballot below
//!   the decision. A *floor* replaces it: every voter first promises, for all
//!   keys at once, to refuse any ballot at or below the floor
//!   ([`with_floor`]), and only records entirely below the floor are deleted;
//! - **the committed ballot**, which tells a later proposer that an older
//!   accepted proposal found on some voter is already decided. It is needed
//!   only if such an older proposal survives somewhere, so a key is deleted
//!   only when no voter must keep its record and every record reports the
//!   same committed ballot ([`Report`], [`agreed`]), and each voter re-checks
//!   its own record at deletion time ([`may_forget`]).
//!
//! A proposal still recorded as accepted but covered by the committed ballot
//! (accepted at or below it) is decided: it does not hold a record back.
//! One that is not covered, on a voter whose commit message was lost, only
//! a round on the key can settle ([`needs_round`]).
//!
//! A deleted key reads, to the next round, exactly like a key whose value
//! arrived by replication: the LWW record is the state.

use vergent_hlc::ClockError;

use crate::{AcceptorState, Ballot};

/// The state an acceptor applies the rules to: its record with the floor
/// as a promise (a promise on every key at once).
#[must_use]
pub fn with_floor(state: &AcceptorState, floor: Option<&Ballot>) -> AcceptorState {
    let mut out = state.clone();
    if let Some(f) = floor
        && out.promised.as_ref().is_none_or(|p| p < f)
    {
        out.promised = Some(f.clone());
    }
    out
}

/// Refuses a floor further ahead of this node's clock than the max offset:
/// a coordinator's floor lies behind its own clock, and a floor from the
/// future would refuse every round until real time caught up with it.
///
/// # Errors
///
/// [`ClockError::RemoteTooFarAhead`] for such a floor.
pub fn check_floor(
    floor: &Ballot,
    local_physical_ms: u64,
    max_offset_ms: u64,
) -> Result<(), ClockError> {
    if floor.hlc.physical_ms() > local_physical_ms.saturating_add(max_offset_ms) {
        return Err(ClockError::RemoteTooFarAhead {
            remote: floor.hlc,
            local_physical_ms,
            max_offset_ms,
        });
    }
    Ok(())
}

/// The committed ballot of a record that lies entirely below `floor` and
/// holds no accepted proposal: a candidate for deletion. `None` for any
/// other record (in flight, newer than the floor, never committed).
#[must_use]
pub fn reclaimable(state: &AcceptorState, floor: &Ballot) -> Option<Ballot> {
    let committed = state.committed.as_ref()?;
    // An accepted proposal the commit covers is decided, not in flight.
    if state
        .accepted
        .as_ref()
        .is_some_and(|a| a.ballot > *committed)
    {
        return None;
    }
    let promise_below = state.promised.as_ref().is_none_or(|p| p <= floor);
    (committed < floor && promise_below).then(|| committed.clone())
}

/// What one voter says about one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Report {
    /// No record at all: it never took part in a round on the key, or it
    /// deleted its record in an earlier collection. It holds no proposal.
    Absent,
    /// Its record is [`reclaimable`] for this committed ballot.
    Reclaimable(Ballot),
    /// Its record must stay (in flight, too recent, or not committed).
    Keep,
}

impl Report {
    /// The report of an acceptor holding `state` (`None`: no record).
    #[must_use]
    pub fn of(state: Option<&AcceptorState>, floor: &Ballot) -> Self {
        match state {
            None => Self::Absent,
            Some(s) => reclaimable(s, floor).map_or(Self::Keep, Self::Reclaimable),
        }
    }
}

/// The decision every voter's record may be deleted for: all voters
/// answered, none must keep its record, and every record reports the same
/// committed ballot. A voter without a record holds no proposal that a
/// deleted committed ballot would have covered, so it does not block; a
/// voter that has not learned the latest decision (another ballot) does.
#[must_use]
pub fn agreed<'a>(reports: impl IntoIterator<Item = &'a Report>) -> Option<Ballot> {
    let mut first: Option<&Ballot> = None;
    for r in reports {
        match r {
            Report::Keep => return None,
            Report::Absent => {}
            Report::Reclaimable(b) => match first {
                None => first = Some(b),
                Some(f) if f != b => return None,
                Some(_) => {}
            },
        }
    }
    first.cloned()
}

/// Whether the voters' reports on a key show a record that only a round on
/// the key can settle: every voter answered (the caller checks), some record
/// is reclaimable and another must stay (a proposal accepted and never
/// committed there, typically a commit message that was lost). A read of
/// the key completes it, and a later collection finds the key [`agreed`].
pub fn needs_round<'a>(reports: impl IntoIterator<Item = &'a Report> + Clone) -> bool {
    let reports = reports.into_iter().collect::<Vec<_>>();
    reports.iter().any(|r| matches!(r, Report::Reclaimable(_)))
        && reports.iter().any(|r| matches!(r, Report::Keep))
}

/// Whether this acceptor may delete its record now, for the decision every
/// voter agreed on: the record must still be reclaimable for exactly that
/// ballot (nothing arrived since the voters were asked).
#[must_use]
pub fn may_forget(state: &AcceptorState, agreed: &Ballot, floor: &Ballot) -> bool {
    reclaimable(state, floor).as_ref() == Some(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Accepted;
    use vergent_hlc::Timestamp;
    use vergent_types::{NodeId, Version};

    fn b(t: u64) -> Ballot {
        Ballot::new(Timestamp::from_u64(t), NodeId::new("n1").expect("id"))
    }

    fn committed(promised: u64, committed: u64) -> AcceptorState {
        AcceptorState {
            promised: Some(b(promised)),
            accepted: None,
            committed: Some(b(committed)),
        }
    }

    #[test]
    fn the_floor_acts_as_a_promise_and_never_lowers_one() {
        let s = committed(5, 5);
        assert_eq!(with_floor(&s, Some(&b(9))).promised, Some(b(9)));
        assert_eq!(with_floor(&s, Some(&b(3))).promised, Some(b(5)));
        assert_eq!(with_floor(&s, None), s);
        let fresh = AcceptorState::default();
        assert_eq!(with_floor(&fresh, Some(&b(9))).promised, Some(b(9)));
    }

    #[test]
    fn only_a_committed_record_entirely_below_the_floor_is_reclaimable() {
        let floor = b(10);
        assert_eq!(reclaimable(&committed(8, 8), &floor), Some(b(8)));
        // A promise above the floor: a round is under way.
        assert_eq!(reclaimable(&committed(11, 8), &floor), None);
        // A commit above the floor: too recent.
        assert_eq!(reclaimable(&committed(12, 12), &floor), None);
        // Never committed, or a proposal accepted and not yet committed.
        let promised_only = AcceptorState {
            promised: Some(b(3)),
            accepted: None,
            committed: None,
        };
        assert_eq!(reclaimable(&promised_only, &floor), None);
        let mut in_flight = committed(8, 6);
        in_flight.accepted = Some(Accepted {
            ballot: b(8),
            value: Some(b"v".to_vec()),
            commit: Version::new(Timestamp::from_u64(8), NodeId::new("n1").expect("id")),
            base: None,
        });
        assert_eq!(reclaimable(&in_flight, &floor), None);
        // The same proposal once committed, its accepted copy still
        // recorded (the commit covers it): decided, so reclaimable.
        in_flight.committed = Some(b(8));
        assert_eq!(reclaimable(&in_flight, &floor), Some(b(8)));
    }

    #[test]
    fn every_voter_with_a_record_must_report_the_same_commit() {
        use Report::{Absent, Keep, Reclaimable};
        let (x, y) = (b(4), b(6));
        let all = |r: &[Report]| agreed(r.iter());
        assert_eq!(
            all(&[Reclaimable(x.clone()), Reclaimable(x.clone())]),
            Some(x.clone())
        );
        // A voter without a record (never involved, or already deleted) does not block.
        assert_eq!(
            all(&[Reclaimable(x.clone()), Absent, Reclaimable(x.clone())]),
            Some(x.clone())
        );
        // One voter has not learned the latest decision.
        assert_eq!(all(&[Reclaimable(x.clone()), Reclaimable(y.clone())]), None);
        // One voter must keep its record.
        assert_eq!(all(&[Reclaimable(y.clone()), Keep]), None);
        // Nothing to delete anywhere.
        assert_eq!(all(&[Absent, Absent]), None);
        assert_eq!(all(&[]), None);
    }

    #[test]
    fn a_key_some_voters_could_release_and_another_must_keep_needs_a_round() {
        use Report::{Absent, Keep, Reclaimable};
        let x = b(4);
        assert!(needs_round(&[Reclaimable(x.clone()), Keep]));
        assert!(!needs_round(&[Reclaimable(x.clone()), Absent]));
        assert!(
            !needs_round(&[Keep, Keep]),
            "in flight everywhere: let it finish"
        );
        assert!(!needs_round(&[]));
    }

    #[test]
    fn a_voters_report_follows_its_record() {
        let floor = b(10);
        assert_eq!(Report::of(None, &floor), Report::Absent);
        assert_eq!(
            Report::of(Some(&committed(8, 8)), &floor),
            Report::Reclaimable(b(8))
        );
        assert_eq!(Report::of(Some(&committed(11, 8)), &floor), Report::Keep);
    }

    #[test]
    fn a_floor_from_the_future_is_refused() {
        let at = |ms| Ballot::new(Timestamp::new(ms, 0), NodeId::new("n1").expect("id"));
        assert!(
            check_floor(&at(1_000), 10_000, 500).is_ok(),
            "behind the clock"
        );
        assert!(
            check_floor(&at(10_500), 10_000, 500).is_ok(),
            "within the offset"
        );
        assert!(matches!(
            check_floor(&at(10_501), 10_000, 500),
            Err(ClockError::RemoteTooFarAhead { .. })
        ));
    }

    #[test]
    fn a_record_that_changed_since_the_voters_were_asked_is_kept() {
        let floor = b(10);
        assert!(may_forget(&committed(8, 8), &b(8), &floor));
        // A newer decision arrived (still below the floor).
        assert!(!may_forget(&committed(9, 9), &b(8), &floor));
        // A new round promised above the floor.
        assert!(!may_forget(&committed(12, 8), &b(8), &floor));
    }
}
