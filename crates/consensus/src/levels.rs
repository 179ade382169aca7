//! Eventual reads and writes at `quorum` and `all`: how many voters must hold
//! a write before it is acknowledged, and what a read must see and repair
//! before it answers, counted over the agreed [`VotingConfig`].
//!
//! These are the coordinator's counting rules as small pure pieces (after
//! Garage's `QuorumSetResultTracker`): the node feeds in which voter made a
//! write durable or which version a voter reported, and asks whether the
//! level is met. Nothing here sends, waits or reads a clock; a deadline is
//! the driver's, and what it means is stated on each tracker.
//!
//! Only voters of the configuration count, each once: a hint, a non-voter or
//! a member the gossip view merely believes alive never makes up a level
//! (the sloppy-quorum pitfall of Dynamo-style systems). During a joint change
//! a level must hold in both voter sets.

use std::collections::{BTreeMap, BTreeSet};

use vergent_types::{NodeId, Version};

use crate::VotingConfig;

/// A consistency level above `one` for an eventual read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// A majority of the voters (of each set during a joint change).
    Quorum,
    /// Every voter.
    All,
}

impl Level {
    /// How many of a voter set of `n` must take part.
    #[must_use]
    pub fn required(self, n: usize) -> usize {
        match self {
            Self::Quorum => n / 2 + 1,
            Self::All => n,
        }
    }

    /// Whether `holders` meet this level in every voter set of `config`.
    ///
    /// An empty voter set is never met: a configuration without voters
    /// cannot acknowledge anything.
    #[must_use]
    pub fn is_met(self, config: &VotingConfig, holders: &BTreeSet<NodeId>) -> bool {
        sets(config).all(|set| {
            !set.is_empty() && set.intersection(holders).count() >= self.required(set.len())
        })
    }

    /// Refuses an operation before anything is sent when the voters that look
    /// reachable could not meet the level anyway.
    ///
    /// # Errors
    ///
    /// The first voter set that falls short, with its numbers for the error
    /// message ("needed N of M voters, reachable K").
    pub fn precheck(
        self,
        config: &VotingConfig,
        reachable: &BTreeSet<NodeId>,
    ) -> Result<(), Shortfall> {
        for set in sets(config) {
            let needed = self.required(set.len()).max(1);
            let k = set.intersection(reachable).count();
            if k < needed {
                return Err(Shortfall {
                    needed,
                    voters: set.len(),
                    reachable: k,
                });
            }
        }
        Ok(())
    }
}

/// Too few voters to meet a level: nothing was sent, nothing applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shortfall {
    /// Voters the level needs in the set that fell short.
    pub needed: usize,
    /// Voters in that set.
    pub voters: usize,
    /// Of those, how many look reachable.
    pub reachable: usize,
}

/// Whether a voter whose store started empty (wiped, or new) holds every
/// write a `quorum` acknowledged before, and so may report versions to level
/// reads again: it completed a repair session with `synced` other voters.
///
/// A `quorum` write is on a majority `q` of each voter set of `n`; without
/// this node's lost copy, on at least `q - 1` of the others, so sessions
/// with any `n - q + 1` of them (all there are, if fewer) must include one
/// that holds it. Until then its empty answers would let a quorum read
/// miss an acknowledged write, which is why it stays silent.
#[must_use]
pub fn caught_up(config: &VotingConfig, me: &NodeId, synced: &BTreeSet<NodeId>) -> bool {
    sets(config).all(|set| {
        let others = set.iter().filter(|id| *id != me).count();
        let needed = (set.len() - Level::Quorum.required(set.len()) + 1).min(others);
        set.iter()
            .filter(|id| *id != me && synced.contains(*id))
            .count()
            >= needed
    })
}

fn sets(config: &VotingConfig) -> impl Iterator<Item = &BTreeSet<NodeId>> {
    std::iter::once(&config.voters).chain(config.joining.iter())
}

/// Counts which voters made one write durable; the write is acknowledged
/// once they meet the level.
///
/// A write whose tracker is not done by the driver's deadline has an
/// unknown outcome for the client: it stays durable where it landed and
/// converges by replication and repair, but the level was not shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteTracker {
    level: Level,
    config: VotingConfig,
    durable: BTreeSet<NodeId>,
}

impl WriteTracker {
    /// A tracker for one write, counted over `config`.
    #[must_use]
    pub fn new(level: Level, config: VotingConfig) -> Self {
        Self {
            level,
            config,
            durable: BTreeSet::new(),
        }
    }

