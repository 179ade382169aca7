//! Ballots: the proposal numbers of per-key Paxos, an HLC time and a node id.

use std::fmt;

use vergent_hlc::Timestamp;
use vergent_types::NodeId;

/// A proposal number, ordered by `(hlc, node)`.
///
/// The node id makes ballots of different proposers distinct even at equal
/// times; a proposer draws `hlc` from its own HLC so its ballots never repeat.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// When the proposer drew the ballot (compared first).
    pub hlc: Timestamp,
    /// The proposer; breaks ties between equal times.
    pub node: NodeId,
}

impl Ballot {
    /// Builds a ballot.
    #[must_use]
    pub fn new(hlc: Timestamp, node: NodeId) -> Self {
        Self { hlc, node }
    }

    /// The same node's ballot one logical tick later: the promise a 1-RTT accept asks for.
    ///
    /// At [`Timestamp::MAX`] (year 10889) it returns an equal ballot, which
    /// acceptors then refuse; that only costs the cached round.
    #[must_use]
    pub fn next(&self) -> Self {
        Self {
            hlc: Timestamp::from_u64(self.hlc.as_u64().saturating_add(1)),
            node: self.node.clone(),
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.hlc, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(hlc: u64, node: &str) -> Ballot {
        Ballot::new(Timestamp::from_u64(hlc), NodeId::new(node).expect("id"))
    }

    #[test]
    fn ballots_order_by_time_then_node() {
        assert!(b(2, "a") > b(1, "z"));
        assert!(b(1, "b") > b(1, "a"));
    }

    #[test]
    fn next_is_the_same_node_one_tick_later_and_above_any_equal_time_ballot() {
        let n = b(5, "a").next();
        assert_eq!(n, b(6, "a"));
        assert!(n > b(5, "z"));
    }
}
