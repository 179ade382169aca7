//! Suspicion, death, refutation and conflicting identities.

use std::time::Instant;

use super::*;

fn gossip(from: &str, updates: Vec<Update>) -> Message {
    let mut m = msg(from, 0, Body::Gossip);
    m.updates = updates;
    m
}

#[test]
fn independent_confirmations_bring_the_suspicion_timeout_down_to_the_minimum() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c", "d", "e"]);
    let suspicions = ["c", "d", "e", "f"]
        .iter()
        .map(|by| update("b", 0, State::Suspect, by))
        .collect();
    a.handle_message(t0, &addr("c"), gossip("c", suspicions));
    let outs = drain(&mut a);
    assert_eq!(
        events(&outs),
        vec![Event::Suspect(member("b", 0, State::Suspect))]
    );
    // Five live members: min = 4 s, max = 24 s, three confirmations expected.
    let outs = run_until(&mut a, t0 + 4 * SEC - Duration::from_millis(1));
    assert!(!events(&outs).iter().any(|e| matches!(e, Event::Dead(_))));
    let outs = run_until(&mut a, t0 + 4 * SEC);
    assert!(events(&outs).contains(&Event::Dead(member("b", 0, State::Dead))));
    assert_eq!(a.member(&id("b")).map(|m| m.state), Some(State::Dead));
    // Dead news is disseminated.
    let outs = run_until(&mut a, t0 + 5 * SEC);
    assert!(sends(&outs).iter().any(|(_, m)| {
        m.updates
            .iter()
            .any(|u| u.id == id("b") && u.state == State::Dead)
    }));
}

#[test]
fn news_of_own_suspicion_or_death_is_refuted_above_its_incarnation() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b"]);
    a.handle_message(
        t0,
        &addr("b"),
        gossip("b", vec![update("a", 0, State::Suspect, "b")]),
    );
    assert_eq!(a.incarnation(), 1);
    assert_eq!(
        a.local_health(),
        1,
        "Lifeguard: being suspected costs health"
    );
    drain(&mut a);
    a.handle_message(
        t0,
        &addr("b"),
        gossip("b", vec![update("a", 3, State::Dead, "b")]),
    );
    assert_eq!(a.incarnation(), 4);
    // Stale news is ignored.
    a.handle_message(
        t0,
        &addr("b"),
        gossip("b", vec![update("a", 2, State::Suspect, "b")]),
    );
    assert_eq!(a.incarnation(), 4);
    // The refutation goes out on the next message.
    let outs = run_until(&mut a, t0 + SEC);
    let alive = sends(&outs)
        .into_iter()
        .flat_map(|(_, m)| m.updates)
        .find(|u| u.id == id("a"))
        .expect("refutation piggybacked");
    assert_eq!((alive.incarnation, alive.state), (4, State::Alive));
    assert_eq!(a.member(&id("a")).map(|m| m.incarnation), Some(4));
}

#[test]
fn dead_in_a_push_pull_is_only_a_suspicion_of_a_live_member() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c"]);
    let list = msg(
        "c",
        0,
        Body::PushPull {
            members: vec![member("b", 0, State::Dead), member("x", 2, State::Dead)],
            is_reply: true,
        },
    );
    a.handle_message(t0, &addr("c"), list);
    let outs = drain(&mut a);
    assert_eq!(
        events(&outs),
        vec![Event::Suspect(member("b", 0, State::Suspect))],
        "unknown dead members are remembered silently"
    );
    assert_eq!(a.member(&id("x")).map(|m| m.state), Some(State::Dead));
}

#[test]
fn a_sender_believed_dead_is_told_so_and_comes_back_by_refuting() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c"]);
    a.handle_message(
        t0,
        &addr("c"),
        gossip("c", vec![update("b", 0, State::Dead, "c")]),
    );
    drain(&mut a);
    let ping = msg(
        "b",
        0,
        Body::Ping {
            seq: 1,
            target: id("a"),
        },
    );
    a.handle_message(t0, &addr("b"), ping);
    let told = sends(&drain(&mut a))
        .into_iter()
        .any(|(to, m)| to == addr("b") && m.updates.contains(&update("b", 0, State::Dead, "a")));
    assert!(told);
    a.handle_message(t0, &addr("b"), msg("b", 1, Body::Gossip));
    assert_eq!(
        events(&drain(&mut a)),
        vec![Event::Alive(member("b", 1, State::Alive))]
    );
}

#[test]
fn same_id_from_another_address_keeps_the_higher_incarnation_and_warns_once() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let b5 = msg("b", 5, Body::Gossip);
    a.handle_message(t0, &addr("b"), b5);
    drain(&mut a);
    let imposter = Message {
        from: Sender {
            id: id("b"),
            addr: "elsewhere:7000".into(),
            incarnation: 2,
        },
        body: Body::Gossip,
        updates: Vec::new(),
    };
    a.handle_message(t0, "elsewhere:7000", imposter.clone());
    assert_eq!(
        events(&drain(&mut a)),
        vec![Event::Conflict {
            kept: member("b", 5, State::Alive),
            rejected_addr: "elsewhere:7000".into(),
            rejected_incarnation: 2,
        }]
    );
    a.handle_message(t0, "elsewhere:7000", imposter);
    assert!(events(&drain(&mut a)).is_empty(), "reported once");
    assert_eq!(a.member(&id("b")).map(|m| m.addr.as_str()), Some("b:7000"));
    // A higher incarnation from the new address wins: the member moved.
    let moved = Message {
        from: Sender {
            id: id("b"),
            addr: "elsewhere:7000".into(),
            incarnation: 6,
        },
        body: Body::Gossip,
        updates: Vec::new(),
    };
    a.handle_message(t0, "elsewhere:7000", moved);
    assert!(matches!(
        events(&drain(&mut a)).as_slice(),
        [Event::AddrChanged { old_addr, .. }] if old_addr == "b:7000"
    ));
}
