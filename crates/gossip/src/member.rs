//! Members, their states, and the incarnation precedence rule that orders
//! conflicting news about one member.

use std::cmp::Ordering;

use vergent_types::NodeId;

/// What the cluster believes about a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Answers probes (or has not yet been found silent).
    Alive,
    /// Missed a probe round; declared dead when its suspicion times out unless
    /// it refutes with a higher incarnation first. Still probed and still a
    /// member for routing purposes.
    Suspect,
    /// Declared failed. Kept for [`Config::dead_retention`](crate::Config) so
    /// stale news is recognised and the node can refute when it comes back.
    Dead,
    /// Announced a graceful leave. Final for that incarnation: only a restart
    /// with a higher incarnation brings the member back.
    Left,
}

impl State {
    /// Precedence among claims with the same incarnation: a higher rank wins.
    fn rank(self) -> u8 {
        match self {
            Self::Alive => 0,
            Self::Suspect => 1,
            Self::Dead => 2,
            Self::Left => 3,
        }
    }

    /// Whether the member counts as part of the cluster (probed, gossiped to).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Alive | Self::Suspect)
    }
}

/// One member of the cluster as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's stable identity.
    pub id: NodeId,
    /// The address it advertises, `host:port`; every message to it goes there.
    pub addr: String,
    /// The member's incarnation: only the member itself raises it, to refute.
    pub incarnation: u64,
    /// The state this node believes it is in.
    pub state: State,
}

/// Orders two claims about the same member: the greater one is the news that
/// wins. Claims compare by incarnation first, then by state rank
/// `Alive < Suspect < Dead < Left`. This is SWIM's rule set:
///
/// - `Alive{i}` overrides `Suspect{j}` and `Alive{j}` iff `i > j`;
/// - `Suspect{i}` overrides `Alive{j}` iff `i >= j`, and `Suspect{j}` iff `i > j`;
/// - `Dead{i}` overrides `Alive{j}` and `Suspect{j}` iff `i >= j`;
/// - `Left{i}` overrides everything with `j <= i`, and nothing with incarnation
///   `i` overrides it (left is final for that incarnation).
///
/// Because it is a total order, keeping the maximum is a commutative,
/// associative and idempotent merge: replicas that saw the same claims in any
/// order agree.
pub(crate) fn precedence(a: (u64, State), b: (u64, State)) -> Ordering {
    (a.0, a.1.rank()).cmp(&(b.0, b.1.rank()))
}

/// Whether the claim `new` replaces the claim `cur`.
pub(crate) fn supersedes(new: (u64, State), cur: (u64, State)) -> bool {
    precedence(new, cur) == Ordering::Greater
}

#[cfg(test)]
mod tests {
    use super::State::{Alive, Dead, Left, Suspect};
    use super::*;
    use proptest::prelude::*;

    /// Table of (new, current, expected "new overrides current").
    #[test]
    fn incarnation_precedence_follows_the_swim_rules() {
        let table = [
            // Alive overrides Suspect/Alive only with a higher incarnation.
            ((2, Alive), (1, Suspect), true),
            ((1, Alive), (1, Suspect), false),
            ((0, Alive), (1, Suspect), false),
            ((2, Alive), (1, Alive), true),
            ((1, Alive), (1, Alive), false),
            // Suspect overrides Alive with an equal or higher incarnation.
            ((1, Suspect), (1, Alive), true),
            ((2, Suspect), (1, Alive), true),
            ((0, Suspect), (1, Alive), false),
            ((1, Suspect), (1, Suspect), false),
            ((2, Suspect), (1, Suspect), true),
            // Dead overrides Alive and Suspect with an equal or higher incarnation.
            ((1, Dead), (1, Alive), true),
            ((1, Dead), (1, Suspect), true),
            ((3, Dead), (1, Suspect), true),
            ((0, Dead), (1, Alive), false),
            ((1, Dead), (1, Dead), false),
            // Only a higher incarnation brings a dead member back.
            ((1, Alive), (1, Dead), false),
            ((1, Suspect), (1, Dead), false),
            ((2, Alive), (1, Dead), true),
            // Left is final for its incarnation and overrides Dead.
            ((1, Left), (1, Alive), true),
            ((1, Left), (1, Dead), true),
            ((1, Dead), (1, Left), false),
            ((1, Suspect), (1, Left), false),
            ((1, Alive), (1, Left), false),
            ((0, Left), (1, Alive), false),
            // A restart with a higher incarnation overrides a leave.
            ((2, Alive), (1, Left), true),
        ];
        for (new, cur, want) in table {
            assert_eq!(supersedes(new, cur), want, "{new:?} over {cur:?}");
        }
    }

    fn claim() -> impl Strategy<Value = (u64, State)> {
        (
            0u64..4,
            prop_oneof![Just(Alive), Just(Suspect), Just(Dead), Just(Left)],
        )
    }

    fn merge(a: (u64, State), b: (u64, State)) -> (u64, State) {
        if supersedes(b, a) { b } else { a }
    }

    proptest! {
        #[test]
        fn merging_claims_is_commutative_associative_and_idempotent(
            a in claim(), b in claim(), c in claim()
        ) {
            prop_assert_eq!(merge(a, b), merge(b, a));
            prop_assert_eq!(merge(merge(a, b), c), merge(a, merge(b, c)));
            prop_assert_eq!(merge(a, a), a);
        }
    }
}
