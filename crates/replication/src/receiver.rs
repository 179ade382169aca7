//! The receiving side: accepts batches in order and says what to acknowledge.

use crate::Batch;

/// What to do with a received batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<E> {
    /// Apply these entries durably (they are new and contiguous), then call
    /// [`Receiver::handle_applied`] with `up_to` and acknowledge it.
    Apply {
        /// The entries to apply, in order.
        entries: Vec<E>,
        /// The sequence number of the last one.
        up_to: u64,
    },
    /// Nothing new (a duplicate) or a gap (an earlier batch was lost):
    /// acknowledge the current cursor again so the sender knows where we are.
    Ack(u64),
}

/// Tracks how much of one origin's log is durable here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    durable: u64,
}

impl Receiver {
    /// Resumes from the persisted cursor for this origin.
    pub fn new(durable: u64) -> Self {
        Self { durable }
    }

    /// Everything `<=` this is durable here.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Decides what to do with a batch.
    ///
    /// A batch flagged `truncated` may start past the cursor: the sender's
    /// log no longer holds the entries between, so the cursor jumps (what was
    /// skipped reaches this node through anti-entropy repair).
    pub fn handle_batch<E>(&self, batch: Batch<E>) -> Verdict<E> {
        if batch.truncated && batch.first > self.durable + 1 {
            return Verdict::Apply {
                entries: batch.entries,
                up_to: batch.last,
            };
        }
        if batch.last <= self.durable || batch.first > self.durable + 1 {
            return Verdict::Ack(self.durable);
        }
        let skip = (self.durable + 1 - batch.first) as usize;
        Verdict::Apply {
            entries: batch.entries.into_iter().skip(skip).collect(),
            up_to: batch.last,
        }
    }

    /// The entries up to `up_to` are durable; returns the cursor to acknowledge.
    pub fn handle_applied(&mut self, up_to: u64) -> u64 {
        self.durable = self.durable.max(up_to);
        self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, last: u64) -> Batch<u64> {
        Batch {
            first,
            last,
            entries: (first..=last).collect(),
            truncated: false,
        }
    }

    #[test]
    fn a_batch_from_a_truncated_log_moves_the_cursor_past_the_gap() {
        let r = Receiver::new(3);
        let mut b = batch(10, 12);
        assert_eq!(r.handle_batch(b.clone()), Verdict::Ack(3));
        b.truncated = true;
        assert_eq!(
            r.handle_batch(b),
            Verdict::Apply {
                entries: vec![10, 11, 12],
                up_to: 12
            }
        );
    }

    #[test]
    fn overlapping_batches_apply_only_the_new_suffix() {
        let r = Receiver::new(3);
        assert_eq!(
            r.handle_batch(batch(2, 5)),
            Verdict::Apply {
                entries: vec![4, 5],
                up_to: 5
            }
        );
    }

    #[test]
    fn duplicates_and_gaps_are_answered_with_the_current_cursor() {
        let r = Receiver::new(3);
        assert_eq!(r.handle_batch(batch(1, 3)), Verdict::Ack(3));
        assert_eq!(r.handle_batch(batch(5, 6)), Verdict::Ack(3));
    }

    #[test]
    fn the_cursor_never_moves_backwards() {
        let mut r = Receiver::new(7);
        assert_eq!(r.handle_applied(5), 7);
        assert_eq!(r.handle_applied(9), 9);
    }
}
