//! Joining through seeds, restarts, graceful leave.

use std::time::Instant;

use super::*;

fn push_pulls(outs: &[Output]) -> Vec<(String, bool)> {
    sends(outs)
        .into_iter()
        .filter_map(|(to, m)| match m.body {
            Body::PushPull { is_reply, .. } => Some((to, is_reply)),
            _ => None,
        })
        .collect()
}

#[test]
fn join_asks_every_other_seed_and_retries_until_one_answers() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    a.join(t0, &[addr("a"), addr("s1"), addr("s2"), addr("s1")]);
    let first = push_pulls(&drain(&mut a));
    assert_eq!(first, vec![(addr("s1"), false), (addr("s2"), false)]);
    // No answer: retried after 1 s, then after 2 s more.
    let outs = run_until(&mut a, t0 + SEC);
    assert_eq!(push_pulls(&outs).len(), 2);
    let outs = run_until(&mut a, t0 + 3 * SEC - Duration::from_millis(1));
    assert!(push_pulls(&outs).is_empty());
    let outs = run_until(&mut a, t0 + 3 * SEC);
    assert_eq!(push_pulls(&outs).len(), 2);
    // An answer ends the retries and teaches the whole member list.
    let reply = msg(
        "s1",
        0,
        Body::PushPull {
            members: vec![member("s1", 0, State::Alive), member("s2", 4, State::Alive)],
            is_reply: true,
        },
    );
    a.handle_message(t0 + 3 * SEC, &addr("s1"), reply);
    let joined = events(&drain(&mut a));
    assert_eq!(
        joined,
        vec![
            Event::Joined(member("s1", 0, State::Alive)),
            Event::Joined(member("s2", 4, State::Alive)),
        ]
    );
    // No more retries; five seconds later, one more exchange with a random
    // member, repeated while it teaches something new.
    let t1 = t0 + 3 * SEC;
    let outs = run_until(&mut a, t1 + 5 * SEC - Duration::from_millis(1));
    assert!(push_pulls(&outs).is_empty(), "no more join retries");
    let sync = |from: &str, members: Vec<Member>| {
        msg(
            from,
            0,
            Body::PushPull {
                members,
                is_reply: true,
            },
        )
    };
    let outs = run_until(&mut a, t1 + 5 * SEC);
    assert_eq!(push_pulls(&outs).len(), 1);
    a.handle_message(
        t1 + 5 * SEC,
        &addr("s2"),
        sync("s2", vec![member("s3", 0, State::Alive)]),
    );
    drain(&mut a);
    let outs = run_until(&mut a, t1 + 10 * SEC);
    assert_eq!(push_pulls(&outs).len(), 1, "the last exchange taught s3");
    a.handle_message(
        t1 + 10 * SEC,
        &addr("s3"),
        sync("s3", vec![member("s1", 0, State::Alive)]),
    );
    let outs = run_until(&mut a, t1 + 25 * SEC);
    assert!(
        push_pulls(&outs).is_empty(),
        "the last exchange taught nothing"
    );
}

#[test]
fn a_push_pull_request_is_answered_with_the_list_as_it_was_before_it() {
    let t0 = Instant::now();
    let mut s = node("s", t0);
    know(&mut s, t0, &["b", "c"]);
    let req = msg(
        "j",
        0,
        Body::PushPull {
            members: vec![member("j", 0, State::Alive)],
            is_reply: false,
        },
    );
    s.handle_message(t0, &addr("j"), req);
    let outs = drain(&mut s);
    assert_eq!(
        events(&outs),
        vec![Event::Joined(member("j", 0, State::Alive))]
    );
    let (to, reply) = sends(&outs).pop().expect("a reply");
    assert_eq!(to, addr("j"));
    let Body::PushPull { members, is_reply } = reply.body else {
        panic!("expected a push-pull reply");
    };
    assert!(is_reply);
    let names: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        names,
        ["b", "c", "s"],
        "the joiner is not echoed back to itself"
    );
    assert_eq!(s.member(&id("j")).map(|m| m.state), Some(State::Alive));
}

