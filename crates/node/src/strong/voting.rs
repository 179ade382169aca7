//! The voting configuration a node holds, and how the first one is formed.
//!
//! The configuration is itself a CASPaxos register (the reserved empty key,
//! which no client can name), so it is decided like any value. Formation
//! follows Consul's `bootstrap-expect`: a node started with `--peers`
//! expects `1 + |peers|` members; a configuration is proposed only once
//! some node sees exactly that many members, all alive, and *every one* of
//! them reports the same expectation and the same member set. Acceptors at
//! epoch 0 also vote only for their own member set. Two nodes can therefore
//! only form different configurations from disjoint sets of nodes (two
//! separate clusters), never overlapping ones. CockroachDB's explicit
//! `init` is safer still against a mistyped peer list, but it is an extra
//! step that the seed README's three-command flow does not have.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use vergent_consensus::VotingConfig;
use vergent_gossip::State;
use vergent_storage::{Record, Store};
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;

use super::StrongError;
use super::wire::{WireError, config_from, config_to};
use crate::status::MemberInfo;

/// The configuration register's key: empty, so no client operation can touch it.
pub(crate) const CONFIG_KEY: &[u8] = b"";
/// The configuration in force on this node.
const CONFIG_META: &str = "voting/config";
/// Present while this store may not vote although the configuration lists
/// its node: it is a new incarnation (a wiped data dir) of a voter, whose
/// promises and acceptances are gone.
const FORFEIT_META: &str = "voting/forfeit";
/// The configuration register's last-writer-wins record (it lives beside
/// the ordinary keys, not among them, so it is never replicated or scanned).
const REGISTER_META: &str = "voting/register";

/// What the configuration register holds: the voters, and the key
/// prefixes declared strict (changed by consensus like the voters, so every
/// voter enforces the same set once it holds the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// The voting configuration.
    pub(crate) config: VotingConfig,
    /// Prefixes under which eventual writes are refused.
    pub(crate) strict: Vec<Vec<u8>>,
}

impl Held {
    /// A configuration with no strict prefixes.
    pub(crate) fn plain(config: VotingConfig) -> Self {
        Self {
            config,
            strict: Vec::new(),
        }
    }

    /// The configuration's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.config.epoch
    }

    /// The strict prefix `key` falls under, if any.
    pub(crate) fn strict_prefix_of(&self, key: &[u8]) -> Option<&[u8]> {
        self.strict
            .iter()
            .find(|p| key.starts_with(p))
            .map(Vec::as_slice)
    }
}

/// Encodes a configuration as the register's value.
pub(crate) fn encode_config(c: &Held) -> Vec<u8> {
    prost::Message::encode_to_vec(&config_to(c))
}

/// Decodes a register value.
pub(crate) fn decode_config(bytes: &[u8]) -> Result<Held, WireError> {
    config_from(<pb::VotingConfig as prost::Message>::decode(bytes)?)
}

/// The strict prefixes of the configuration persisted in `store` (none when
/// it holds no configuration or one it cannot read).
pub(crate) fn stored_strict_prefixes(
    store: &Store,
) -> Result<Vec<Vec<u8>>, vergent_storage::Error> {
    Ok(store
        .get_meta(CONFIG_META)?
        .and_then(|b| decode_config(&b).ok())
        .map(|h| h.strict)
        .unwrap_or_default())
}

/// The configuration this node holds, and why there is none yet.
#[derive(Debug)]
pub(crate) struct Voting {
    current: watch::Sender<Option<Held>>,
    pending: Mutex<String>,
    /// 1 + the number of `--peers`.
    pub(crate) expected: u32,
    me: NodeId,
    forfeit: std::sync::atomic::AtomicBool,
}

