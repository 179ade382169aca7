//! The piggyback queue: updates waiting to be disseminated, each sent a
//! bounded number of times, least-sent and newest first.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use vergent_types::NodeId;

use crate::message::Update;

/// Queue position: fewest transmissions first, then newest first.
type Key = (u32, Reverse<u64>);

/// Holds at most one pending update per member; a newer update about the same
/// member replaces the older one (memberlist's `TransmitLimitedQueue`).
#[derive(Debug, Default)]
pub(crate) struct Broadcasts {
    queue: BTreeMap<Key, Update>,
    by_id: BTreeMap<NodeId, Key>,
    next: u64,
}

impl Broadcasts {
    /// Queues `update` with zero transmissions, replacing any update about
    /// the same member.
    pub(crate) fn push(&mut self, update: Update) {
        self.remove(&update.id);
        let key = (0, Reverse(self.next));
        self.next += 1;
        self.by_id.insert(update.id.clone(), key);
        self.queue.insert(key, update);
    }

    /// Drops the pending update about `id`, if any.
    pub(crate) fn remove(&mut self, id: &NodeId) {
        if let Some(key) = self.by_id.remove(id) {
            self.queue.remove(&key);
        }
    }

    /// Whether nothing is waiting to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The pending update about `id`, if any.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &NodeId) -> Option<&Update> {
        self.by_id.get(id).and_then(|k| self.queue.get(k))
    }

    /// Takes up to `max` updates for one message, skipping those about
    /// `except` (already included by the caller), and counts a transmission
    /// for each; an update sent `limit` times leaves the queue.
    pub(crate) fn take(&mut self, max: usize, limit: u32, except: &[NodeId]) -> Vec<Update> {
        let keys: Vec<Key> = self
            .queue
            .iter()
            .filter(|(_, u)| !except.contains(&u.id))
            .take(max)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let update = self.queue.remove(&key).expect("key was just listed");
            let sent = key.0 + 1;
            if sent < limit {
                let requeued = (sent, key.1);
                self.by_id.insert(update.id.clone(), requeued);
                self.queue.insert(requeued, update.clone());
            } else {
                self.by_id.remove(&update.id);
            }
            out.push(update);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::State;

    fn upd(id: &str, inc: u64) -> Update {
        let id = NodeId::new(id).expect("valid id");
        Update {
            id: id.clone(),
            addr: format!("{id}:1"),
            incarnation: inc,
            state: State::Alive,
            from: id,
        }
    }

    #[test]
    fn least_sent_newest_first_and_each_update_sent_at_most_limit_times() {
        let mut q = Broadcasts::default();
        q.push(upd("a", 0));
        q.push(upd("b", 0));
        let first = q.take(1, 2, &[]);
        assert_eq!(first[0].id.as_str(), "b", "newest first");
        let second = q.take(1, 2, &[]);
        assert_eq!(second[0].id.as_str(), "a", "then the least sent");
        let both = q.take(5, 2, &[]);
        assert_eq!(both.len(), 2);
        assert!(q.is_empty(), "each was sent twice");
    }

    #[test]
    fn a_newer_update_replaces_the_pending_one_and_resets_its_count() {
        let mut q = Broadcasts::default();
        q.push(upd("a", 0));
        q.take(1, 3, &[]);
        q.push(upd("a", 1));
        assert_eq!(q.get(&upd("a", 0).id).map(|u| u.incarnation), Some(1));
        let all = q.take(10, 3, &[]);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].incarnation, 1);
        assert!(q.take(10, 3, &[upd("a", 0).id]).is_empty());
    }
}
