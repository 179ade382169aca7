//! The core's timer queue. Entries are never cancelled: a handler checks on
//! expiry whether its timer still applies, so a stale entry costs one wake-up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use vergent_types::NodeId;

/// What a timer is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// Start the next probe round (and judge the previous one).
    Probe,
    /// The direct ping of probe `seq` went unanswered: probe indirectly.
    ProbeTimeout { seq: u64 },
    /// A ping sent on behalf of a `PingReq` went unanswered: send a nack.
    ForwardTimeout { seq: u64 },
    /// A suspicion of `id` may have run out.
    Suspicion { id: NodeId },
    /// A dead or left `id` may have been kept long enough.
    Reap { id: NodeId },
    /// Push queued updates to random members.
    Gossip,
    /// Exchange full state with a random member.
    PushPull,
    /// No seed has answered yet: ask them again.
    JoinRetry,
    /// A seed answered a while ago: exchange state once more with anyone.
    JoinSync,
}

/// A min-heap of `(deadline, insertion order, timer)`.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    next: u64,
}

impl Timers {
    /// Arms `timer` to fire at `at`.
    pub(crate) fn set(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, self.next, timer)));
        self.next += 1;
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, _, timer))| timer)
            }
            _ => None,
        }
    }
}
