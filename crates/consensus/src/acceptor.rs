//! The acceptor rules: pure functions from (state, LWW record, message) to (state to persist, reply).
//!
//! **Persistence contract.** Whenever a handler returns a state to persist,
//! the node driver must make it durable (fsync, group commit allowed)
//! *before* sending the reply; a promise or acceptance that a crash can
//! forget lets two different values be chosen. [`handle_commit`]'s LWW
//! record and acceptor state go in one write batch, so a crash never leaves
//! `accepted` cleared without the value it stood for in the LWW store.

use vergent_types::Version;

use crate::{Accepted, AcceptorState, Ballot, LwwRecord, Value};

/// Phase 1 request: promise `ballot` for `key` and report what you hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prepare {
    /// The key.
    pub key: Vec<u8>,
    /// The ballot to promise.
    pub ballot: Ballot,
    /// The proposer's configuration epoch.
    pub epoch: u64,
    /// A read's first look: report what you hold and promise nothing, so
    /// there is nothing to persist (see [`handle_prepare`]).
    pub peek: bool,
}

/// What a promising acceptor reports: enough for the proposer to compute the current state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Promise {
    /// The proposal accepted and not yet committed here, if any.
    pub accepted: Option<Accepted>,
    /// The highest ballot committed here.
    pub committed: Option<Ballot>,
    /// This node's LWW record for the key.
    pub lww: Option<LwwRecord>,
    /// The promise this one replaced.
    pub prior_promise: Option<Ballot>,
}

/// The answer to a [`Prepare`]; persist the returned state before sending it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrepareReply {
    /// Promised; never again accepts or promises a lower ballot.
    Promise(Promise),
    /// The answer to a peek: what the acceptor holds, nothing promised.
    Peeked(Promise),
    /// Refused: the ballot is not above what this acceptor promised or accepted.
    Reject {
        /// The promise in force.
        promised: Option<Ballot>,
        /// The ballot of the proposal accepted here, if any.
        accepted: Option<Ballot>,
    },
    /// The proposer's epoch is not this node's; the driver attaches its configuration.
    EpochMismatch {
        /// This node's epoch.
        current_epoch: u64,
    },
}

/// Phase 2 request: accept `value` at `ballot`, to become LWW record `(commit, value)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accept {
    /// The key.
    pub key: Vec<u8>,
    /// The proposal's ballot.
    pub ballot: Ballot,
    /// The proposer's configuration epoch.
    pub epoch: u64,
    /// The proposed value.
    pub value: Value,
    /// The version the value takes when committed.
    pub commit: Version,
    /// The version of the state the value was computed from (`None`: absent).
    pub base: Option<Version>,
    /// The promise to keep after accepting (1-RTT: the proposer's next ballot).
    pub next_promise: Option<Ballot>,
}

/// The answer to an [`Accept`]; persist the returned state before sending it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AcceptReply {
    /// Accepted (or had already accepted this very ballot).
    Accepted,
    /// Refused; the fields let the proposer tell "never accepted this ballot" from "may have".
    Reject {
        /// The promise in force.
        promised: Option<Ballot>,
        /// The ballot of the proposal accepted here, if any.
        accepted: Option<Ballot>,
        /// The highest ballot committed here.
        committed: Option<Ballot>,
        /// This node's LWW version, set when it is newer than the proposal's base.
        newer_lww: Option<Version>,
    },
    /// The proposer's epoch is not this node's.
    EpochMismatch {
        /// This node's epoch.
        current_epoch: u64,
    },
}

/// Phase 3: the value at `ballot` was chosen; apply it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Commit {
    /// The key.
    pub key: Vec<u8>,
    /// The chosen proposal's ballot.
    pub ballot: Ballot,
    /// The chosen value.
    pub value: Value,
    /// Its version in the LWW store.
    pub commit: Version,
}

/// What applying a [`Commit`] writes, in one batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommitEffect {
    /// The record to pass through the ordinary LWW apply (which ignores it if older).
    pub lww: LwwRecord,
    /// The acceptor state to persist, or `None` when it is unchanged.
    pub state: Option<AcceptorState>,
}

