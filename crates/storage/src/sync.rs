//! Group commit: many writers share one WAL fsync.
//!
//! Each writer writes its batch without syncing, takes a ticket, and waits
//! until a sync that started after its write has finished. One waiter becomes
//! the leader and syncs for everyone whose write completed before it began, so
//! under concurrency the cost of an fsync is spread over many writes.

use std::sync::{Condvar, Mutex, PoisonError};

#[derive(Default)]
struct State {
    /// Tickets handed out: one per completed (unsynced) write.
    written: u64,
    /// Every ticket at or below this is durable.
    synced: u64,
    /// A leader is syncing right now.
    syncing: bool,
    /// The first failed sync's error: reported to every writer from then on.
    last_error: Option<String>,
}

/// Coordinates writers waiting for a shared fsync.
#[derive(Default)]
pub(crate) struct GroupSync {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupSync {
    /// Records that a write completed; returns its ticket.
    pub(crate) fn ticket(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.written += 1;
        s.written
    }

    /// The ticket of the last write recorded.
    pub(crate) fn written(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .written
    }

    /// Every ticket at or below this is durable.
    pub(crate) fn synced(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .synced
    }

    /// Blocks until the write with `ticket` is durable, running `sync` as the
    /// leader when no other sync is in flight.
    pub(crate) fn wait(
        &self,
        ticket: u64,
        mut sync: impl FnMut() -> Result<(), String>,
    ) -> Result<(), String> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.synced >= ticket {
                return Ok(());
            }
            // A failed sync latches: what it covered may be lost from the
            // page cache, and a later sync that succeeds proves nothing
            // about writes made while it failed (the kernel reports a
            // writeback error once), so no later writer is acknowledged.
            if let Some(e) = &s.last_error {
                return Err(e.clone());
            }
            if s.syncing {
                s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.syncing = true;
            let target = s.written;
            drop(s);
            let result = sync();
            s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.syncing = false;
            match result {
                Ok(()) => s.synced = s.synced.max(target),
                Err(e) => {
                    s.last_error.get_or_insert(e);
                }
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn every_writer_returns_only_after_a_sync_covering_its_ticket() {
        let gs = Arc::new(GroupSync::default());
        let syncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let gs = gs.clone();
                let syncs = syncs.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let t = gs.ticket();
                        gs.wait(t, || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .expect("sync succeeds");
                        let s = gs.state.lock().expect("not poisoned");
                        assert!(s.synced >= t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        assert!(syncs.load(Ordering::SeqCst) <= 800);
    }

    #[test]
    fn a_failed_sync_is_reported_to_the_writers_it_covered() {
        let gs = GroupSync::default();
        let t = gs.ticket();
        assert_eq!(gs.wait(t, || Err("EIO".into())), Err("EIO".into()));
    }

    #[test]
    fn after_a_failed_sync_no_later_writer_is_acknowledged_by_a_retried_sync() {
        // A write that landed in the page cache while the failed fsync ran
        // may have been dropped with it; a second fsync succeeding proves
        // nothing about it (the kernel cleared the error), so the failure
        // latches: every later wait fails without syncing again.
        let gs = GroupSync::default();
        let t1 = gs.ticket();
        let t2 = gs.ticket();
        assert_eq!(gs.wait(t1, || Err("EIO".into())), Err("EIO".into()));
        let t3 = gs.ticket();
        let mut retried = false;
        for t in [t2, t3] {
            let r = gs.wait(t, || {
                retried = true;
                Ok(())
            });
            assert_eq!(r, Err("EIO".into()), "ticket {t}");
        }
        assert!(!retried, "no sync is attempted after a failure");
    }
}
