//! How much of this node's write log each peer has acknowledged as durable:
//! filled by the replication senders (peer layer), read by writes at
//! `quorum` and `all`, which wait on it instead of sending the data twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// Refused entries remembered per peer; the oldest are forgotten first
/// (a write waits seconds at most, so only recent positions matter).
const REFUSED_KEPT: usize = 4096;

/// Each peer's acknowledged position in the local write log, by node id,
/// and the entries it acknowledged without storing them.
#[derive(Debug)]
pub(crate) struct LogAcks {
    acked: Mutex<HashMap<String, u64>>,
    refused: Mutex<HashMap<String, BTreeSet<u64>>>,
    /// Bumped on every change, so waiters re-check without polling.
    changed: watch::Sender<u64>,
}

impl Default for LogAcks {
    fn default() -> Self {
        Self {
            acked: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            changed: watch::Sender::new(0),
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
        let moved = {
            let mut acked = self.acked.lock().unwrap_or_else(PoisonError::into_inner);
            // Every replication ack lands here: allocate the peer's name once.
            match acked.get_mut(peer) {
                Some(at) => std::mem::replace(at, up_to) != up_to,
                None => {
                    acked.insert(peer.to_string(), up_to);
                    true
                }
            }
        };
        if moved {
            self.changed.send_modify(|n| *n = n.wrapping_add(1));
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

    /// Changes whenever an acknowledgement moves.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_is_set_not_raised_so_a_wiped_peer_counts_again_from_zero() {
        let acks = LogAcks::default();
        let mut rx = acks.subscribe();
        assert!(!acks.holds("b", 1));
        acks.record("b", 10);
        assert!(acks.holds("b", 10));
        assert!(!acks.holds("b", 11));
        assert!(rx.has_changed().expect("open"));
        rx.mark_unchanged();
        acks.record("b", 10);
        assert!(!rx.has_changed().expect("open"), "no move, no wake-up");
        acks.record("b", 3);
        assert!(!acks.holds("b", 10), "a wiped store's new session");
        assert!(rx.has_changed().expect("open"));
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