impl Voting {
    /// Loads the persisted configuration, if any.
    pub(crate) fn load(store: &Store, me: NodeId, expected: u32) -> Result<Self, StrongError> {
        let current = match store.get_meta(CONFIG_META)? {
            Some(bytes) => Some(
                decode_config(&bytes)
                    .map_err(|e| StrongError::Corrupt(format!("{CONFIG_META}: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            current: watch::Sender::new(current),
            pending: Mutex::new("looking for the members given with --peers".into()),
            expected,
            me,
            forfeit: std::sync::atomic::AtomicBool::new(store.get_meta(FORFEIT_META)?.is_some()),
        })
    }

    /// The voting configuration in force, if formed.
    pub(crate) fn get(&self) -> Option<VotingConfig> {
        self.current.borrow().as_ref().map(|h| h.config.clone())
    }

    /// The whole register value in force (voters and strict prefixes).
    pub(crate) fn held(&self) -> Option<Held> {
        self.current.borrow().clone()
    }

    /// The strict prefix `key` falls under, in the epoch in force.
    pub(crate) fn strict_prefix_of(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current
            .borrow()
            .as_ref()
            .and_then(|h| h.strict_prefix_of(key).map(<[u8]>::to_vec))
    }

    /// The epoch in force (0: none formed).
    pub(crate) fn epoch(&self) -> u64 {
        self.current.borrow().as_ref().map_or(0, Held::epoch)
    }

    /// Whether this store's vote is forfeit (see [`Self::adopt`]).
    pub(crate) fn forfeit(&self) -> bool {
        self.forfeit.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The store voted out and may join afresh.
    pub(crate) fn clear_forfeit(&self, store: &Store) -> Result<(), vergent_storage::Error> {
        store.delete_meta(FORFEIT_META)?;
        self.forfeit
            .store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Why no configuration is formed yet.
    pub(crate) fn pending(&self) -> String {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_pending(&self, why: String) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    /// Adopts `config` if it is newer than the one in force, durably first;
    /// returns whether it was adopted.
    pub(crate) fn adopt(&self, store: &Store, held: &Held) -> Result<bool, vergent_storage::Error> {
        if held.epoch() <= self.epoch() {
            return Ok(false);
        }
        // A store that never held a configuration nor took part in forming
        // one, yet is listed as a voter, is a wiped voter come back: its
        // promises are gone, so its vote could let two values be chosen.
        // It stays silent until a change removes it and adds it back.
        if self.get().is_none()
            && held.config.is_member(&self.me)
            && store.paxos_state(CONFIG_KEY)?.is_none()
        {
            store.put_meta(FORFEIT_META, &[1])?;
            self.forfeit
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(
                "this store is new but the voting configuration lists this node: it does not vote \
                 until it is removed and added back (automatically, once a majority is reachable)"
            );
        }
        store.put_meta(CONFIG_META, &encode_config(held))?;
        let mut adopted = false;
        self.current.send_if_modified(|cur| {
            if cur.as_ref().is_none_or(|c| c.epoch() < held.epoch()) {
                *cur = Some(held.clone());
                adopted = true;
            }
            adopted
        });
        if adopted {
            tracing::info!(
                epoch = held.epoch(),
                voters = ?held.config.voters.iter().map(ToString::to_string).collect::<Vec<_>>(),
                strict = ?held.strict.iter().map(|p| p.escape_ascii().to_string()).collect::<Vec<_>>(),
                "voting configuration in force"
            );
        }
        Ok(adopted)
    }
}

/// The register's last-writer-wins record.
pub(crate) fn register_record(store: &Store) -> Result<Option<Record>, StrongError> {
    match store.get_meta(REGISTER_META)? {
        Some(bytes) => Record::decode(&bytes)
            .map(Some)
            .map_err(|e| StrongError::Corrupt(format!("{REGISTER_META}: {e}"))),
        None => Ok(None),
    }
}

/// Stores the register's record if it is newer than the one held.
pub(crate) fn put_register_record(store: &Store, record: &Record) -> Result<(), StrongError> {
    if register_record(store)?.is_some_and(|held| held.version >= record.version) {
        return Ok(());
    }
    Ok(store.put_meta(REGISTER_META, &record.encode())?)
}

/// The members this node would form a configuration with: every member it
/// knows of (itself included), when there are exactly `expected` of them
/// and all are alive.
pub(crate) fn candidates(expected: u32, members: &[MemberInfo]) -> Option<BTreeSet<NodeId>> {
    let known: Vec<&MemberInfo> = members.iter().filter(|m| m.state != State::Left).collect();
    if known.len() != expected as usize || known.iter().any(|m| m.state != State::Alive) {
        return None;
    }
    known
        .iter()
        .map(|m| NodeId::new(m.id.clone()).ok())
        .collect()
}

/// What a member answered to a configuration query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Its `1 + |peers|`.
    pub(crate) expected: u32,
    /// Its candidate set (empty: none).
    pub(crate) candidates: BTreeSet<NodeId>,
    /// The configuration it holds.
    pub(crate) config: Option<Held>,
}

/// The next formation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Not yet, for this reason.
    Wait(String),
    /// A member already holds a configuration: take it.
    Adopt(Held),
    /// Propose epoch 1 with these voters.
    Propose(BTreeSet<NodeId>),
}

/// Decides what a node without a configuration does next, from its own
/// candidate set and its members' answers.
///
/// The smallest id proposes first; the others only after `others_may_propose`
/// (it may have crashed), which is safe because every proposal of the same
/// set is a CAS from "absent" to the same configuration.
pub(crate) fn decide_formation(
    me: &NodeId,
    expected: u32,
    mine: Option<&BTreeSet<NodeId>>,
    answers: &BTreeMap<NodeId, Answer>,
    others_may_propose: bool,
) -> Step {
    if let Some(config) = answers
        .values()
        .filter_map(|a| a.config.clone())
        .max_by_key(Held::epoch)
    {
        return Step::Adopt(config);
    }
    let Some(set) = mine else {
        return Step::Wait(format!(
            "expecting {expected} members (itself and its --peers), all alive; gossip does not show exactly that yet"
        ));
    };
    for id in set.iter().filter(|id| *id != me) {
        let Some(a) = answers.get(id) else {
            return Step::Wait(format!("no answer from {id} yet"));
        };
        if a.expected != expected {
            return Step::Wait(format!(
                "{id} expects {} members, this node {expected}: not forming (check --peers)",
                a.expected
            ));
        }
        if a.candidates != *set {
            return Step::Wait(format!("{id} does not see the same {expected} members yet"));
        }
    }
    let first = set.iter().next();
    if first == Some(me) || others_may_propose {
        Step::Propose(set.clone())
    } else {
        Step::Wait(format!(
            "waiting for {} to propose the configuration",
            first.map_or_else(String::new, ToString::to_string)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).expect("id")
    }

    fn set(ids: &[&str]) -> BTreeSet<NodeId> {
        ids.iter().map(|s| n(s)).collect()
    }

    fn member(id: &str, state: State) -> MemberInfo {
        MemberInfo {
            id: id.into(),
            addr: format!("{id}:1"),
            state,
            incarnation: 0,
            since_ms: 0,
        }
    }

    fn answer(expected: u32, candidates: &[&str]) -> Answer {
        Answer {
            expected,
            candidates: set(candidates),
            config: None,
        }
    }

    #[test]
    fn candidates_need_exactly_the_expected_members_all_alive() {
        let three = [
            member("a", State::Alive),
            member("b", State::Alive),
            member("c", State::Alive),
        ];
        assert_eq!(candidates(3, &three), Some(set(&["a", "b", "c"])));
        assert_eq!(candidates(2, &three), None, "more members than expected");
        assert_eq!(candidates(4, &three), None, "fewer members than expected");
        let mut suspect = three.clone();
        suspect[1].state = State::Suspect;
        assert_eq!(candidates(3, &suspect), None);
        let mut left = three.to_vec();
        left.push(member("d", State::Left));
        assert_eq!(candidates(3, &left), Some(set(&["a", "b", "c"])));
        assert_eq!(
            candidates(1, &[member("a", State::Alive)]),
            Some(set(&["a"]))
        );
    }

    #[test]
    fn the_smallest_id_proposes_once_every_member_agrees_and_the_others_wait() {
        let s = set(&["a", "b", "c"]);
        let answers: BTreeMap<_, _> = [
            (n("b"), answer(3, &["a", "b", "c"])),
            (n("c"), answer(3, &["a", "b", "c"])),
        ]
        .into();
        assert_eq!(
            decide_formation(&n("a"), 3, Some(&s), &answers, false),
            Step::Propose(s.clone())
        );
        let answers_b: BTreeMap<_, _> = [
            (n("a"), answer(3, &["a", "b", "c"])),
            (n("c"), answer(3, &["a", "b", "c"])),
        ]
        .into();
        assert!(matches!(
            decide_formation(&n("b"), 3, Some(&s), &answers_b, false),
            Step::Wait(_)
        ));
        assert_eq!(
            decide_formation(&n("b"), 3, Some(&s), &answers_b, true),
            Step::Propose(s)
        );
    }

    #[test]
    fn a_member_that_expects_or_sees_something_else_blocks_formation() {
        let s = set(&["a", "b", "c"]);
        let missing: BTreeMap<_, _> = [(n("b"), answer(3, &["a", "b", "c"]))].into();
        assert!(matches!(
            decide_formation(&n("a"), 3, Some(&s), &missing, true),
            Step::Wait(w) if w.contains("no answer from c")
        ));
        let other_count: BTreeMap<_, _> = [
            (n("b"), answer(3, &["a", "b", "c"])),
            (n("c"), answer(2, &[])),
        ]
        .into();
        assert!(matches!(
            decide_formation(&n("a"), 3, Some(&s), &other_count, true),
            Step::Wait(w) if w.contains("expects 2")
        ));
        let other_set: BTreeMap<_, _> = [
            (n("b"), answer(3, &["a", "b", "c"])),
            (n("c"), answer(3, &["c", "d", "e"])),
        ]
        .into();
        assert!(matches!(
            decide_formation(&n("a"), 3, Some(&s), &other_set, true),
            Step::Wait(_)
        ));
        assert!(matches!(
            decide_formation(&n("a"), 3, None, &BTreeMap::new(), true),
            Step::Wait(_)
        ));
    }

    #[test]
    fn a_configuration_any_member_holds_is_adopted_rather_than_formed_again() {
        let held = Held::plain(VotingConfig::new(4, [n("x"), n("y"), n("z")]));
        let answers: BTreeMap<_, _> = [
            (n("b"), answer(3, &["a", "b", "c"])),
            (
                n("x"),
                Answer {
                    expected: 3,
                    candidates: BTreeSet::new(),
                    config: Some(held.clone()),
                },
            ),
        ]
        .into();
        assert_eq!(
            decide_formation(&n("a"), 2, None, &answers, false),
            Step::Adopt(held)
        );
    }

    #[test]
    fn a_lone_node_forms_by_itself() {
        assert_eq!(
            decide_formation(&n("a"), 1, Some(&set(&["a"])), &BTreeMap::new(), false),
            Step::Propose(set(&["a"]))
        );
    }

    #[test]
    fn a_key_is_strict_under_any_declared_prefix() {
        let h = Held {
            config: VotingConfig::new(2, [n("a")]),
            strict: vec![b"locks/".to_vec(), b"acct:".to_vec()],
        };
        assert_eq!(h.strict_prefix_of(b"locks/x"), Some(&b"locks/"[..]));
        assert_eq!(h.strict_prefix_of(b"acct:1"), Some(&b"acct:"[..]));
        assert_eq!(h.strict_prefix_of(b"lock"), None);
        assert_eq!(h.strict_prefix_of(b"other"), None);
    }

    #[test]
    fn configurations_round_trip_as_register_values() {
        let c = Held {
            config: VotingConfig::joint(3, [n("a"), n("b")], [n("c")]),
            strict: vec![b"locks/".to_vec(), b"".to_vec()],
        };
        assert_eq!(decode_config(&encode_config(&c)).expect("decode"), c);
        assert!(decode_config(&[0xff, 0xff]).is_err());
    }
}