    /// `from` holds the write durably (or something newer of the key);
    /// returns whether it counted (a voter not counted before).
    pub fn handle_durable(&mut self, from: &NodeId) -> bool {
        self.config.is_member(from) && self.durable.insert(from.clone())
    }

    /// Whether the write may be acknowledged at the level.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.level.is_met(&self.config, &self.durable)
    }

    /// The voters known to hold the write.
    #[must_use]
    pub fn durable(&self) -> &BTreeSet<NodeId> {
        &self.durable
    }

    /// The configuration counted over.
    #[must_use]
    pub fn config(&self) -> &VotingConfig {
        &self.config
    }

    /// The level counted to.
    #[must_use]
    pub fn level(&self) -> Level {
        self.level
    }
}

/// What a read decided once enough voters reported their versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadDecision {
    /// The newest version reported (`None`: no voter has the key at all).
    pub newest: Option<Version>,
    /// A voter that reported it: where to fetch the data from.
    pub source: Option<NodeId>,
    /// Voters that reported something older: to be repaired with the newest.
    pub stale: Vec<NodeId>,
}

/// A read at a level: collects the voters' versions of one key, decides the
/// newest once the level's voters answered, and is done once voters meeting
/// the level hold that version (blocking read repair).
///
/// Because a read answers only when a level's worth of voters holds what it
/// returns, a later read at `quorum` (whose voters intersect those) can
/// never return anything older: quorum reads are monotonic. And because a
/// write acknowledged at `quorum` is held by a majority, the decision, taken
/// over a majority, sees it or something newer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadTracker {
    level: Level,
    config: VotingConfig,
    /// Each voter's first report (`None`: it holds nothing of the key).
    reported: BTreeMap<NodeId, Option<Version>>,
    decision: Option<ReadDecision>,
    /// Voters known to hold the decided version or newer.
    holders: BTreeSet<NodeId>,
}

impl ReadTracker {
    /// A tracker for one read, counted over `config`.
    #[must_use]
    pub fn new(level: Level, config: VotingConfig) -> Self {
        Self {
            level,
            config,
            reported: BTreeMap::new(),
            decision: None,
            holders: BTreeSet::new(),
        }
    }

    /// `from` reports the version it holds; returns whether it counted.
    ///
    /// Reports after the decision still count as holders when they are at
    /// least the decided version (a late, up-to-date voter), and never change
    /// the decision.
    pub fn handle_version(&mut self, from: &NodeId, version: Option<Version>) -> bool {
        if !self.config.is_member(from) || self.reported.contains_key(from) {
            return false;
        }
        self.reported.insert(from.clone(), version.clone());
        match &self.decision {
            Some(d) => {
                if version >= d.newest {
                    self.holders.insert(from.clone());
                }
            }
            None => {
                let answered: BTreeSet<NodeId> = self.reported.keys().cloned().collect();
                if self.level.is_met(&self.config, &answered) {
                    self.decide();
                }
            }
        }
        true
    }

    fn decide(&mut self) {
        let newest = self.reported.values().max().cloned().flatten();
        let source = self
            .reported
            .iter()
            .find(|(_, v)| **v == newest && newest.is_some())
            .map(|(id, _)| id.clone());
        let mut stale = Vec::new();
        for (id, v) in &self.reported {
            if *v >= newest {
                self.holders.insert(id.clone());
            } else {
                stale.push(id.clone());
            }
        }
        self.decision = Some(ReadDecision {
            newest,
            source,
            stale,
        });
    }

    /// The data fetched for the decision turned out newer (a write landed
    /// on the source meanwhile): the read now answers with `version`, so
    /// only voters known to hold that count, and the rest are stale.
    pub fn raise(&mut self, version: &Version) {
        let Some(d) = &mut self.decision else {
            return;
        };
        if d.newest.as_ref() >= Some(version) {
            return;
        }
        d.newest = Some(version.clone());
        self.holders.clear();
        d.stale.clear();
        for (id, v) in &self.reported {
            if v.as_ref() >= Some(version) {
                self.holders.insert(id.clone());
            } else {
                d.stale.push(id.clone());
            }
        }
    }

    /// Voters known to hold the decided version or newer.
    #[must_use]
    pub fn holders(&self) -> &BTreeSet<NodeId> {
        &self.holders
    }

    /// The decision, once the level's voters have reported.
    #[must_use]
    pub fn decision(&self) -> Option<&ReadDecision> {
        self.decision.as_ref()
    }

    /// `from` now holds `version` (a repair it made durable, or the data it
    /// served); returns whether it became a holder of the decided version.
    pub fn handle_holds(&mut self, from: &NodeId, version: Option<&Version>) -> bool {
        let Some(d) = &self.decision else {
            return false;
        };
        if !self.config.is_member(from) || version.cloned() < d.newest {
            return false;
        }
        self.holders.insert(from.clone())
    }

