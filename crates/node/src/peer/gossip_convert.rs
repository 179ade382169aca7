//! Conversions between gossip domain messages and the peer protocol.

use vergent_gossip::{Body, Member, Message, Sender, State, Update};
use vergent_types::NodeId;
use vergent_wire::peer::v1 as pb;

use super::convert::DecodeError;

fn state_to_wire(s: State) -> pb::MemberState {
    match s {
        State::Alive => pb::MemberState::Alive,
        State::Suspect => pb::MemberState::Suspect,
        State::Dead => pb::MemberState::Dead,
        State::Left => pb::MemberState::Left,
    }
}

fn state_from_wire(raw: i32) -> Result<State, DecodeError> {
    match pb::MemberState::try_from(raw) {
        Ok(pb::MemberState::Alive) => Ok(State::Alive),
        Ok(pb::MemberState::Suspect) => Ok(State::Suspect),
        Ok(pb::MemberState::Dead) => Ok(State::Dead),
        Ok(pb::MemberState::Left) => Ok(State::Left),
        Err(_) => Err(DecodeError::Unexpected("unknown member state")),
    }
}

fn member_to_wire(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id.to_string(),
        addr: m.addr.clone(),
        incarnation: m.incarnation,
        state: state_to_wire(m.state).into(),
    }
}

fn member_from_wire(m: pb::Member) -> Result<Member, DecodeError> {
    Ok(Member {
        id: NodeId::new(m.id)?,
        addr: m.addr,
        incarnation: m.incarnation,
        state: state_from_wire(m.state)?,
    })
}

pub(crate) fn to_wire(msg: &Message) -> pb::Gossip {
    use pb::gossip::Body as W;
    let body = match &msg.body {
        Body::Ping { seq, target } => W::Ping(pb::Ping {
            seq: *seq,
            target: target.to_string(),
        }),
        Body::Ack { seq } => W::Ack(pb::PingAck { seq: *seq }),
        Body::Nack { seq } => W::Nack(pb::PingNack { seq: *seq }),
        Body::PingReq {
            seq,
            target,
            target_addr,
        } => W::PingReq(pb::PingReq {
            seq: *seq,
            target: target.to_string(),
            target_addr: target_addr.clone(),
        }),
        Body::PushPull { members, is_reply } => W::PushPull(pb::PushPull {
            members: members.iter().map(member_to_wire).collect(),
            is_reply: *is_reply,
        }),
        Body::Gossip => W::Gossip(pb::GossipOnly {}),
    };
    pb::Gossip {
        from_id: msg.from.id.to_string(),
        from_addr: msg.from.addr.clone(),
        from_incarnation: msg.from.incarnation,
        body: Some(body),
        updates: msg
            .updates
            .iter()
            .map(|u| pb::MemberUpdate {
                id: u.id.to_string(),
                addr: u.addr.clone(),
                incarnation: u.incarnation,
                state: state_to_wire(u.state).into(),
                from: u.from.to_string(),
            })
            .collect(),
    }
}

pub(crate) fn from_wire(g: pb::Gossip) -> Result<Message, DecodeError> {
    use pb::gossip::Body as W;
    let body = match g
        .body
        .ok_or(DecodeError::Unexpected("gossip without body"))?
    {
        W::Ping(p) => Body::Ping {
            seq: p.seq,
            target: NodeId::new(p.target)?,
        },
        W::Ack(a) => Body::Ack { seq: a.seq },
        W::Nack(n) => Body::Nack { seq: n.seq },
        W::PingReq(r) => Body::PingReq {
            seq: r.seq,
            target: NodeId::new(r.target)?,
            target_addr: r.target_addr,
        },
        W::PushPull(p) => Body::PushPull {
            members: p
                .members
                .into_iter()
                .map(member_from_wire)
                .collect::<Result<_, _>>()?,
            is_reply: p.is_reply,
        },
        W::Gossip(_) => Body::Gossip,
    };
    let updates = g
        .updates
        .into_iter()
        .map(|u| {
            Ok(Update {
                id: NodeId::new(u.id)?,
                addr: u.addr,
                incarnation: u.incarnation,
                state: state_from_wire(u.state)?,
                from: NodeId::new(u.from)?,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(Message {
        from: Sender {
            id: NodeId::new(g.from_id)?,
            addr: g.from_addr,
            incarnation: g.from_incarnation,
        },
        body,
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One message of every body, each with a piggybacked update.
    fn samples() -> Vec<Message> {
        let id = |s: &str| NodeId::new(s).expect("id");
        let member = Member {
            id: id("m"),
            addr: "127.0.0.1:9".into(),
            incarnation: 4,
            state: State::Suspect,
        };
        [
            Body::Ping {
                seq: 1,
                target: id("t"),
            },
            Body::Ack { seq: 2 },
            Body::Nack { seq: 3 },
            Body::PingReq {
                seq: 4,
                target: id("t"),
                target_addr: "h:1".into(),
            },
            Body::PushPull {
                members: vec![member],
                is_reply: true,
            },
            Body::Gossip,
        ]
        .into_iter()
        .map(|body| Message {
            from: Sender {
                id: id("a"),
                addr: "127.0.0.1:1".into(),
                incarnation: 7,
            },
            body,
            updates: vec![Update {
                id: id("m"),
                addr: "127.0.0.1:9".into(),
                incarnation: 4,
                state: State::Dead,
                from: id("a"),
            }],
        })
        .collect()
    }

    #[test]
    fn every_gossip_body_round_trips_through_the_wire() {
        for msg in samples() {
            assert_eq!(from_wire(to_wire(&msg)).expect("decode"), msg);
        }
    }

    #[test]
    fn garbled_gossip_converts_or_is_refused_and_what_converts_round_trips() {
        use prost::Message as _;
        let valid: Vec<Vec<u8>> = samples()
            .iter()
            .map(|m| to_wire(m).encode_to_vec())
            .collect();
        let (mut converted, mut refused) = (0, 0);
        for bytes in crate::garble::inputs(7, &valid, 20_000) {
            let Ok(wire) = pb::Gossip::decode(bytes.as_slice()) else {
                continue;
            };
            match from_wire(wire) {
                Ok(msg) => {
                    converted += 1;
                    assert_eq!(from_wire(to_wire(&msg)).ok(), Some(msg));
                }
                Err(_) => refused += 1,
            }
        }
        // Both outcomes were exercised, not only the decoder's refusals.
        assert!(converted > 100 && refused > 100, "{converted} {refused}");
    }
}
