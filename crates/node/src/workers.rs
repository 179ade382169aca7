//! Named background tasks, as Garage's workers: each runs in a span that
//! names it (so a log line says which worker did what), and a registry
//! records whether it runs, returned or panicked, which `status` lists.
//! Depends only on the status snapshots.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::status::{WorkerState, WorkerStatus};

/// The registry of this node's background tasks; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Workers {
    rows: Arc<Mutex<Rows>>,
}

/// Each name's latest run: which spawn it was, its state and since when.
#[derive(Debug, Default)]
struct Rows {
    next_run: u64,
    by_name: BTreeMap<String, Row>,
}

#[derive(Debug)]
struct Row {
    run: u64,
    state: WorkerState,
    since_ms: u64,
}

impl Workers {
    /// Spawns `task` as the worker `name`, in a `worker{name=…}` span, and
    /// records its end: a return is `stopped`, a panic `failed` with its
    /// message. A name spawned again (a per-peer worker that restarts)
    /// replaces the earlier row. The handle stops it (listed `stopped`).
    pub(crate) fn spawn<F>(&self, name: impl Into<String>, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let run = {
            let mut rows = self.lock();
            let run = rows.next_run;
            rows.next_run += 1;
            rows.by_name.insert(
                name.clone(),
                Row {
                    run,
                    state: WorkerState::Running,
                    since_ms: crate::clock::wall_ms(),
                },
            );
            run
        };
        let span = tracing::info_span!("worker", name = %name);
        let handle = tokio::spawn(task.instrument(span));
        let abort = handle.abort_handle();
        let rows = self.clone();
        tokio::spawn(async move {
            let state = match handle.await {
                Ok(()) => WorkerState::Stopped,
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panicked".to_string());
                    tracing::error!(worker = %name, "worker panicked: {text}");
                    WorkerState::Failed(text)
                }
                // Cancelled: the runtime is shutting down.
                Err(_) => WorkerState::Stopped,
            };
            // A worker stopped to be replaced (a sender restarted for a
            // member's new address) must not mark its successor stopped.
            if let Some(row) = rows.lock().by_name.get_mut(&name)
                && row.run == run
            {
                row.state = state;
                row.since_ms = crate::clock::wall_ms();
            }
        });
        abort
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every worker ever spawned, by name.
    pub(crate) fn snapshot(&self) -> Vec<WorkerStatus> {
        self.lock()
            .by_name
            .iter()
            .map(|(name, row)| WorkerStatus {
                name: name.clone(),
                state: row.state.clone(),
                since_ms: row.since_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn until(workers: &Workers, name: &str, want: impl Fn(&WorkerState) -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let row = workers.snapshot().into_iter().find(|w| w.name == name);
            if row.as_ref().is_some_and(|w| want(&w.state)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker {name} never reached the wanted state: {row:?}"
            );
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_worker_is_listed_running_then_stopped_when_it_returns() {
        let workers = Workers::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        workers.spawn("waits", async move {
            let _ = rx.await;
        });
        let rows = workers.snapshot();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, WorkerState::Running);
        tx.send(()).expect("worker waits");
        until(&workers, "waits", |s| *s == WorkerState::Stopped).await;
    }

    #[tokio::test]
    async fn a_worker_replaced_under_its_name_does_not_mark_its_successor_stopped() {
        let workers = Workers::default();
        let first = workers.spawn("sender:n1", std::future::pending());
        first.abort();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        workers.spawn("sender:n1", async move {
            let _ = rx.await;
        });
        // Let the first run's end be recorded, then check the row is the
        // second run's.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let rows = workers.snapshot();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, WorkerState::Running, "{rows:?}");
        tx.send(()).expect("second run waits");
        until(&workers, "sender:n1", |s| *s == WorkerState::Stopped).await;
    }

    #[tokio::test]
    async fn a_panicking_worker_is_listed_failed_with_its_message() {
        let workers = Workers::default();
        workers.spawn("breaks", async { panic!("disk on fire") });
        until(
            &workers,
            "breaks",
            |s| matches!(s, WorkerState::Failed(m) if m == "disk on fire"),
        )
        .await;
    }
}