/// Applies the prepare rules; returns the state to persist (if it changed) and the reply.
///
/// A [peek](Prepare::peek) is answered with what this acceptor holds
/// whatever its ballot, and changes nothing. A read needs no promise when
/// the replies show a settled state (the proposer checks): nothing chosen
/// can hide from a quorum whose every member reports the same committed
/// record and no pending proposal, and a lower ballot chosen later belongs
/// to an operation that had not completed when the read looked, so it may
/// be ordered after the read. A read that finds anything unsettled
/// prepares again, for real, before writing back.
#[must_use]
pub fn handle_prepare(
    state: &AcceptorState,
    lww: Option<&LwwRecord>,
    msg: &Prepare,
    config_epoch: u64,
) -> (Option<AcceptorState>, PrepareReply) {
    if msg.epoch != config_epoch {
        let reply = PrepareReply::EpochMismatch {
            current_epoch: config_epoch,
        };
        return (None, reply);
    }
    if msg.peek {
        return (None, PrepareReply::Peeked(report(state, lww)));
    }
    let accepted_ballot = state.accepted.as_ref().map(|a| &a.ballot);
    let below_promise = state.promised.as_ref().is_some_and(|p| msg.ballot <= *p);
    let below_accepted = accepted_ballot.is_some_and(|a| msg.ballot <= *a);
    if below_promise || below_accepted {
        let reply = PrepareReply::Reject {
            promised: state.promised.clone(),
            accepted: accepted_ballot.cloned(),
        };
        return (None, reply);
    }
    let mut next = state.clone();
    next.promised = Some(msg.ballot.clone());
    (Some(next), PrepareReply::Promise(report(state, lww)))
}

/// What a promise (or a peek) reports of `state`.
fn report(state: &AcceptorState, lww: Option<&LwwRecord>) -> Promise {
    Promise {
        accepted: state.accepted.clone(),
        committed: state.committed.clone(),
        lww: lww.cloned(),
        prior_promise: state.promised.clone(),
    }
}

/// Applies the accept rules, including the mixed-mode guard against an unseen newer LWW write.
#[must_use]
pub fn handle_accept(
    state: &AcceptorState,
    lww: Option<&LwwRecord>,
    msg: &Accept,
    config_epoch: u64,
) -> (Option<AcceptorState>, AcceptReply) {
    if msg.epoch != config_epoch {
        let reply = AcceptReply::EpochMismatch {
            current_epoch: config_epoch,
        };
        return (None, reply);
    }
    // A duplicate of an accept already taken must not read as a refusal:
    // the proposer would count a node that holds its value as one that
    // does not. One round owns a ballot, so the value is the same.
    if state
        .accepted
        .as_ref()
        .is_some_and(|a| a.ballot == msg.ballot)
    {
        return (None, AcceptReply::Accepted);
    }
    let below_promise = state.promised.as_ref().is_some_and(|p| msg.ballot < *p);
    let accepted_ballot = state.accepted.as_ref().map(|a| &a.ballot);
    let below_accepted = accepted_ballot.is_some_and(|a| msg.ballot <= *a);
    let lww_version = lww.map(|(v, _)| v);
    // A voter that holds this very proposal (accepted, or committed into
    // its record) voted for it while its base was current; a round
    // completing it is not the guard's to refuse, or a proposal chosen
    // before a newer eventual write arrived could never be completed.
    let holds = state
        .accepted
        .as_ref()
        .is_some_and(|a| a.commit == msg.commit)
        || lww_version == Some(&msg.commit);
    // `None < Some(_)`: any record at all is newer than an absent base.
    let newer_lww = lww_version.filter(|v| !holds && Some(*v) > msg.base.as_ref());
    if below_promise || below_accepted || newer_lww.is_some() {
        let reply = AcceptReply::Reject {
            promised: state.promised.clone(),
            accepted: accepted_ballot.cloned(),
            committed: state.committed.clone(),
            newer_lww: newer_lww.cloned(),
        };
        return (None, reply);
    }
    let next = AcceptorState {
        promised: Some(
            msg.next_promise
                .clone()
                .unwrap_or_else(|| msg.ballot.clone()),
        ),
        accepted: Some(Accepted {
            ballot: msg.ballot.clone(),
            value: msg.value.clone(),
            commit: msg.commit.clone(),
            base: msg.base.clone(),
        }),
        committed: state.committed.clone(),
    };
    (Some(next), AcceptReply::Accepted)
}

