//! The per-peer log sender.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Knobs of a [`Sender`].
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Most entries in one batch.
    pub batch_entries: usize,
    /// About the most bytes in one batch (at least one entry is always sent).
    pub batch_bytes: usize,
    /// Most batches awaiting an ack; pipelining hides the round trip.
    pub max_in_flight: usize,
    /// With no ack for this long, everything after the cursor is resent.
    pub ack_timeout: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            batch_entries: 512,
            batch_bytes: 1 << 20,
            max_in_flight: 8,
            ack_timeout: Duration::from_secs(2),
        }
    }
}

/// A run of consecutive log entries for the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<E> {
    /// Sequence number of the first entry.
    pub first: u64,
    /// Sequence number of the last entry.
    pub last: u64,
    /// The entries, `first..=last`.
    pub entries: Vec<E>,
    /// The sender's log no longer holds entries before `first` (truncated
    /// past the peer's cursor): the receiver moves its cursor up to `first`
    /// and anti-entropy repair brings it what it missed.
    pub truncated: bool,
}

impl<E> Batch<E> {
    /// Appends `next` when it continues this batch (its first entry follows
    /// this one's last, and it was not cut from a truncated log), so a
    /// receiver can apply batches that queued up meanwhile as one write and
    /// one sync; otherwise hands `next` back untouched.
    pub fn append(&mut self, next: Self) -> Result<(), Self> {
        if next.truncated || next.first != self.last.saturating_add(1) {
            return Err(next);
        }
        self.last = next.last;
        self.entries.extend(next.entries);
        Ok(())
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<E> {
    /// Read up to `max_entries` (about `max_bytes`) log entries after `after`
    /// and hand them back with [`Sender::handle_log`].
    ReadLog {
        /// Read entries with a sequence number above this.
        after: u64,
        /// Most entries to read.
        max_entries: usize,
        /// About the most bytes to read.
        max_bytes: usize,
    },
    /// Send this batch to the peer.
    Transmit(Batch<E>),
    /// The peer acknowledged everything up to `cursor` as durable: persist the
    /// cursor (truncation of the log may follow).
    PersistCursor {
        /// The new cursor.
        cursor: u64,
    },
}

/// Ships the log to one peer. `E` is the driver's entry type.
#[derive(Debug)]
pub struct Sender<E> {
    config: SenderConfig,
    /// Everything `<= acked` is durable at the peer.
    acked: u64,
    /// Everything `<= sent` has been transmitted at least once since the last rewind.
    sent: u64,
    /// Newest entry in the local log.
    head: u64,
    /// Batches transmitted and not yet acknowledged: (last seq, sent at).
    in_flight: VecDeque<(u64, Instant)>,
    /// A `ReadLog` is outstanding; don't ask twice.
    reading: bool,
    /// The peer is believed alive; a dead peer's sender pauses.
    active: bool,
    /// When the cursor last moved (or the sender resumed), for the ack timeout.
    last_progress: Instant,
    outputs: VecDeque<Output<E>>,
}

impl<E> Sender<E> {
    /// A sender resuming from a persisted `cursor`, with the local log's `head`.
    pub fn new(config: SenderConfig, cursor: u64, head: u64, now: Instant) -> Self {
        let mut s = Self {
            config,
            acked: cursor,
            sent: cursor,
            head: head.max(cursor),
            in_flight: VecDeque::new(),
            reading: false,
            active: true,
            last_progress: now,
            outputs: VecDeque::new(),
        };
        s.pump(now);
        s
    }

    /// The peer's durable cursor.
    pub fn cursor(&self) -> u64 {
        self.acked
    }

    /// Whether everything in the local log is durable at the peer.
    pub fn is_caught_up(&self) -> bool {
        self.acked >= self.head
    }

    /// Whether the sender is shipping (the peer is alive).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// New local writes: the log now ends at `head`.
    pub fn handle_appended(&mut self, now: Instant, head: u64) {
        if head > self.head {
            self.head = head;
            self.pump(now);
        }
    }

    /// Entries read for an earlier `ReadLog`, consecutive from its `after + 1`.
    ///
    /// Entries the sender no longer needs (already acknowledged, or after a
    /// rewind) are dropped; an empty read means the log holds nothing more.
    pub fn handle_log(&mut self, now: Instant, entries: Vec<(u64, E)>) {
        self.reading = false;
        let mut batch: Option<Batch<E>> = None;
        let mut truncated = false;
        for (seq, entry) in entries {
            if seq <= self.sent {
                continue;
            }
            if batch.is_none() && seq > self.sent + 1 {
                // The read starts past what the peer needs: the log was
                // truncated below it. Asking again would spin forever; jump,
                // and tell the receiver (repair fills the gap).
                truncated = true;
                self.sent = seq - 1;
            }
            if seq != self.sent + 1 {
                // A gap means the log was truncated past the cursor; stop and
                // let the driver decide (anti-entropy takes over).
                break;
            }
            self.sent = seq;
            let b = batch.get_or_insert_with(|| Batch {
                first: seq,
                last: seq,
                entries: Vec::new(),
                truncated,
            });
            b.last = seq;
            b.entries.push(entry);
        }
        if let Some(b) = batch {
            if self.in_flight.is_empty() {
                self.last_progress = now;
            }
            self.in_flight.push_back((b.last, now));
            self.outputs.push_back(Output::Transmit(b));
        }
        self.pump(now);
    }

    /// The peer made everything up to `up_to` durable.
    pub fn handle_ack(&mut self, now: Instant, up_to: u64) {
        if up_to <= self.acked || up_to > self.sent.max(self.head) {
            // Stale, duplicated, or nonsense beyond what exists: ignore.
            return;
        }
        self.acked = up_to;
        self.sent = self.sent.max(up_to);
        while self
            .in_flight
            .front()
            .is_some_and(|(last, _)| *last <= up_to)
        {
            self.in_flight.pop_front();
        }
        self.last_progress = now;
        self.outputs
            .push_back(Output::PersistCursor { cursor: up_to });
        self.pump(now);
    }

    /// The peer is alive (again): resume from the cursor.
    pub fn handle_peer_up(&mut self, now: Instant) {
        if !self.active {
            self.active = true;
            self.rewind(now);
        }
    }

    /// The peer is dead or gone: stop sending until it is back.
    pub fn handle_peer_down(&mut self) {
        self.active = false;
        self.in_flight.clear();
        self.sent = self.acked;
    }

    /// Timer: resend from the cursor when acks stopped coming.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.active
            && !self.in_flight.is_empty()
            && now >= self.last_progress + self.config.ack_timeout
        {
            self.rewind(now);
        }
    }

    /// When [`Self::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.active && !self.in_flight.is_empty())
            .then(|| self.last_progress + self.config.ack_timeout)
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output<E>> {
        self.outputs.pop_front()
    }

    /// Go-back-N: forget what is in flight and send again after the cursor.
    fn rewind(&mut self, now: Instant) {
        self.in_flight.clear();
        self.sent = self.acked;
        self.last_progress = now;
        self.pump(now);
    }

    /// Asks for more log when there is room in the pipeline.
    fn pump(&mut self, _now: Instant) {
        if self.active
            && !self.reading
            && self.sent < self.head
            && self.in_flight.len() < self.config.max_in_flight
        {
            self.reading = true;
            self.outputs.push_back(Output::ReadLog {
                after: self.sent,
                max_entries: self.config.batch_entries,
                max_bytes: self.config.batch_bytes,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: u64, last: u64, truncated: bool) -> Batch<u64> {
        Batch {
            first,
            last,
            entries: (first..=last).collect(),
            truncated,
        }
    }

    #[test]
    fn only_a_batch_that_continues_another_is_appended_to_it() {
        let mut b = run(5, 7, true);
        assert_eq!(b.append(run(8, 9, false)), Ok(()));
        assert_eq!(b, run(5, 9, true), "a truncated start stays flagged");
        // A gap, an overlap and a truncated continuation are handed back.
        assert_eq!(b.append(run(11, 12, false)), Err(run(11, 12, false)));
        assert_eq!(b.append(run(9, 12, false)), Err(run(9, 12, false)));
        assert_eq!(b.append(run(10, 12, true)), Err(run(10, 12, true)));
        assert_eq!(b, run(5, 9, true));
    }

    fn drain<E>(s: &mut Sender<E>) -> Vec<Output<E>> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    #[test]
    fn new_writes_trigger_a_read_then_a_batch_then_the_cursor_moves_on_ack() {
        let t0 = Instant::now();
        let mut s: Sender<&str> = Sender::new(SenderConfig::default(), 0, 0, t0);
        assert!(drain(&mut s).is_empty());
        s.handle_appended(t0, 2);
        assert_eq!(
            drain(&mut s),
            vec![Output::ReadLog {
                after: 0,
                max_entries: 512,
                max_bytes: 1 << 20
            }]
        );
        s.handle_log(t0, vec![(1, "a"), (2, "b")]);
        assert_eq!(
            drain(&mut s),
            vec![Output::Transmit(Batch {
                first: 1,
                last: 2,
                entries: vec!["a", "b"],
                truncated: false,
            })]
        );
        s.handle_ack(t0, 2);
        assert_eq!(drain(&mut s), vec![Output::PersistCursor { cursor: 2 }]);
        assert!(s.is_caught_up());
    }

    #[test]
    fn acks_that_are_stale_or_beyond_the_log_are_ignored() {
        let t0 = Instant::now();
        let mut s: Sender<u8> = Sender::new(SenderConfig::default(), 5, 6, t0);
        drain(&mut s);
        s.handle_ack(t0, 3);
        s.handle_ack(t0, 99);
        assert_eq!(s.cursor(), 5);
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn a_silent_peer_gets_everything_after_the_cursor_again() {
        let t0 = Instant::now();
        let cfg = SenderConfig {
            ack_timeout: Duration::from_secs(1),
            ..SenderConfig::default()
        };
        let mut s: Sender<u8> = Sender::new(cfg, 0, 0, t0);
        s.handle_appended(t0, 1);
        drain(&mut s);
        s.handle_log(t0, vec![(1, 10)]);
        drain(&mut s);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        s.handle_timeout(t0 + Duration::from_millis(999));
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(
            drain(&mut s),
            vec![Output::ReadLog {
                after: 0,
                max_entries: 512,
                max_bytes: 1 << 20
            }]
        );
    }

    #[test]
    fn a_dead_peer_pauses_the_sender_and_resumes_from_the_cursor() {
        let t0 = Instant::now();
        let mut s: Sender<u8> = Sender::new(SenderConfig::default(), 3, 3, t0);
        s.handle_peer_down();
        s.handle_appended(t0, 10);
        assert!(drain(&mut s).is_empty(), "nothing is sent to a dead peer");
        assert_eq!(s.poll_timeout(), None);
        s.handle_peer_up(t0);
        assert_eq!(
            drain(&mut s),
            vec![Output::ReadLog {
                after: 3,
                max_entries: 512,
                max_bytes: 1 << 20
            }]
        );
    }

    #[test]
    fn a_log_truncated_past_the_cursor_is_skipped_once_and_flagged() {
        let t0 = Instant::now();
        let mut s: Sender<u8> = Sender::new(SenderConfig::default(), 2, 9, t0);
        drain(&mut s);
        s.handle_log(t0, vec![(7, 7), (8, 8), (9, 9)]);
        let out = drain(&mut s);
        assert_eq!(
            out[0],
            Output::Transmit(Batch {
                first: 7,
                last: 9,
                entries: vec![7, 8, 9],
                truncated: true,
            })
        );
        // No read is asked for again: the sender does not spin on the gap.
        assert_eq!(out.len(), 1);
        s.handle_ack(t0, 9);
        assert_eq!(s.cursor(), 9);
    }

    #[test]
    fn a_gap_in_the_log_stops_the_batch_before_it() {
        let t0 = Instant::now();
        let mut s: Sender<u8> = Sender::new(SenderConfig::default(), 0, 5, t0);
        drain(&mut s);
        s.handle_log(t0, vec![(1, 1), (2, 2), (4, 4)]);
        let out = drain(&mut s);
        assert_eq!(
            out[0],
            Output::Transmit(Batch {
                first: 1,
                last: 2,
                entries: vec![1, 2],
                truncated: false
            })
        );
    }

    #[test]
    fn pipelining_keeps_at_most_max_in_flight_batches() {
        let t0 = Instant::now();
        let cfg = SenderConfig {
            batch_entries: 1,
            max_in_flight: 2,
            ..SenderConfig::default()
        };
        let mut s: Sender<u64> = Sender::new(cfg, 0, 10, t0);
        let mut transmitted = 0;
        for _ in 0..10 {
            let mut progressed = false;
            for out in drain(&mut s) {
                if let Output::ReadLog { after, .. } = out {
                    s.handle_log(t0, vec![(after + 1, after + 1)]);
                    progressed = true;
                } else if let Output::Transmit(_) = out {
                    transmitted += 1;
                }
            }
            if !progressed {
                break;
            }
        }
        assert_eq!(transmitted, 2);
    }
}
