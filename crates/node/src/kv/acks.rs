//! How much of this node's write log each peer has acknowledged as durable:
//! filled by the replication senders (peer layer), read by writes at
//! `quorum` and `all`, which wait on it instead of sending the data twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Refused entries remembered per peer; the oldest are forgotten first
/// (a write waits seconds at most, so only recent positions matter).
const REFUSED_KEPT: usize = 4096;

/// Each peer's acknowledged position in the local write log, by node id,
/// and the entries it acknowledged without storing them.
#[derive(Debug, Default)]
pub(crate) struct LogAcks {
    acked: Mutex<HashMap<String, u64>>,
    refused: Mutex<HashMap<String, BTreeSet<u64>>>,
    /// Writes waiting for acknowledgements, by their log entry: an ack wakes
    /// only the writes whose entry it newly covers, not every waiter (64
    /// clients' writes each woken by every ack cost more than the writes).
    waiting: Mutex<BTreeMap<u64, Vec<Arc<Notify>>>>,
}

/// A write's registration for wake-ups (see [`LogAcks::watch`]);
/// unregisters when dropped.
pub(crate) struct AckWatch<'a> {
    acks: &'a LogAcks,
    seq: u64,
    notify: Arc<Notify>,
}

impl AckWatch<'_> {
    /// Returns once an acknowledgement newly covered the entry (at once if
    /// one did since the last call).
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for AckWatch<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .acks
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = waiting.get_mut(&self.seq) {
            list.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if list.is_empty() {
                waiting.remove(&self.seq);
            }
        }
    }
}

impl LogAcks {
    /// `peer` holds this node's log up to `up_to`.
    ///
    /// Set, not raised: a new session with a peer whose store was wiped
    /// starts again from what that store acknowledged, and a write must not
    /// count a copy that is gone.
    pub(crate) fn record(&self, peer: &str, up_to: u64) {
        let before = {
            let mut acked = self.acked.lock().unwrap_or_else(PoisonError::into_inner);
            // Every replication ack lands here: allocate the peer's name once.
            match acked.get_mut(peer) {
                Some(at) => std::mem::replace(at, up_to),
                None => {
                    acked.insert(peer.to_string(), up_to);
                    0
                }
            }
        };
        // Only a move up makes a write newly held; a move down (a wiped
        // peer's new session) only takes copies away.
        if up_to > before {
            let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            for list in waiting.range(before + 1..=up_to).map(|(_, l)| l) {
                for n in list {
                    n.notify_one();
                }
            }
        }
    }

    /// `peer` acknowledged these entries without storing them (refused
    /// for size or clock, or too old): it never counts as holding them.
    pub(crate) fn record_refused(&self, peer: &str, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        let set = refused.entry(peer.to_string()).or_default();
        set.extend(seqs.iter().copied());
        while set.len() > REFUSED_KEPT {
            set.pop_first();
        }
    }

    /// Whether `peer` holds this node's log entry `seq` durably (or
    /// something newer of its key, which last-writer-wins keeps instead).
    pub(crate) fn holds(&self, peer: &str, seq: u64) -> bool {
        let acked = self
            .acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .copied()
            .unwrap_or(0);
        acked >= seq
            && !self
                .refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(peer)
                .is_some_and(|s| s.contains(&seq))
    }

    /// Registers for a wake-up whenever a peer's acknowledgement newly
    /// covers entry `seq`; check [`Self::holds`] after registering, so no
    /// acknowledgement in between is missed.
    pub(crate) fn watch(&self, seq: u64) -> AckWatch<'_> {
        let notify = Arc::new(Notify::new());
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(seq)
            .or_default()
            .push(notify.clone());
        AckWatch {
            acks: self,
            seq,
            notify,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn an_ack_is_set_not_raised_so_a_wiped_peer_counts_again_from_zero() {
        let acks = LogAcks::default();
        assert!(!acks.holds("b", 1));
        acks.record("b", 10);
        assert!(acks.holds("b", 10));
        assert!(!acks.holds("b", 11));
        acks.record("b", 3);
        assert!(!acks.holds("b", 10), "a wiped store's new session");
    }

    /// Whether `w` was woken (a stored wake-up is taken).
    fn woken(w: &AckWatch<'_>) -> bool {
        let mut f = std::pin::pin!(w.changed());
        let waker = std::task::Waker::noop();
        f.as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready()
    }

    #[test]
    fn an_ack_wakes_only_the_writes_whose_entries_it_newly_covers() {
        let acks = LogAcks::default();
        acks.record("b", 4);
        let (w5, w9) = (acks.watch(5), acks.watch(9));
        acks.record("b", 6);
        assert!(woken(&w5) && !woken(&w9), "6 covers 5, not 9");
        acks.record("c", 9);
        assert!(woken(&w5) && woken(&w9), "a first ack from c covers both");
        acks.record("b", 6);
        acks.record("b", 2);
        assert!(!woken(&w5) && !woken(&w9), "no move up, no wake-up");
        drop(w9);
        assert!(
            !acks.waiting.lock().expect("lock").contains_key(&9),
            "unregistered"
        );
    }

    #[test]
    fn an_entry_acknowledged_but_refused_is_never_held() {
        let acks = LogAcks::default();
        acks.record_refused("b", &[7]);
        acks.record("b", 9);
        assert!(acks.holds("b", 6));
        assert!(!acks.holds("b", 7), "refused for its size or clock");
        assert!(acks.holds("b", 8));
        assert!(!acks.holds("c", 7), "another peer acknowledged nothing");
        let many: Vec<u64> = (100..100 + REFUSED_KEPT as u64 + 10).collect();
        acks.record_refused("b", &many);
        acks.record("b", 1 << 20);
        assert!(
            acks.holds("b", 7),
            "the oldest refusals are forgotten first"
        );
        assert!(!acks.holds("b", 100 + REFUSED_KEPT as u64));
    }
}
