//! Voting configurations (epoch-versioned, joint during a change) and quorum counting over them.

use std::collections::BTreeSet;

use vergent_types::NodeId;

/// The acceptors of one configuration epoch; a quorum is a majority of each voter set.
///
/// Quorums are counted over this explicit configuration, never over the
/// gossip view: two proposers with the same epoch always need intersecting
/// quorums, whoever they currently believe alive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VotingConfig {
    /// The configuration's epoch; acceptors refuse messages of another epoch.
    pub epoch: u64,
    /// The voters.
    pub voters: BTreeSet<NodeId>,
    /// The incoming voter set during a joint change: a quorum then also needs a majority of it.
    pub joining: Option<BTreeSet<NodeId>>,
}

impl VotingConfig {
    /// A plain (non-joint) configuration.
    #[must_use]
    pub fn new(epoch: u64, voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            epoch,
            voters: voters.into_iter().collect(),
            joining: None,
        }
    }

    /// A joint configuration: quorums need majorities of both `voters` and `joining`.
    #[must_use]
    pub fn joint(
        epoch: u64,
        voters: impl IntoIterator<Item = NodeId>,
        joining: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        Self {
            epoch,
            voters: voters.into_iter().collect(),
            joining: Some(joining.into_iter().collect()),
        }
    }

    /// Every node that votes in either set: where prepares, accepts and commits go.
    #[must_use]
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        if let Some(j) = &self.joining {
            all.extend(j.iter().cloned());
        }
        all
    }

    /// Whether `node` votes in either set.
    #[must_use]
    pub fn is_member(&self, node: &NodeId) -> bool {
        self.voters.contains(node) || self.joining.as_ref().is_some_and(|j| j.contains(node))
    }

    /// The voter sets a quorum must hold a majority of: one, or two in joint mode.
    fn sets(&self) -> impl Iterator<Item = &BTreeSet<NodeId>> {
        std::iter::once(&self.voters).chain(self.joining.iter())
    }
}

/// A majority of `n` voters; an empty set has no majority that can be reached.
#[must_use]
fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Counts replies to one broadcast against a [`VotingConfig`]: reached, impossible, or neither yet.
///
/// Only members count, and each member once (its first reply), so
/// duplicated or stray messages cannot inflate a quorum.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuorumTracker {
    config: VotingConfig,
    ok: BTreeSet<NodeId>,
    err: BTreeSet<NodeId>,
}

impl QuorumTracker {
    /// A tracker with no replies yet.
    #[must_use]
    pub fn new(config: VotingConfig) -> Self {
        Self {
            config,
            ok: BTreeSet::new(),
            err: BTreeSet::new(),
        }
    }

    /// Records a positive reply; returns whether it counted (a member's first reply).
    pub fn ok(&mut self, from: &NodeId) -> bool {
        if !self.config.is_member(from) || self.err.contains(from) {
            return false;
        }
        self.ok.insert(from.clone())
    }

    /// Records a failure or refusal; returns whether it counted (a member's first reply).
    pub fn err(&mut self, from: &NodeId) -> bool {
        if !self.config.is_member(from) || self.ok.contains(from) {
            return false;
        }
        self.err.insert(from.clone())
    }

    /// Whether the positive replies hold a majority of every voter set.
    #[must_use]
    pub fn is_reached(&self) -> bool {
        self.config
            .sets()
            .all(|set| set.intersection(&self.ok).count() >= majority(set.len()))
    }

    /// Whether so many members failed that some voter set can no longer give a majority.
    #[must_use]
    pub fn is_impossible(&self) -> bool {
        self.config.sets().any(|set| {
            let failed = set.intersection(&self.err).count();
            set.len() - failed < majority(set.len())
        })
    }

    /// Members that replied at all, positively or not.
    #[must_use]
    pub fn replied(&self) -> usize {
        self.ok.len() + self.err.len()
    }

    /// Members that replied positively.
    #[must_use]
    pub fn oks(&self) -> usize {
        self.ok.len()
    }

    /// Whether every member has replied.
    #[must_use]
    pub fn all_replied(&self) -> bool {
        self.replied() == self.config.members().len()
    }

    /// The configuration being counted over.
    #[must_use]
    pub fn config(&self) -> &VotingConfig {
        &self.config
    }

    /// The size of a majority of the (first) voter set, for error reports.
    #[must_use]
    pub fn needed(&self) -> usize {
        majority(self.config.voters.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::new(*n).expect("id")).collect()
    }

    fn n(name: &str) -> NodeId {
        NodeId::new(name).expect("id")
    }

    #[test]
    fn two_of_three_is_a_quorum_and_one_is_not() {
        let mut t = QuorumTracker::new(VotingConfig::new(1, ids(&["a", "b", "c"])));
        t.ok(&n("a"));
        assert!(!t.is_reached());
        t.ok(&n("b"));
        assert!(t.is_reached());
    }

    #[test]
    fn three_of_five_is_a_quorum_and_three_failures_make_it_impossible() {
        let mut t = QuorumTracker::new(VotingConfig::new(1, ids(&["a", "b", "c", "d", "e"])));
        t.ok(&n("a"));
        t.ok(&n("b"));
        assert!(!t.is_reached());
        t.err(&n("c"));
        t.err(&n("d"));
        assert!(!t.is_impossible());
        t.ok(&n("e"));
        assert!(t.is_reached());

        let mut f = QuorumTracker::new(VotingConfig::new(1, ids(&["a", "b", "c", "d", "e"])));
        f.err(&n("a"));
        f.err(&n("b"));
        assert!(!f.is_impossible());
        f.err(&n("c"));
        assert!(f.is_impossible());
    }

    #[test]
    fn joint_config_needs_a_majority_of_both_sets() {
        let cfg = VotingConfig::joint(2, ids(&["a", "b", "c"]), ids(&["c", "d", "e"]));
        let mut t = QuorumTracker::new(cfg.clone());
        t.ok(&n("a"));
        t.ok(&n("b"));
        assert!(!t.is_reached(), "old majority alone is not enough");
        t.ok(&n("d"));
        assert!(
            !t.is_reached(),
            "one of the new set is not a majority of it"
        );
        t.ok(&n("e"));
        assert!(t.is_reached());

        let mut u = QuorumTracker::new(cfg);
        u.ok(&n("c"));
        u.ok(&n("d"));
        assert!(
            !u.is_reached(),
            "new majority plus one old voter is not enough"
        );
        u.err(&n("d"));
        u.err(&n("e"));
        assert!(!u.is_impossible(), "d counted already as ok");
        u.err(&n("a"));
        u.err(&n("b"));
        assert!(u.is_impossible(), "old set lost its majority");
        assert_eq!(cfg_members_len(&u), 5);
    }

    fn cfg_members_len(t: &QuorumTracker) -> usize {
        t.config().members().len()
    }

    #[test]
    fn non_members_and_duplicate_replies_do_not_count() {
        let mut t = QuorumTracker::new(VotingConfig::new(1, ids(&["a", "b", "c"])));
        assert!(!t.ok(&n("x")));
        assert!(!t.ok(&n("y")));
        assert!(t.ok(&n("a")));
        assert!(!t.ok(&n("a")));
        assert!(
            !t.err(&n("a")),
            "a member's first reply is the one that counts"
        );
        assert!(!t.is_reached());
        assert_eq!(t.replied(), 1);
        assert!(!t.err(&n("z")));
        t.err(&n("b"));
        assert!(!t.is_impossible());
        t.err(&n("c"));
        assert!(t.is_impossible());
        assert!(t.all_replied());
    }
}
