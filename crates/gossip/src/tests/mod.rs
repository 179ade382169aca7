//! Effect tests of the state machine: feed one input, assert on the outputs
//! (openraft engine-test style). Multi-node behaviour lives in `tests/`.

mod failure;
mod join_leave;
mod probe;

use std::time::{Duration, Instant};

use crate::{Body, Config, Event, Member, Membership, Message, Output, Sender, State, Update};
use vergent_types::NodeId;

pub(crate) fn id(name: &str) -> NodeId {
    NodeId::new(name).expect("valid id")
}

pub(crate) fn addr(name: &str) -> String {
    format!("{name}:7000")
}

/// A fresh node `name` at `t0`.
pub(crate) fn node(name: &str, t0: Instant) -> Membership {
    Membership::new(Config::default(), id(name), addr(name), 0, 7, t0)
}

pub(crate) fn sender(name: &str, incarnation: u64) -> Sender {
    Sender {
        id: id(name),
        addr: addr(name),
        incarnation,
    }
}

pub(crate) fn msg(from: &str, incarnation: u64, body: Body) -> Message {
    Message {
        from: sender(from, incarnation),
        body,
        updates: Vec::new(),
    }
}

pub(crate) fn member(name: &str, incarnation: u64, state: State) -> Member {
    Member {
        id: id(name),
        addr: addr(name),
        incarnation,
        state,
    }
}

pub(crate) fn update(name: &str, incarnation: u64, state: State, from: &str) -> Update {
    Update {
        id: id(name),
        addr: addr(name),
        incarnation,
        state,
        from: id(from),
    }
}

pub(crate) fn drain(m: &mut Membership) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

pub(crate) fn sends(outs: &[Output]) -> Vec<(String, Message)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } => Some((to.clone(), msg.clone())),
            Output::Event(_) => None,
        })
        .collect()
}

pub(crate) fn events(outs: &[Output]) -> Vec<Event> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            Output::Send { .. } => None,
        })
        .collect()
}

/// Fires every timer up to and including `until`, collecting the outputs.
pub(crate) fn run_until(m: &mut Membership, until: Instant) -> Vec<Output> {
    let mut outs = Vec::new();
    while let Some(t) = m.poll_timeout().filter(|t| *t <= until) {
        m.handle_timeout(t);
        outs.extend(drain(m));
    }
    outs
}

/// Makes `m` know `others` as alive through a push-pull reply from the first.
pub(crate) fn know(m: &mut Membership, now: Instant, others: &[&str]) {
    let members = others.iter().map(|n| member(n, 0, State::Alive)).collect();
    let reply = msg(
        others[0],
        0,
        Body::PushPull {
            members,
            is_reply: true,
        },
    );
    m.handle_message(now, &addr(others[0]), reply);
    drain(m);
}

pub(crate) const SEC: Duration = Duration::from_secs(1);