#[test]
fn restart_at_incarnation_zero_continues_above_its_earlier_life() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let reply = msg(
        "s",
        0,
        Body::PushPull {
            members: vec![member("s", 0, State::Alive), member("a", 5, State::Alive)],
            is_reply: true,
        },
    );
    a.handle_message(t0, &addr("s"), reply);
    assert_eq!(a.incarnation(), 6);
    let mut b = node("b", t0);
    let reply = msg(
        "s",
        0,
        Body::PushPull {
            members: vec![member("s", 0, State::Alive), member("b", 7, State::Dead)],
            is_reply: true,
        },
    );
    b.handle_message(t0, &addr("s"), reply);
    assert_eq!(b.incarnation(), 8);
}

#[test]
fn leave_announces_left_stops_probing_and_winds_down_acking_pings_only() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c", "d"]);
    a.leave(t0);
    let outs = drain(&mut a);
    let told: Vec<String> = sends(&outs)
        .into_iter()
        .filter(|(_, m)| m.updates.contains(&update("a", 0, State::Left, "a")))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(told.len(), 3, "announced at once to three members");
    assert_eq!(a.member(&id("a")).map(|m| m.state), Some(State::Left));
    let outs = run_until(&mut a, t0 + 60 * SEC);
    assert!(
        sends(&outs)
            .iter()
            .all(|(_, m)| !matches!(m.body, Body::Ping { .. } | Body::PushPull { .. }))
    );
    assert_eq!(a.poll_timeout(), None, "nothing left to do");
    // A left node does not refute.
    a.handle_message(
        t0 + 60 * SEC,
        &addr("b"),
        Message {
            from: sender("b", 0),
            body: Body::Gossip,
            updates: vec![update("a", 0, State::Dead, "b")],
        },
    );
    assert_eq!(a.incarnation(), 0);
    // It still acks pings from members that have not heard of the leave.
    let ping = msg(
        "c",
        0,
        Body::Ping {
            seq: 3,
            target: id("a"),
        },
    );
    a.handle_message(t0 + 60 * SEC, &addr("c"), ping);
    let acks = sends(&drain(&mut a));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].1.body, Body::Ack { seq: 3 });
}

#[test]
fn left_is_final_for_its_incarnation_until_a_restart_raises_it() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c"]);
    let news = |u| Message {
        from: sender("c", 0),
        body: Body::Gossip,
        updates: vec![u],
    };
    a.handle_message(t0, &addr("c"), news(update("b", 0, State::Left, "b")));
    assert_eq!(
        events(&drain(&mut a)),
        vec![Event::Left(member("b", 0, State::Left))]
    );
    a.handle_message(t0, &addr("c"), news(update("b", 0, State::Dead, "c")));
    a.handle_message(t0, &addr("c"), news(update("b", 0, State::Alive, "b")));
    assert!(events(&drain(&mut a)).is_empty());
    a.handle_message(t0, &addr("c"), news(update("b", 1, State::Alive, "b")));
    assert_eq!(
        events(&drain(&mut a)),
        vec![Event::Alive(member("b", 1, State::Alive))]
    );
}

#[test]
fn dead_members_are_forgotten_after_the_retention_time() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c"]);
    let dead = Message {
        from: sender("c", 0),
        body: Body::Gossip,
        updates: vec![update("b", 0, State::Dead, "c")],
    };
    a.handle_message(t0, &addr("c"), dead);
    drain(&mut a);
    assert_eq!(a.count(State::Dead), 1);
    // c answers every probe so it stays alive.
    let retention = Config::default().dead_retention;
    let mut t = t0;
    while t < t0 + retention + SEC {
        t = a.poll_timeout().expect("timers armed");
        a.handle_timeout(t);
        for (_, m) in sends(&drain(&mut a)) {
            if let Body::Ping { seq, .. } = m.body {
                a.handle_message(t, &addr("c"), msg("c", 0, Body::Ack { seq }));
                drain(&mut a);
            }
        }
    }
    assert_eq!(a.member(&id("b")), None);
    assert_eq!(a.count(State::Dead), 0);
    assert_eq!(a.count(State::Alive), 2);
}