/// Applies a commit: the LWW record always, `committed` only upwards, `accepted` cleared once covered.
#[must_use]
pub fn handle_commit(state: &AcceptorState, msg: &Commit) -> CommitEffect {
    let committed = state.committed.clone().max(Some(msg.ballot.clone()));
    // An accepted proposal at or below a chosen ballot is decided (chosen,
    // or superseded by the chosen one), and the LWW record now carries it.
    let accepted = state
        .accepted
        .clone()
        .filter(|a| committed.as_ref().is_none_or(|c| a.ballot > *c));
    let next = AcceptorState {
        promised: state.promised.clone(),
        accepted,
        committed,
    };
    CommitEffect {
        lww: (msg.commit.clone(), msg.value.clone()),
        state: (next != *state).then_some(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vergent_hlc::Timestamp;
    use vergent_types::NodeId;

    const EPOCH: u64 = 3;

    fn b(t: u64, node: &str) -> Ballot {
        Ballot::new(Timestamp::from_u64(t), NodeId::new(node).expect("id"))
    }

    fn v(t: u64) -> Version {
        Version::new(Timestamp::from_u64(t), NodeId::new("w").expect("id"))
    }

    fn prepare(ballot: Ballot) -> Prepare {
        Prepare {
            key: b"k".to_vec(),
            ballot,
            epoch: EPOCH,
            peek: false,
        }
    }

    fn accept(ballot: Ballot, value: &[u8], commit: u64, base: Option<Version>) -> Accept {
        Accept {
            key: b"k".to_vec(),
            ballot,
            epoch: EPOCH,
            value: Some(value.to_vec()),
            commit: v(commit),
            base,
            next_promise: None,
        }
    }

    /// Applies a handler's result the way a driver would.
    fn persist(state: &mut AcceptorState, new: Option<AcceptorState>) {
        if let Some(s) = new {
            *state = s;
        }
    }

    #[test]
    fn prepare_promises_a_higher_ballot_and_reports_what_it_holds() {
        let lww = (v(1), Some(b"x".to_vec()));
        let (s, r) = handle_prepare(
            &AcceptorState::default(),
            Some(&lww),
            &prepare(b(5, "a")),
            EPOCH,
        );
        assert_eq!(s.expect("persist").promised, Some(b(5, "a")));
        let PrepareReply::Promise(p) = r else {
            panic!("{r:?}")
        };
        assert_eq!(p.lww, Some(lww));
        assert_eq!(p.prior_promise, None);
    }

    #[test]
    fn a_peek_reports_what_the_acceptor_holds_whatever_its_ballot_and_changes_nothing() {
        let mut s = AcceptorState::default();
        let p = handle_prepare(&s, None, &prepare(b(5, "a")), EPOCH).0;
        persist(&mut s, p);
        let a = handle_accept(&s, None, &accept(b(5, "a"), b"x", 6, None), EPOCH).0;
        persist(&mut s, a);
        let lww = (v(1), Some(b"old".to_vec()));
        for ballot in [b(1, "b"), b(5, "a"), b(9, "b")] {
            let peek = Prepare {
                peek: true,
                ..prepare(ballot)
            };
            let (next, r) = handle_prepare(&s, Some(&lww), &peek, EPOCH);
            assert_eq!(next, None, "a peek must leave nothing to persist");
            let PrepareReply::Peeked(p) = r else {
                panic!("{r:?}")
            };
            assert_eq!(p.accepted, s.accepted);
            assert_eq!(p.lww, Some(lww.clone()));
        }
        // Its epoch is checked all the same.
        let peek = Prepare {
            peek: true,
            epoch: EPOCH + 1,
            ..prepare(b(9, "b"))
        };
        assert!(matches!(
            handle_prepare(&s, None, &peek, EPOCH).1,
            PrepareReply::EpochMismatch { .. }
        ));
    }

    #[test]
    fn prepare_at_or_below_the_promise_or_accepted_ballot_is_rejected_without_persisting() {
        let mut s = AcceptorState::default();
        let p = handle_prepare(&s, None, &prepare(b(5, "a")), EPOCH).0;
        persist(&mut s, p);
        let (p, r) = handle_prepare(&s, None, &prepare(b(5, "a")), EPOCH);
        assert!(p.is_none());
        assert!(matches!(r, PrepareReply::Reject { .. }));
        let (p, _) = handle_prepare(&s, None, &prepare(b(4, "z")), EPOCH);
        assert!(p.is_none());
        let s = AcceptorState {
            promised: None,
            accepted: Some(Accepted {
                ballot: b(9, "a"),
                value: None,
                commit: v(9),
                base: None,
            }),
            committed: None,
        };
        assert!(matches!(
            handle_prepare(&s, None, &prepare(b(9, "a")), EPOCH).1,
            PrepareReply::Reject { .. }
        ));
    }

    #[test]
    fn a_message_of_another_epoch_gets_the_current_epoch_and_changes_nothing() {
        let s = AcceptorState::default();
        let mut msg = prepare(b(5, "a"));
        msg.epoch = EPOCH + 1;
        assert_eq!(
            handle_prepare(&s, None, &msg, EPOCH),
            (
                None,
                PrepareReply::EpochMismatch {
                    current_epoch: EPOCH
                }
            )
        );
        let mut acc = accept(b(5, "a"), b"x", 6, None);
        acc.epoch = EPOCH - 1;
        assert_eq!(
            handle_accept(&s, None, &acc, EPOCH),
            (
                None,
                AcceptReply::EpochMismatch {
                    current_epoch: EPOCH
                }
            )
        );
    }

    #[test]
    fn accept_below_the_promise_is_rejected_and_at_the_promise_is_taken() {
        let mut s = AcceptorState::default();
        let p = handle_prepare(&s, None, &prepare(b(5, "a")), EPOCH).0;
        persist(&mut s, p);
        let (p, r) = handle_accept(&s, None, &accept(b(4, "a"), b"x", 6, None), EPOCH);
        assert!(p.is_none());
        assert!(matches!(r, AcceptReply::Reject { .. }));
        let mut msg = accept(b(5, "a"), b"x", 6, None);
        msg.next_promise = Some(b(5, "a").next());
        let (p, r) = handle_accept(&s, None, &msg, EPOCH);
        assert_eq!(r, AcceptReply::Accepted);
        let p = p.expect("persist");
        assert_eq!(p.promised, Some(b(6, "a")), "the 1-RTT promise is kept");
        assert_eq!(p.accepted.map(|a| a.ballot), Some(b(5, "a")));
    }

    #[test]
    fn a_duplicate_accept_of_the_accepted_ballot_is_acknowledged_again() {
        let mut s = AcceptorState::default();
        let mut msg = accept(b(5, "a"), b"x", 6, None);
        msg.next_promise = Some(b(5, "a").next());
        let p = handle_accept(&s, None, &msg, EPOCH).0;
        persist(&mut s, p);
        assert_eq!(
            handle_accept(&s, None, &msg, EPOCH),
            (None, AcceptReply::Accepted)
        );
    }

    #[test]
    fn accept_is_rejected_when_the_local_lww_record_is_newer_than_its_base() {
        let s = AcceptorState::default();
        let lww = (v(7), Some(b"eventual".to_vec()));
        let (p, r) = handle_accept(
            &s,
            Some(&lww),
            &accept(b(5, "a"), b"x", 8, Some(v(6))),
            EPOCH,
        );
        assert!(p.is_none());
        let AcceptReply::Reject { newer_lww, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(newer_lww, Some(v(7)));
        let (_, r) = handle_accept(&s, Some(&lww), &accept(b(5, "a"), b"x", 8, None), EPOCH);
        assert!(
            matches!(r, AcceptReply::Reject { .. }),
            "any record is newer than an absent base"
        );
        let (_, r) = handle_accept(
            &s,
            Some(&lww),
            &accept(b(5, "a"), b"x", 8, Some(v(7))),
            EPOCH,
        );
        assert_eq!(r, AcceptReply::Accepted);
    }

    #[test]
    fn commit_is_idempotent_and_never_moves_committed_back() {
        let s = AcceptorState {
            promised: Some(b(5, "a")),
            accepted: Some(Accepted {
                ballot: b(5, "a"),
                value: Some(b"x".to_vec()),
                commit: v(6),
                base: None,
            }),
            committed: None,
        };
        let c = Commit {
            key: b"k".to_vec(),
            ballot: b(5, "a"),
            value: Some(b"x".to_vec()),
            commit: v(6),
        };
        let e = handle_commit(&s, &c);
        assert_eq!(e.lww, (v(6), Some(b"x".to_vec())));
        let s1 = e.state.expect("changed");
        assert_eq!(s1.accepted, None);
        assert_eq!(s1.committed, Some(b(5, "a")));
        let again = handle_commit(&s1, &c);
        assert_eq!(again.state, None, "a repeated commit changes nothing");
        assert_eq!(again.lww, e.lww);
        let old = Commit {
            key: b"k".to_vec(),
            ballot: b(2, "a"),
            value: None,
            commit: v(3),
        };
        let e = handle_commit(&s1, &old);
        assert_eq!(e.state, None);
        assert_eq!(
            e.lww,
            (v(3), None),
            "LWW gets the record and ignores it as older"
        );
    }

    #[test]
    fn commit_keeps_an_accepted_proposal_above_the_committed_ballot() {
        let s = AcceptorState {
            promised: Some(b(9, "a")),
            accepted: Some(Accepted {
                ballot: b(9, "a"),
                value: None,
                commit: v(9),
                base: None,
            }),
            committed: None,
        };
        let c = Commit {
            key: b"k".to_vec(),
            ballot: b(5, "a"),
            value: None,
            commit: v(6),
        };
        let s1 = handle_commit(&s, &c).state.expect("committed moved");
        assert_eq!(s1.accepted.map(|a| a.ballot), Some(b(9, "a")));
    }

    #[derive(Clone, Debug)]
    enum Msg {
        Prepare(u64, u8),
        Accept(u64, u8, bool),
        Commit(u64, u8),
    }

    fn msg() -> impl Strategy<Value = Msg> {
        prop_oneof![
            (0u64..20, 0u8..3).prop_map(|(t, n)| Msg::Prepare(t, n)),
            (0u64..20, 0u8..3, any::<bool>()).prop_map(|(t, n, np)| Msg::Accept(t, n, np)),
            (0u64..20, 0u8..3).prop_map(|(t, n)| Msg::Commit(t, n)),
        ]
    }

    proptest! {
        #[test]
        fn promised_never_decreases_and_nothing_is_accepted_below_it(msgs in proptest::collection::vec(msg(), 1..40)) {
            let names = ["a", "b", "c"];
            let mut s = AcceptorState::default();
            let mut lww: Option<LwwRecord> = None;
            for m in msgs {
                let before = s.clone();
                match m {
                    Msg::Prepare(t, n) => {
                        let ballot = b(t, names[usize::from(n)]);
                        let (p, r) = handle_prepare(&s, lww.as_ref(), &prepare(ballot.clone()), EPOCH);
                        if matches!(r, PrepareReply::Promise(_)) {
                            prop_assert!(before.promised.as_ref().is_none_or(|p| ballot > *p));
                        }
                        persist(&mut s, p);
                    }
                    Msg::Accept(t, n, np) => {
                        let ballot = b(t, names[usize::from(n)]);
                        let mut a = accept(ballot.clone(), b"x", t + 1, lww.as_ref().map(|(v, _)| v.clone()));
                        a.next_promise = np.then(|| ballot.next());
                        let (p, r) = handle_accept(&s, lww.as_ref(), &a, EPOCH);
                        // A repeated acknowledgement of an earlier acceptance is
                        // truthful; only a new acceptance must respect the promise.
                        if r == AcceptReply::Accepted && p.is_some() {
                            prop_assert!(before.promised.as_ref().is_none_or(|p| ballot >= *p));
                        }
                        persist(&mut s, p);
                    }
                    Msg::Commit(t, n) => {
                        let c = Commit { key: b"k".to_vec(), ballot: b(t, names[usize::from(n)]), value: None, commit: v(t + 1) };
                        let e = handle_commit(&s, &c);
                        if lww.as_ref().is_none_or(|(v, _)| e.lww.0 > *v) {
                            lww = Some(e.lww);
                        }
                        persist(&mut s, e.state);
                        prop_assert!(s.committed >= before.committed);
                    }
                }
                prop_assert!(s.promised >= before.promised, "promised went from {:?} to {:?}", before.promised, s.promised);
                if let (Some(a), Some(p)) = (&s.accepted, &s.promised) {
                    prop_assert!(a.ballot <= *p);
                }
            }
        }
    }
}
