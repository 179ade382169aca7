//! Probing: pings, acks, indirect probes, nacks, local health and the buddy
//! system.

use std::time::Instant;

use super::*;

/// Runs timers until the node sends its first probe; returns when and to whom.
fn until_ping(m: &mut Membership) -> (Instant, u64, NodeId, Message) {
    for _ in 0..100 {
        let t = m.poll_timeout().expect("timers armed");
        m.handle_timeout(t);
        for (_, msg) in sends(&drain(m)) {
            if let Body::Ping { seq, target } = &msg.body {
                return (t, *seq, target.clone(), msg.clone());
            }
        }
    }
    panic!("no probe within 100 timers");
}

#[test]
fn ping_for_this_node_is_acked_at_the_advertised_address_others_are_ignored() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let ping = msg(
        "b",
        0,
        Body::Ping {
            seq: 9,
            target: id("a"),
        },
    );
    a.handle_message(t0, "10.9.9.9:5555", ping);
    let outs = drain(&mut a);
    assert_eq!(
        events(&outs),
        vec![Event::Joined(member("b", 0, State::Alive))]
    );
    let acks: Vec<_> = sends(&outs)
        .into_iter()
        .filter(|(_, m)| m.body == Body::Ack { seq: 9 })
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, addr("b"), "reply goes to the advertised address");

    let wrong = msg(
        "b",
        0,
        Body::Ping {
            seq: 10,
            target: id("z"),
        },
    );
    a.handle_message(t0, &addr("b"), wrong);
    assert!(
        sends(&drain(&mut a))
            .iter()
            .all(|(_, m)| !matches!(m.body, Body::Ack { .. }))
    );
}

#[test]
fn unanswered_probe_asks_k_helpers_then_suspects_the_target_and_lowers_health() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c", "d", "e"]);
    let (t, seq, target, _) = until_ping(&mut a);

    let outs = run_until(&mut a, t + SEC / 2);
    let reqs: Vec<_> = sends(&outs)
        .into_iter()
        .filter_map(|(to, m)| match m.body {
            Body::PingReq {
                seq: s,
                target: tg,
                target_addr,
            } => Some((to, s, tg, target_addr)),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 3, "indirect_probes = 3");
    for (to, s, tg, target_addr) in &reqs {
        assert_eq!((*s, tg), (seq, &target));
        assert_eq!(target_addr, &addr(target.as_str()));
        assert_ne!(to, &addr(target.as_str()), "helpers are not the target");
    }

    let outs = run_until(&mut a, t + SEC);
    assert!(
        events(&outs).contains(&Event::Suspect(member(target.as_str(), 0, State::Suspect))),
        "{outs:?}"
    );
    assert_eq!(
        a.local_health(),
        3,
        "three nacks were expected and none came"
    );
}

#[test]
fn acked_probe_suspects_no_one_and_nacks_keep_health() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b", "c", "d", "e"]);
    let (t, seq, target, _) = until_ping(&mut a);
    a.handle_message(
        t,
        &addr(target.as_str()),
        msg(target.as_str(), 0, Body::Ack { seq }),
    );
    let outs = run_until(&mut a, t + SEC - Duration::from_millis(1));
    assert!(events(&outs).is_empty(), "{outs:?}");
    assert_eq!(a.local_health(), 0);

    // Next round: no ack, but every helper nacks, so the fault is the target's.
    let (t, seq, target, _) = until_ping(&mut a);
    let outs = run_until(&mut a, t + SEC / 2);
    for (to, m) in sends(&outs) {
        if matches!(m.body, Body::PingReq { .. }) {
            let helper = to.trim_end_matches(":7000").to_string();
            a.handle_message(t + SEC / 2, &to, msg(&helper, 0, Body::Nack { seq }));
        }
    }
    let outs = run_until(&mut a, t + SEC);
    assert!(events(&outs).contains(&Event::Suspect(member(target.as_str(), 0, State::Suspect))));
    assert_eq!(a.local_health(), 0, "all nacks arrived");
}

#[test]
fn ping_req_is_forwarded_and_the_ack_relayed_or_a_nack_sent_at_80_percent() {
    let t0 = Instant::now();
    let mut h = node("h", t0);
    let req = |seq| {
        msg(
            "a",
            0,
            Body::PingReq {
                seq,
                target: id("t"),
                target_addr: addr("t"),
            },
        )
    };
    h.handle_message(t0, &addr("a"), req(5));
    let pings = sends(&drain(&mut h));
    let (to, ping) = pings.last().expect("forwarded ping");
    assert_eq!(to, &addr("t"));
    let Body::Ping { seq: own, target } = ping.body.clone() else {
        panic!("expected a ping, got {ping:?}");
    };
    assert_eq!(target, id("t"));
    h.handle_message(t0, &addr("t"), msg("t", 0, Body::Ack { seq: own }));
    let relayed = sends(&drain(&mut h));
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].0, addr("a"));
    assert_eq!(relayed[0].1.body, Body::Ack { seq: 5 });

    h.handle_message(t0, &addr("a"), req(6));
    drain(&mut h);
    let nack_at = t0 + Config::default().probe_timeout.mul_f64(0.8);
    let outs = run_until(&mut h, nack_at - Duration::from_millis(1));
    assert!(
        sends(&outs)
            .iter()
            .all(|(_, m)| m.body != Body::Nack { seq: 6 })
    );
    let outs = run_until(&mut h, nack_at);
    assert!(
        sends(&outs)
            .iter()
            .any(|(to, m)| to == &addr("a") && m.body == Body::Nack { seq: 6 })
    );
}

#[test]
fn probing_a_suspect_piggybacks_its_suspicion_first() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    know(&mut a, t0, &["b"]);
    let mut gossip = msg("c", 0, Body::Gossip);
    gossip.updates = vec![update("b", 0, State::Suspect, "c")];
    a.handle_message(t0, &addr("c"), gossip);
    drain(&mut a);
    // Probe until b is the target (a knows b and c).
    for _ in 0..10 {
        let (_, _, target, ping) = until_ping(&mut a);
        if target == id("b") {
            assert_eq!(ping.updates[0].id, id("b"));
            assert_eq!(ping.updates[0].state, State::Suspect);
            return;
        }
    }
    panic!("b was never probed");
}
