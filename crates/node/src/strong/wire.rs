//! Conversions between the consensus core's messages and the peer protocol's.
//!
//! Everything decoded here comes from the network: a missing field or an
//! invalid node id is a [`WireError`], never a panic.

use vergent_consensus::gc::Report;
use vergent_consensus::{
    Accept, AcceptReply, Accepted, Ballot, Commit, Message, Prepare, PrepareReply, Promise,
    VotingConfig,
};
use vergent_hlc::Timestamp;
use vergent_types::{NodeId, Version};
use vergent_wire::peer::v1 as pb;

use super::batch::{Item, ItemReply};
use super::voting::Held;

/// A consensus message from a peer that does not make sense.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// A required field is absent.
    #[error("consensus message lacks its {0}")]
    Missing(&'static str),
    /// A node id in it is not valid.
    #[error("invalid node id in a consensus message: {0}")]
    NodeId(#[from] vergent_types::NodeIdError),
    /// Not a protobuf frame at all.
    #[error("malformed consensus frame: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A frame of another kind than the one expected.
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
}

pub(crate) fn ballot_to(b: &Ballot) -> pb::Ballot {
    pb::Ballot {
        hlc: b.hlc.as_u64(),
        node: b.node.to_string(),
    }
}

pub(crate) fn ballot_from(b: pb::Ballot) -> Result<Ballot, WireError> {
    Ok(Ballot::new(
        Timestamp::from_u64(b.hlc),
        NodeId::new(b.node)?,
    ))
}

fn opt_ballot(b: Option<pb::Ballot>) -> Result<Option<Ballot>, WireError> {
    b.map(ballot_from).transpose()
}

fn req_ballot(b: Option<pb::Ballot>, what: &'static str) -> Result<Ballot, WireError> {
    ballot_from(b.ok_or(WireError::Missing(what))?)
}

pub(crate) fn version_to(v: &Version) -> pb::PaxosVersion {
    pb::PaxosVersion {
        hlc: v.hlc.as_u64(),
        origin: v.origin.to_string(),
    }
}

pub(crate) fn version_from(v: pb::PaxosVersion) -> Result<Version, WireError> {
    Ok(Version::new(
        Timestamp::from_u64(v.hlc),
        NodeId::new(v.origin)?,
    ))
}

fn opt_version(v: Option<pb::PaxosVersion>) -> Result<Option<Version>, WireError> {
    v.map(version_from).transpose()
}

fn req_version(v: Option<pb::PaxosVersion>, what: &'static str) -> Result<Version, WireError> {
    version_from(v.ok_or(WireError::Missing(what))?)
}

pub(crate) fn config_to(held: &Held) -> pb::VotingConfig {
    let c = &held.config;
    pb::VotingConfig {
        strict_prefixes: held.strict.clone(),
        epoch: c.epoch,
        voters: c.voters.iter().map(ToString::to_string).collect(),
        joint: c.joining.is_some(),
        joining: c
            .joining
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect(),
    }
}

pub(crate) fn config_from(c: pb::VotingConfig) -> Result<Held, WireError> {
    let ids = |v: Vec<String>| {
        v.into_iter()
            .map(NodeId::new)
            .collect::<Result<Vec<_>, _>>()
    };
    let voters = ids(c.voters)?;
    let config = if c.joint {
        VotingConfig::joint(c.epoch, voters, ids(c.joining)?)
    } else {
        VotingConfig::new(c.epoch, voters)
    };
    Ok(Held {
        config,
        strict: c.strict_prefixes,
    })
}

pub(crate) fn prepare_to(from: &NodeId, m: &Prepare, config: Option<&Held>) -> pb::PaxosPrepare {
    pb::PaxosPrepare {
        from: from.to_string(),
        key: m.key.clone(),
        ballot: Some(ballot_to(&m.ballot)),
        epoch: m.epoch,
        config: config.map(config_to),
        peek: m.peek,
    }
}

/// A decoded prepare, with its sender and the configuration it was sent under.
pub(crate) type FromPeer<T> = (NodeId, T, Option<Held>);

pub(crate) fn prepare_from(m: pb::PaxosPrepare) -> Result<FromPeer<Prepare>, WireError> {
    let prepare = Prepare {
        key: m.key,
        ballot: req_ballot(m.ballot, "ballot")?,
        epoch: m.epoch,
        peek: m.peek,
    };
    let config = m.config.map(config_from).transpose()?;
    Ok((NodeId::new(m.from)?, prepare, config))
}

fn reject_to(
    promised: Option<&Ballot>,
    accepted: Option<&Ballot>,
    committed: Option<&Ballot>,
    newer_lww: Option<&Version>,
) -> pb::PaxosReject {
    pb::PaxosReject {
        promised: promised.map(ballot_to),
        accepted: accepted.map(ballot_to),
        committed: committed.map(ballot_to),
        newer_lww: newer_lww.map(version_to),
    }
}

fn mismatch_to(current_epoch: u64, config: Option<&Held>) -> pb::PaxosEpochMismatch {
    pb::PaxosEpochMismatch {
        current_epoch,
        config: config.map(config_to),
    }
}

fn accepted_to(a: &Accepted) -> pb::PaxosAccepted {
    pb::PaxosAccepted {
        ballot: Some(ballot_to(&a.ballot)),
        value: a.value.clone(),
        commit: Some(version_to(&a.commit)),
        base: a.base.as_ref().map(version_to),
    }
}

fn accepted_from(a: pb::PaxosAccepted) -> Result<Accepted, WireError> {
    Ok(Accepted {
        ballot: req_ballot(a.ballot, "accepted ballot")?,
        value: a.value,
        commit: req_version(a.commit, "accepted commit version")?,
        base: opt_version(a.base)?,
    })
}

pub(crate) fn prepare_reply_to(
    from: &NodeId,
    r: &PrepareReply,
    config: Option<&Held>,
) -> pb::PaxosPrepareReply {
    use pb::paxos_prepare_reply::Reply;
    let report = |p: &Promise| pb::PaxosPromise {
        accepted: p.accepted.as_ref().map(accepted_to),
        committed: p.committed.as_ref().map(ballot_to),
        lww_version: p.lww.as_ref().map(|(v, _)| version_to(v)),
        lww_value: p.lww.as_ref().and_then(|(_, v)| v.clone()),
        prior_promise: p.prior_promise.as_ref().map(ballot_to),
    };
    let reply = match r {
        PrepareReply::Promise(p) => Reply::Promise(report(p)),
        PrepareReply::Peeked(p) => Reply::Peeked(report(p)),
        PrepareReply::Reject { promised, accepted } => {
            Reply::Reject(reject_to(promised.as_ref(), accepted.as_ref(), None, None))
        }
        PrepareReply::EpochMismatch { current_epoch } => {
            Reply::Mismatch(mismatch_to(*current_epoch, config))
        }
    };
    pb::PaxosPrepareReply {
        from: from.to_string(),
        reply: Some(reply),
    }
}

/// A decoded reply: its sender, the reply, and the configuration an epoch mismatch carried.
pub(crate) fn prepare_reply_from(
    r: pb::PaxosPrepareReply,
) -> Result<FromPeer<PrepareReply>, WireError> {
    use pb::paxos_prepare_reply::Reply;
    let from = NodeId::new(r.from)?;
    let report = |p: pb::PaxosPromise| -> Result<Promise, WireError> {
        let lww = match p.lww_version {
            Some(v) => Some((version_from(v)?, p.lww_value)),
            None => None,
        };
        Ok(Promise {
            accepted: p.accepted.map(accepted_from).transpose()?,
            committed: opt_ballot(p.committed)?,
            lww,
            prior_promise: opt_ballot(p.prior_promise)?,
        })
    };
    let (reply, config) = match r.reply.ok_or(WireError::Missing("reply"))? {
        Reply::Promise(p) => (PrepareReply::Promise(report(p)?), None),
        Reply::Peeked(p) => (PrepareReply::Peeked(report(p)?), None),
        Reply::Reject(j) => (
            PrepareReply::Reject {
                promised: opt_ballot(j.promised)?,
                accepted: opt_ballot(j.accepted)?,
            },
            None,
        ),
        Reply::Mismatch(m) => (
            PrepareReply::EpochMismatch {
                current_epoch: m.current_epoch,
            },
            m.config.map(config_from).transpose()?,
        ),
    };
    Ok((from, reply, config))
}

pub(crate) fn accept_to(from: &NodeId, m: &Accept, config: Option<&Held>) -> pb::PaxosAccept {
    pb::PaxosAccept {
        from: from.to_string(),
        key: m.key.clone(),
        ballot: Some(ballot_to(&m.ballot)),
        epoch: m.epoch,
        value: m.value.clone(),
        commit: Some(version_to(&m.commit)),
        base: m.base.as_ref().map(version_to),
        next_promise: m.next_promise.as_ref().map(ballot_to),
        config: config.map(config_to),
    }
}

pub(crate) fn accept_from(m: pb::PaxosAccept) -> Result<FromPeer<Accept>, WireError> {
    let accept = Accept {
        key: m.key,
        ballot: req_ballot(m.ballot, "ballot")?,
        epoch: m.epoch,
        value: m.value,
        commit: req_version(m.commit, "commit version")?,
        base: opt_version(m.base)?,
        next_promise: opt_ballot(m.next_promise)?,
    };
    let config = m.config.map(config_from).transpose()?;
    Ok((NodeId::new(m.from)?, accept, config))
}

pub(crate) fn accept_reply_to(
    from: &NodeId,
    r: &AcceptReply,
    config: Option<&Held>,
) -> pb::PaxosAcceptReply {
    use pb::paxos_accept_reply::Reply;
    let reply = match r {
        AcceptReply::Accepted => Reply::Accepted(pb::PaxosAcceptedReply {}),
        AcceptReply::Reject {
            promised,
            accepted,
            committed,
            newer_lww,
        } => Reply::Reject(reject_to(
            promised.as_ref(),
            accepted.as_ref(),
            committed.as_ref(),
            newer_lww.as_ref(),
        )),
        AcceptReply::EpochMismatch { current_epoch } => {
            Reply::Mismatch(mismatch_to(*current_epoch, config))
        }
    };
    pb::PaxosAcceptReply {
        from: from.to_string(),
        reply: Some(reply),
    }
}

pub(crate) fn accept_reply_from(
    r: pb::PaxosAcceptReply,
) -> Result<FromPeer<AcceptReply>, WireError> {
    use pb::paxos_accept_reply::Reply;
    let from = NodeId::new(r.from)?;
    let (reply, config) = match r.reply.ok_or(WireError::Missing("reply"))? {
        Reply::Accepted(_) => (AcceptReply::Accepted, None),
        Reply::Reject(j) => (
            AcceptReply::Reject {
                promised: opt_ballot(j.promised)?,
                accepted: opt_ballot(j.accepted)?,
                committed: opt_ballot(j.committed)?,
                newer_lww: opt_version(j.newer_lww)?,
            },
            None,
        ),
        Reply::Mismatch(m) => (
            AcceptReply::EpochMismatch {
                current_epoch: m.current_epoch,
            },
            m.config.map(config_from).transpose()?,
        ),
    };
    Ok((from, reply, config))
}

pub(crate) fn commit_to(from: &NodeId, m: &Commit) -> pb::PaxosCommit {
    pb::PaxosCommit {
        from: from.to_string(),
        key: m.key.clone(),
        ballot: Some(ballot_to(&m.ballot)),
        value: m.value.clone(),
        commit: Some(version_to(&m.commit)),
    }
}

pub(crate) fn commit_from(m: pb::PaxosCommit) -> Result<(NodeId, Commit), WireError> {
    let commit = Commit {
        key: m.key,
        ballot: req_ballot(m.ballot, "ballot")?,
        value: m.value,
        commit: req_version(m.commit, "commit version")?,
    };
    Ok((NodeId::new(m.from)?, commit))
}

/// One key's garbage-collection report, as sent.
pub(crate) fn gc_entry_to(key: &[u8], report: &Report) -> pb::PaxosGcEntry {
    use pb::paxos_gc_entry::Kind;
    let (kind, committed) = match report {
        Report::Absent => (Kind::Absent, None),
        Report::Reclaimable(b) => (Kind::Reclaimable, Some(ballot_to(b))),
        Report::Keep => (Kind::Keep, None),
    };
    pb::PaxosGcEntry {
        key: key.to_vec(),
        kind: kind.into(),
        committed,
    }
}

/// One key's garbage-collection report, as received.
pub(crate) fn gc_entry_from(e: pb::PaxosGcEntry) -> Result<(Vec<u8>, Report), WireError> {
    use pb::paxos_gc_entry::Kind;
    let report = match Kind::try_from(e.kind) {
        Ok(Kind::Absent) => Report::Absent,
        Ok(Kind::Reclaimable) => Report::Reclaimable(req_ballot(e.committed, "committed ballot")?),
        Ok(Kind::Keep) => Report::Keep,
        Ok(Kind::Unspecified) | Err(_) => return Err(WireError::Missing("report kind")),
    };
    Ok((e.key, report))
}

/// The floor a garbage-collection request carries.
pub(crate) fn gc_floor_from(b: Option<pb::Ballot>) -> Result<Ballot, WireError> {
    req_ballot(b, "floor")
}

/// One item of a batch, as sent.
pub(crate) fn item_to(from: &NodeId, item: &Item) -> pb::PaxosItem {
    use pb::paxos_item::Msg;
    let config = item.config.as_ref();
    let msg = match &item.msg {
        Message::Prepare(p) => Msg::Prepare(prepare_to(from, p, config)),
        Message::Accept(a) => Msg::Accept(accept_to(from, a, config)),
        Message::Commit(c) => Msg::Commit(commit_to(from, c)),
    };
    pb::PaxosItem { msg: Some(msg) }
}

/// One item of a batch from `sender`, as received; an item that names
/// another sender than its batch is refused.
pub(crate) fn item_from(item: pb::PaxosItem, sender: &str) -> Result<Item, WireError> {
    use pb::paxos_item::Msg;
    let (from, msg, config) = match item.msg.ok_or(WireError::Missing("batch item"))? {
        Msg::Prepare(m) => {
            let (from, p, c) = prepare_from(m)?;
            (from, Message::Prepare(p), c)
        }
        Msg::Accept(m) => {
            let (from, a, c) = accept_from(m)?;
            (from, Message::Accept(a), c)
        }
        Msg::Commit(m) => {
            let (from, c) = commit_from(m)?;
            (from, Message::Commit(c), None)
        }
    };
    if from.as_str() != sender {
        return Err(WireError::Unexpected("a batch item from another node"));
    }
    Ok(Item { msg, config })
}

/// The answer to one item of a batch (`None`: not answered), as sent.
pub(crate) fn item_reply_to(
    from: &NodeId,
    reply: Option<&ItemReply>,
    config: Option<&Held>,
) -> pb::PaxosItemReply {
    use pb::paxos_item_reply::Reply;
    let reply = reply.map(|r| match r {
        ItemReply::Prepare(r) => Reply::Prepare(prepare_reply_to(from, r, config)),
        ItemReply::Accept(r) => Reply::Accept(accept_reply_to(from, r, config)),
        ItemReply::Committed => Reply::Committed(pb::PaxosCommitted {
            from: from.to_string(),
        }),
    });
    pb::PaxosItemReply { reply }
}

pub(crate) fn encode(body: pb::frame::Body) -> Vec<u8> {
    prost::Message::encode_to_vec(&pb::Frame { body: Some(body) })
}

pub(crate) fn decode(bytes: &[u8]) -> Result<pb::frame::Body, WireError> {
    <pb::Frame as prost::Message>::decode(bytes)?
        .body
        .ok_or(WireError::Unexpected("empty frame"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).expect("id")
    }

    fn b(t: u64, s: &str) -> Ballot {
        Ballot::new(Timestamp::from_u64(t), n(s))
    }

    fn v(t: u64, s: &str) -> Version {
        Version::new(Timestamp::from_u64(t), n(s))
    }

    /// A joint configuration with a strict prefix.
    fn held() -> Held {
        Held {
            config: VotingConfig::joint(4, [n("a"), n("b")], [n("b"), n("c")]),
            strict: vec![b"locks/".to_vec()],
        }
    }

    fn prepare(peek: bool) -> Prepare {
        Prepare {
            key: b"k".to_vec(),
            ballot: b(9, "a"),
            epoch: 4,
            peek,
        }
    }

    fn accept() -> Accept {
        Accept {
            key: b"k".to_vec(),
            ballot: b(9, "a"),
            epoch: 4,
            value: Some(b"v".to_vec()),
            commit: v(10, "a"),
            base: None,
            next_promise: Some(b(10, "a")),
        }
    }

    /// A promise with every field set.
    fn full_promise() -> PrepareReply {
        PrepareReply::Promise(Promise {
            accepted: Some(Accepted {
                ballot: b(3, "c"),
                value: None,
                commit: v(4, "c"),
                base: Some(v(2, "d")),
            }),
            committed: Some(b(2, "b")),
            lww: Some((v(1, "a"), Some(b"x".to_vec()))),
            prior_promise: Some(b(2, "a")),
        })
    }

    #[test]
    fn every_consensus_message_round_trips_through_the_peer_protocol() {
        let config = held();
        for peek in [false, true] {
            let prepare = prepare(peek);
            let (from, back, cfg) =
                prepare_from(prepare_to(&n("a"), &prepare, Some(&config))).expect("ok");
            assert_eq!((from, back, cfg), (n("a"), prepare, Some(config.clone())));
        }

        for reply in [
            full_promise(),
            PrepareReply::Promise(Promise {
                accepted: None,
                committed: None,
                lww: Some((v(1, "a"), None)),
                prior_promise: None,
            }),
            PrepareReply::Peeked(Promise {
                accepted: None,
                committed: Some(b(2, "b")),
                lww: Some((v(1, "a"), Some(b"y".to_vec()))),
                prior_promise: Some(b(2, "a")),
            }),
            PrepareReply::Reject {
                promised: Some(b(5, "b")),
                accepted: None,
            },
            PrepareReply::EpochMismatch { current_epoch: 7 },
        ] {
            let (_, back, _) =
                prepare_reply_from(prepare_reply_to(&n("b"), &reply, Some(&config))).expect("ok");
            assert_eq!(back, reply);
        }

        let accept = accept();
        let (_, back, _) = accept_from(accept_to(&n("a"), &accept, Some(&config))).expect("ok");
        assert_eq!(back, accept);
        for reply in [
            AcceptReply::Accepted,
            AcceptReply::Reject {
                promised: Some(b(11, "c")),
                accepted: Some(b(3, "c")),
                committed: None,
                newer_lww: Some(v(12, "b")),
            },
            AcceptReply::EpochMismatch { current_epoch: 2 },
        ] {
            let (_, back, _) =
                accept_reply_from(accept_reply_to(&n("b"), &reply, None)).expect("ok");
            assert_eq!(back, reply);
        }
        let commit = Commit {
            key: b"k".to_vec(),
            ballot: b(9, "a"),
            value: None,
            commit: v(10, "a"),
        };
        assert_eq!(
            commit_from(commit_to(&n("a"), &commit)).expect("ok"),
            (n("a"), commit)
        );
    }

    #[test]
    fn garbled_consensus_messages_convert_or_are_refused_and_what_converts_round_trips() {
        use prost::Message as _;
        let config = held();
        let items: Vec<Vec<u8>> = [
            Item {
                msg: Message::Prepare(prepare(false)),
                config: Some(config.clone()),
            },
            Item {
                msg: Message::Accept(accept()),
                config: None,
            },
        ]
        .iter()
        .map(|i| item_to(&n("a"), i).encode_to_vec())
        .collect();
        let replies =
            vec![prepare_reply_to(&n("b"), &full_promise(), Some(&config)).encode_to_vec()];
        let (mut converted, mut refused) = (0, 0);
        for bytes in crate::garble::inputs(11, &items, 20_000) {
            let Ok(wire) = pb::PaxosItem::decode(bytes.as_slice()) else {
                continue;
            };
            match item_from(wire, "a") {
                Ok(item) => {
                    converted += 1;
                    let back = item_from(item_to(&n("a"), &item), "a").expect("round trip");
                    assert_eq!((back.msg, back.config), (item.msg, item.config));
                }
                Err(_) => refused += 1,
            }
        }
        for bytes in crate::garble::inputs(12, &replies, 20_000) {
            let Ok(wire) = pb::PaxosPrepareReply::decode(bytes.as_slice()) else {
                continue;
            };
            match prepare_reply_from(wire) {
                Ok((from, reply, cfg)) => {
                    converted += 1;
                    let again = prepare_reply_from(prepare_reply_to(&from, &reply, cfg.as_ref()))
                        .expect("round trip");
                    assert_eq!(again, (from, reply, cfg));
                }
                Err(_) => refused += 1,
            }
        }
        // Both outcomes were exercised, not only the decoder's refusals.
        assert!(converted > 100 && refused > 100, "{converted} {refused}");
    }

    #[test]
    fn a_consensus_message_missing_a_field_or_with_a_bad_id_is_an_error() {
        let mut m = pb::PaxosPrepare {
            from: "a".into(),
            ..Default::default()
        };
        assert!(matches!(
            prepare_from(m.clone()),
            Err(WireError::Missing(_))
        ));
        m.ballot = Some(pb::Ballot {
            hlc: 1,
            node: "not an id!".into(),
        });
        assert!(matches!(prepare_from(m), Err(WireError::NodeId(_))));
        assert!(
            prepare_reply_from(pb::PaxosPrepareReply {
                from: "a".into(),
                reply: None
            })
            .is_err()
        );
        assert!(decode(&[0xff, 0x01]).is_err());
    }
}
