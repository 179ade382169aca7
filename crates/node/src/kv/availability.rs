//! Whether the local service may answer: the one place that knows a node is
//! still bootstrapping or has been fenced by its peers.
//!
//! The repair driver reports bootstrap progress and the peer protocols
//! report a fence here; the local service, readiness and `status` read it.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::KvError;

/// What stops this node from serving, if anything.
#[derive(Debug)]
pub(crate) struct Availability {
    /// True until a node that started empty completes a session with a
    /// serving peer (or its cluster is found to be forming).
    bootstrapping: watch::Sender<bool>,
    /// Differing buckets of the current bootstrap session, and how many of
    /// them are settled.
    progress: (AtomicU64, AtomicU64),
    /// Set once a peer refuses this node's data for good.
    fenced: watch::Sender<Option<String>>,
}

impl Availability {
    /// Serving unless `bootstrapping`.
    pub(crate) fn new(bootstrapping: bool) -> Self {
        Self {
            bootstrapping: watch::Sender::new(bootstrapping),
            progress: (AtomicU64::new(0), AtomicU64::new(0)),
            fenced: watch::Sender::new(None),
        }
    }

    /// Whether the node is still filling from its peers.
    pub(crate) fn bootstrapping(&self) -> bool {
        *self.bootstrapping.borrow()
    }

    /// Changes of [`Self::bootstrapping`], for readiness.
    pub(crate) fn watch_bootstrapping(&self) -> watch::Receiver<bool> {
        self.bootstrapping.subscribe()
    }

    /// Bootstrap is over: reads are answered from now on.
    pub(crate) fn end_bootstrap(&self) {
        self.bootstrapping.send_replace(false);
    }

    /// The current bootstrap session has settled `done` of the `total`
    /// differing buckets it found.
    pub(crate) fn set_bootstrap_progress(&self, done: u64, total: u64) {
        self.progress.0.store(total, Ordering::Relaxed);
        self.progress.1.store(done, Ordering::Relaxed);
    }

    /// `(done, total)` buckets while bootstrapping, `None` once serving.
    pub(crate) fn bootstrap_progress(&self) -> Option<(u64, u64)> {
        self.bootstrapping().then(|| {
            (
                self.progress.1.load(Ordering::Relaxed),
                self.progress.0.load(Ordering::Relaxed),
            )
        })
    }

    /// Records that a peer refuses this node's data for good; the node stops
    /// serving reads and writes (and says why) until it is wiped.
    pub(crate) fn fence(&self, reason: &str) {
        let first = self.fenced.send_if_modified(|f| {
            let fresh = f.is_none();
            if fresh {
                *f = Some(reason.to_string());
            }
            fresh
        });
        if first {
            tracing::error!(
                reason,
                "peers refuse this node's data for good; it stops serving. Wipe its data dir and restart it: it rebuilds from its peers"
            );
        }
    }

    /// Why the node was fenced, if it was.
    pub(crate) fn fenced(&self) -> Option<String> {
        self.fenced.borrow().clone()
    }

    /// Changes of [`Self::fenced`], for readiness.
    pub(crate) fn watch_fenced(&self) -> watch::Receiver<Option<String>> {
        self.fenced.subscribe()
    }

    /// `Ok` when writes may be taken.
    pub(crate) fn check_writable(&self) -> Result<(), KvError> {
        match self.fenced.borrow().as_ref() {
            Some(why) => Err(KvError::Fenced(why.clone())),
            None => Ok(()),
        }
    }

    /// `Ok` when reads may be answered: an empty answer from a store still
    /// filling from its peers would be wrong, not stale.
    pub(crate) fn check_readable(&self) -> Result<(), KvError> {
        self.check_writable()?;
        match self.bootstrap_progress() {
            Some((done, total)) => Err(KvError::Bootstrapping { done, total }),
            None => Ok(()),
        }
    }

    /// `serving`, `bootstrapping` or `fenced`, as `status` shows it.
    pub(crate) fn state(&self) -> &'static str {
        if self.fenced.borrow().is_some() {
            "fenced"
        } else if self.bootstrapping() {
            "bootstrapping"
        } else {
            "serving"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrapping_node_refuses_reads_with_its_progress_but_takes_writes() {
        let a = Availability::new(true);
        a.set_bootstrap_progress(1, 8);
        assert!(matches!(
            a.check_readable(),
            Err(KvError::Bootstrapping { done: 1, total: 8 })
        ));
        assert!(a.check_writable().is_ok());
        assert_eq!(a.state(), "bootstrapping");
        a.end_bootstrap();
        assert!(a.check_readable().is_ok());
        assert_eq!(a.state(), "serving");
    }

    #[test]
    fn a_fenced_node_refuses_everything_and_keeps_the_first_reason() {
        let a = Availability::new(false);
        a.fence("expired");
        a.fence("another reason");
        assert!(matches!(a.check_writable(), Err(KvError::Fenced(r)) if r == "expired"));
        assert!(matches!(a.check_readable(), Err(KvError::Fenced(_))));
        assert_eq!(a.state(), "fenced");
    }
}