    /// Whether the read may answer: the decided version is held by voters
    /// meeting the level.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.decision.is_some() && self.level.is_met(&self.config, &self.holders)
    }

    /// Voters that reported at all.
    #[must_use]
    pub fn reported(&self) -> usize {
        self.reported.len()
    }

    /// The level counted to.
    #[must_use]
    pub fn level(&self) -> Level {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vergent_hlc::Timestamp;

    fn n(name: &str) -> NodeId {
        NodeId::new(name).expect("id")
    }

    fn ids(names: &[&str]) -> BTreeSet<NodeId> {
        names.iter().map(|s| n(s)).collect()
    }

    fn three() -> VotingConfig {
        VotingConfig::new(1, ids(&["a", "b", "c"]))
    }

    fn v(hlc: u64, origin: &str) -> Option<Version> {
        Some(Version::new(Timestamp::from_u64(hlc), n(origin)))
    }

    #[test]
    fn quorum_write_needs_two_of_three_and_all_needs_three() {
        let mut q = WriteTracker::new(Level::Quorum, three());
        assert!(q.handle_durable(&n("a")));
        assert!(!q.is_done());
        assert!(q.handle_durable(&n("c")));
        assert!(q.is_done());

        let mut all = WriteTracker::new(Level::All, three());
        all.handle_durable(&n("a"));
        all.handle_durable(&n("b"));
        assert!(!all.is_done(), "two of three is not all");
        all.handle_durable(&n("c"));
        assert!(all.is_done());
    }

    #[test]
    fn non_voters_and_repeated_acks_never_make_up_a_level() {
        let mut q = WriteTracker::new(Level::Quorum, three());
        assert!(q.handle_durable(&n("a")));
        assert!(!q.handle_durable(&n("a")), "the same voter twice");
        assert!(!q.handle_durable(&n("hint")), "a non-voter");
        assert!(!q.handle_durable(&n("x")));
        assert!(!q.is_done());
        assert_eq!(q.durable().len(), 1);
    }

    #[test]
    fn during_a_joint_change_a_level_must_hold_in_both_sets() {
        let joint = VotingConfig::joint(2, ids(&["a", "b", "c"]), ids(&["c", "d", "e"]));
        let mut q = WriteTracker::new(Level::Quorum, joint.clone());
        q.handle_durable(&n("a"));
        q.handle_durable(&n("b"));
        assert!(!q.is_done(), "the old majority alone");
        q.handle_durable(&n("d"));
        assert!(!q.is_done(), "one of the new set");
        q.handle_durable(&n("e"));
        assert!(q.is_done());

        let mut all = WriteTracker::new(Level::All, joint);
        for id in ["a", "b", "c", "d"] {
            all.handle_durable(&n(id));
        }
        assert!(!all.is_done());
        all.handle_durable(&n("e"));
        assert!(all.is_done());
    }

    #[test]
    fn precheck_reports_needed_voters_and_reachable() {
        let cfg = three();
        assert_eq!(Level::Quorum.precheck(&cfg, &ids(&["a", "b"])), Ok(()));
        assert_eq!(
            Level::Quorum.precheck(&cfg, &ids(&["a", "zz"])),
            Err(Shortfall {
                needed: 2,
                voters: 3,
                reachable: 1
            })
        );
        assert_eq!(
            Level::All.precheck(&cfg, &ids(&["a", "b"])),
            Err(Shortfall {
                needed: 3,
                voters: 3,
                reachable: 2
            })
        );
        let empty = VotingConfig::new(1, []);
        assert!(Level::Quorum.precheck(&empty, &ids(&["a"])).is_err());
        assert!(!Level::Quorum.is_met(&empty, &ids(&["a"])));
    }

    #[test]
    fn a_quorum_read_decides_the_newest_of_a_majority_and_repairs_the_stale() {
        let mut r = ReadTracker::new(Level::Quorum, three());
        assert!(r.handle_version(&n("a"), v(10, "a")));
        assert!(r.decision().is_none(), "one voter is not a quorum");
        assert!(r.handle_version(&n("b"), v(20, "c")));
        let d = r.decision().expect("decided at two of three").clone();
        assert_eq!(d.newest, v(20, "c"));
        assert_eq!(d.source, Some(n("b")));
        assert_eq!(d.stale, vec![n("a")]);
        assert!(!r.is_done(), "only b holds the newest: not a quorum yet");
        assert!(!r.handle_holds(&n("a"), v(10, "a").as_ref()), "still old");
        assert!(r.handle_holds(&n("a"), v(20, "c").as_ref()));
        assert!(r.is_done());
    }

    #[test]
    fn a_late_up_to_date_voter_completes_a_read_and_a_late_newer_one_changes_nothing() {
        let mut r = ReadTracker::new(Level::Quorum, three());
        r.handle_version(&n("a"), None);
        r.handle_version(&n("b"), v(5, "b"));
        assert_eq!(r.decision().expect("decided").newest, v(5, "b"));
        r.handle_version(&n("c"), v(9, "c"));
        assert_eq!(
            r.decision().expect("decided").newest,
            v(5, "b"),
            "the decision stands"
        );
        assert!(r.is_done(), "c holds something at least as new");
    }

    #[test]
    fn a_read_of_a_key_no_voter_has_is_done_at_once() {
        let mut r = ReadTracker::new(Level::Quorum, three());
        r.handle_version(&n("a"), None);
        r.handle_version(&n("c"), None);
        let d = r.decision().expect("decided");
        assert_eq!(d.newest, None);
        assert_eq!(d.source, None);
        assert!(d.stale.is_empty());
        assert!(r.is_done());
    }

    #[test]
    fn ties_break_by_origin_like_last_writer_wins() {
        let mut r = ReadTracker::new(Level::All, three());
        r.handle_version(&n("a"), v(7, "a"));
        r.handle_version(&n("b"), v(7, "c"));
        r.handle_version(&n("c"), v(7, "b"));
        let d = r.decision().expect("decided");
        assert_eq!(d.newest, v(7, "c"));
        assert_eq!(d.stale, vec![n("a"), n("c")]);
        assert!(!r.is_done(), "all needs every voter to hold it");
    }

    #[test]
    fn newer_data_from_the_source_raises_the_decision_and_makes_the_rest_stale() {
        let mut r = ReadTracker::new(Level::Quorum, three());
        r.handle_version(&n("a"), v(5, "a"));
        r.handle_version(&n("b"), v(5, "a"));
        assert!(r.is_done(), "both hold the decided version");
        r.raise(&Version::new(Timestamp::from_u64(8), n("b")));
        assert!(!r.is_done(), "nobody is known to hold the newer one");
        assert_eq!(r.decision().expect("decided").stale, vec![n("a"), n("b")]);
        assert!(r.handle_holds(&n("b"), v(8, "b").as_ref()));
        assert!(!r.is_done());
        assert!(r.handle_holds(&n("a"), v(8, "b").as_ref()));
        assert!(r.is_done());
        r.raise(&Version::new(Timestamp::from_u64(6), n("b")));
        assert_eq!(
            r.decision().expect("decided").newest,
            v(8, "b"),
            "never lowered"
        );
    }

    #[test]
    fn a_wiped_voter_catches_up_only_after_syncing_with_enough_others_to_meet_every_quorum() {
        let me = n("a");
        assert!(!caught_up(&three(), &me, &ids(&[])));
        assert!(
            !caught_up(&three(), &me, &ids(&["b"])),
            "a quorum write may be on a and c alone"
        );
        assert!(caught_up(&three(), &me, &ids(&["b", "c"])));
        assert!(
            !caught_up(&three(), &me, &ids(&["x", "y"])),
            "non-voters do not count"
        );
        let five = VotingConfig::new(1, ids(&["a", "b", "c", "d", "e"]));
        assert!(!caught_up(&five, &me, &ids(&["b", "c"])));
        assert!(caught_up(&five, &me, &ids(&["b", "c", "d"])));
        let alone = VotingConfig::new(1, ids(&["a"]));
        assert!(
            caught_up(&alone, &me, &ids(&[])),
            "a lone voter has nobody to miss"
        );
        let joint = VotingConfig::joint(2, ids(&["a", "b", "c"]), ids(&["c", "d", "e"]));
        assert!(
            !caught_up(&joint, &me, &ids(&["b", "c"])),
            "the new set too"
        );
        assert!(caught_up(&joint, &me, &ids(&["b", "c", "d"])));
    }

    #[test]
    fn reports_from_non_voters_or_twice_do_not_count() {
        let mut r = ReadTracker::new(Level::Quorum, three());
        assert!(r.handle_version(&n("a"), v(1, "a")));
        assert!(!r.handle_version(&n("a"), v(9, "a")));
        assert!(!r.handle_version(&n("x"), v(9, "x")));
        assert!(r.decision().is_none());
        assert_eq!(r.reported(), 1);
        assert!(!r.handle_holds(&n("b"), v(1, "a").as_ref()), "undecided");
    }
}
