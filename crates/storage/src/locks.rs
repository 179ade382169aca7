//! Striped per-key locks that serialise read-modify-write on the same key.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

/// A fixed array of mutexes; a key maps to one of them by hash.
///
/// The hash is process-local (never persisted or compared across nodes), so
/// std's hasher is fine here.
pub(crate) struct StripedLocks {
    stripes: Box<[Mutex<()>]>,
}

impl StripedLocks {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            stripes: (0..n.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    pub(crate) fn stripe_of(&self, key: &[u8]) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % self.stripes.len() as u64) as usize
    }

    /// Locks the stripe of one key.
    pub(crate) fn lock(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        self.lock_stripe(self.stripe_of(key))
    }

    /// Locks the stripes of many keys in ascending order, so two batches can
    /// never deadlock on each other.
    pub(crate) fn lock_many<'a>(
        &self,
        keys: impl Iterator<Item = &'a [u8]>,
    ) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys.map(|k| self.stripe_of(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| self.lock_stripe(i)).collect()
    }

    fn lock_stripe(&self, i: usize) -> MutexGuard<'_, ()> {
        // A panic while holding a stripe leaves no half-done state behind (the
        // RocksDB batch is atomic), so a poisoned lock is safe to reuse.
        self.stripes[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
