//! Sender and receiver over a seeded lossy, reordering, duplicating link:
//! every entry arrives exactly once in order at the cursor, for many seeds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vergent_replication::{Batch, Output, Receiver, Sender, SenderConfig, Verdict};

enum Msg {
    Batch(Batch<u64>),
    Ack(u64),
}

struct Link {
    rng: StdRng,
    loss: f64,
    dup: f64,
    /// (deliver at, tie-breaker, to receiver?, message)
    queue: BTreeMap<(Instant, u64), (bool, Msg)>,
    n: u64,
}

impl Link {
    fn send(&mut self, now: Instant, to_receiver: bool, msg: Msg) {
        if self.rng.random_bool(self.loss) {
            return;
        }
        let copies = if self.rng.random_bool(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::from_millis(self.rng.random_range(1..50));
            self.n += 1;
            let msg = match &msg {
                Msg::Batch(b) => Msg::Batch(b.clone()),
                Msg::Ack(a) => Msg::Ack(*a),
            };
            self.queue.insert((now + delay, self.n), (to_receiver, msg));
        }
    }
}

struct Outcome {
    applied: Vec<u64>,
    cursor: u64,
    receiver_durable: u64,
    virtual_time: Duration,
}

/// Runs one seeded scenario: `total` entries appended over time, the peer
/// down for a while in the middle, until caught up or a virtual deadline.
fn run(seed: u64, total: u64, loss: f64) -> Outcome {
    #[allow(clippy::disallowed_methods)] // an arbitrary origin for virtual time
    let t0 = Instant::now();
    let mut now = t0;
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = SenderConfig {
        batch_entries: rng.random_range(1..20),
        batch_bytes: usize::MAX,
        max_in_flight: rng.random_range(1..5),
        ack_timeout: Duration::from_millis(200),
    };
    let mut sender: Sender<u64> = Sender::new(cfg, 0, 0, now);
    let mut receiver = Receiver::new(0);
    let mut link = Link {
        rng: StdRng::seed_from_u64(seed ^ 0x9e37_79b9),
        loss,
        dup: 0.05,
        queue: BTreeMap::new(),
        n: 0,
    };
    let mut applied = Vec::new();
    let mut head = 0;
    let down_from = t0 + Duration::from_millis(rng.random_range(100..500));
    let down_until = down_from + Duration::from_millis(rng.random_range(100..1000));
    let mut down = false;
    let deadline = t0 + Duration::from_secs(600);
    let step = Duration::from_millis(5);
    while now < deadline {
        // Writes arrive steadily until `total`.
        if head < total {
            head += rng.random_range(0..4u64).min(total - head);
            sender.handle_appended(now, head);
        }
        if !down && now >= down_from && now < down_until {
            down = true;
            sender.handle_peer_down();
        }
        if down && now >= down_until {
            down = false;
            sender.handle_peer_up(now);
        }
        sender.handle_timeout(now);
        while let Some(out) = sender.poll_output() {
            match out {
                Output::ReadLog {
                    after, max_entries, ..
                } => {
                    let end = head.min(after + max_entries as u64);
                    sender.handle_log(now, (after + 1..=end).map(|s| (s, s)).collect());
                }
                Output::Transmit(b) => link.send(now, true, Msg::Batch(b)),
                Output::PersistCursor { cursor } => {
                    assert!(
                        cursor <= receiver.durable(),
                        "cursor passed what the peer made durable"
                    );
                }
            }
        }
        // Deliver everything due.
        let due: Vec<_> = link
            .queue
            .range(..=(now, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let Some((to_receiver, msg)) = link.queue.remove(&k) else {
                continue;
            };
            match (to_receiver, msg) {
                (true, Msg::Batch(b)) => {
                    if down {
                        continue; // a dead peer hears nothing
                    }
                    let ack = match receiver.handle_batch(b) {
                        Verdict::Apply { entries, up_to } => {
                            applied.extend(entries);
                            receiver.handle_applied(up_to)
                        }
                        Verdict::Ack(c) => c,
                    };
                    link.send(now, false, Msg::Ack(ack));
                }
                (false, Msg::Ack(a)) => sender.handle_ack(now, a),
                _ => unreachable!("batches go to the receiver, acks to the sender"),
            }
        }
        if head == total && sender.is_caught_up() {
            break;
        }
        now += step;
    }
    Outcome {
        applied,
        cursor: sender.cursor(),
        receiver_durable: receiver.durable(),
        virtual_time: now - t0,
    }
}

#[test]
fn every_entry_is_applied_exactly_once_in_order_despite_loss_reordering_and_duplication() {
    for seed in 0..200 {
        let total = 300;
        let o = run(seed, total, 0.2);
        assert_eq!(o.applied, (1..=total).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(
            o.cursor, total,
            "seed {seed}: sender did not catch up in {:?}",
            o.virtual_time
        );
        assert_eq!(o.receiver_durable, total, "seed {seed}");
    }
}

#[test]
fn a_clean_link_catches_up_without_retransmission_timeouts() {
    for seed in 0..50 {
        let o = run(seed, 500, 0.0);
        assert_eq!(o.applied.len(), 500, "seed {seed}");
        assert_eq!(o.cursor, 500, "seed {seed}");
    }
}

#[test]
fn replaying_a_pinned_seed_gives_the_same_run() {
    let a = run(42, 200, 0.3);
    let b = run(42, 200, 0.3);
    assert_eq!(a.applied, b.applied);
    assert_eq!(a.virtual_time, b.virtual_time);
}
