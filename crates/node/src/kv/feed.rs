//! The change feed watchers read: every durable change applied on this node,
//! in commit order, kept in a ring bounded by count and by bytes.
//!
//! Watchers read it by cursor, so a stalled watcher holds no copy of its
//! own: memory is the ring's bound however many watchers there are. A
//! watcher that falls behind the ring's oldest change is closed with a
//! clear error (`WATCH_LAGGED`) rather than slowing writers or growing
//! memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use vergent_storage::Record;

/// A change applied on this node, as watchers see it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) key: Vec<u8>,
    pub(crate) record: Record,
    pub(crate) local: bool,
}

impl Change {
    fn size(&self) -> usize {
        64 + self.key.len() + self.record.value.as_ref().map_or(0, Vec::len)
    }
}

#[derive(Debug, Default)]
struct Ring {
    /// Sequence number of `changes[0]`.
    first: u64,
    changes: VecDeque<Arc<Change>>,
    bytes: usize,
}

/// The bounded ring of recent changes (see the module docs).
#[derive(Debug)]
pub(crate) struct Feed {
    ring: Mutex<Ring>,
    /// The sequence number the next change will get.
    next: watch::Sender<u64>,
    max_changes: usize,
    max_bytes: usize,
}

/// A watcher fell this many changes behind the ring and was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lagged(pub(crate) u64);

impl Feed {
    /// A feed holding at most `max_changes` changes and about `max_bytes`
    /// (at least the newest change is always held).
    pub(crate) fn new(max_changes: usize, max_bytes: usize) -> Self {
        Self {
            ring: Mutex::new(Ring::default()),
            next: watch::Sender::new(0),
            max_changes: max_changes.max(1),
            max_bytes,
        }
    }

    /// Appends a change; never blocks on watchers.
    pub(crate) fn publish(&self, change: Change) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.bytes += change.size();
        ring.changes.push_back(Arc::new(change));
        while ring.changes.len() > 1
            && (ring.changes.len() > self.max_changes || ring.bytes > self.max_bytes)
        {
            if let Some(old) = ring.changes.pop_front() {
                ring.bytes -= old.size();
                ring.first += 1;
            }
        }
        let next = ring.first + ring.changes.len() as u64;
        drop(ring);
        self.next.send_replace(next);
    }

    /// A cursor at the end of the feed: the watcher sees what comes next.
    pub(crate) fn subscribe(self: &Arc<Self>) -> Cursor {
        Cursor {
            feed: self.clone(),
            at: *self.next.borrow(),
            next: self.next.subscribe(),
        }
    }
}

/// One watcher's position in the feed.
#[derive(Debug)]
pub(crate) struct Cursor {
    feed: Arc<Feed>,
    at: u64,
    next: watch::Receiver<u64>,
}

impl Cursor {
    /// The next change, waiting for one; `Err` when this watcher fell
    /// behind the ring (its changes were dropped).
    pub(crate) async fn next(&mut self) -> Result<Arc<Change>, Lagged> {
        loop {
            {
                let ring = self
                    .feed
                    .ring
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if self.at < ring.first {
                    return Err(Lagged(ring.first - self.at));
                }
                if let Some(c) = ring.changes.get((self.at - ring.first) as usize) {
                    self.at += 1;
                    return Ok(c.clone());
                }
            }
            // The sender lives in the feed this cursor holds: never closed.
            let at = self.at;
            if self.next.wait_for(|n| *n > at).await.is_err() {
                return Err(Lagged(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;
    use vergent_types::{NodeId, Version};

    use super::*;

    fn change(i: u64, value_len: usize) -> Change {
        Change {
            key: format!("k{i}").into_bytes(),
            record: Record::value(
                Version::new(Timestamp::from_u64(i), NodeId::new("n").expect("id")),
                vec![0; value_len],
                None,
            ),
            local: true,
        }
    }

    #[tokio::test]
    async fn a_watcher_sees_every_change_in_order() {
        let feed = Arc::new(Feed::new(16, 1 << 20));
        let mut c = feed.subscribe();
        for i in 0..10 {
            feed.publish(change(i, 1));
        }
        for i in 0..10 {
            let got = c.next().await.expect("in the ring");
            assert_eq!(got.key, format!("k{i}").into_bytes());
        }
    }

    #[tokio::test]
    async fn a_stalled_watcher_is_dropped_and_memory_stays_bounded_by_bytes() {
        let feed = Arc::new(Feed::new(1_000, 100 << 10));
        let mut stalled = feed.subscribe();
        for i in 0..100 {
            feed.publish(change(i, 10 << 10));
        }
        let held = feed.ring.lock().expect("lock").bytes;
        assert!(held <= 100 << 10, "{held} bytes held");
        assert!(matches!(stalled.next().await, Err(Lagged(n)) if n > 0));
    }

    #[tokio::test]
    async fn a_watcher_waits_for_the_next_change() {
        let feed = Arc::new(Feed::new(16, 1 << 20));
        let mut c = feed.subscribe();
        let f = feed.clone();
        let later = tokio::spawn(async move {
            tokio::task::yield_now().await;
            f.publish(change(7, 1));
        });
        let got = c.next().await.expect("published");
        assert_eq!(got.key, b"k7".to_vec());
        later.await.expect("publisher");
    }
}
