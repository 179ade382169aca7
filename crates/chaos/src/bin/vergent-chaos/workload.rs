//! Concurrent clients doing puts, gets and deletes on a bounded key space with
//! unique values, recording every invocation and completion.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use vergent_chaos::history::{Event, Level, Op, Outcome, Stamp};
use vergent_client::{Client, Consistency, ErrorCode, PutOptions, Version};

/// The shared, append-only history.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Recorder {
    fn push(&self, e: Event) {
        // A poisoned lock means a client task panicked; keep recording.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }

    /// Everything recorded so far.
    pub(crate) fn snapshot(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Wall-clock time in ms since the Unix epoch.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A version as the history records it.
pub(crate) fn stamp(v: &Version) -> Stamp {
    Stamp {
        hlc: v.hlc.as_u64(),
        origin: v.origin.to_string(),
    }
}

/// Pacing between one client's operations, not synchronisation: a random
/// wait between half and the whole of `1 / rate`, which keeps the history a
/// readable size.
pub(crate) struct Pace(Duration);

impl Pace {
    /// `rate` operations per second (at least 1).
    pub(crate) fn new(rate: u32) -> Self {
        Self(Duration::from_micros(1_000_000 / u64::from(rate.max(1))))
    }

    /// Waits before the next operation.
    pub(crate) async fn wait(&self, rng: &mut StdRng) {
        let jitter = rng.random_range(0..=self.0.as_micros() as u64 / 2);
        tokio::time::sleep(self.0 / 2 + Duration::from_micros(jitter)).await;
    }
}

/// Lets the nemesis hold a node's clients back (see [`client`]).
pub(crate) type Gate = Arc<tokio::sync::RwLock<()>>;

/// Workload shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Keys `k000`… in use.
    pub(crate) keys: u32,
    /// Operations per second per client (paced, not a target under load).
    pub(crate) rate: u32,
    /// The level of every operation (`None`: `one`); with `Quorum`, one
    /// operation in ten asks for `all`.
    pub(crate) level: Option<Level>,
}

fn consistency(l: Level) -> Consistency {
    match l {
        Level::Quorum => Consistency::Quorum,
        Level::All => Consistency::All,
    }
}

/// How a failed write ended: refused before anything was written (too few
/// voters, nothing sent) is a failure; anything else may have applied.
fn write_failed(e: &vergent_client::Error) -> Outcome {
    if e.is_not_sent() || e.code() == Some(ErrorCode::NotEnoughVoters) {
        Outcome::Fail
    } else {
        Outcome::Info
    }
}

/// One client process: bound to one node, one operation in flight.
///
/// Each operation holds `gate` for reading: the nemesis takes it for
/// writing to stop a node's clients (before a wipe, until it has rebuilt),
/// as a load balancer drains a node that is not ready.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn client(
    process: u32,
    node: String,
    client: Client,
    gate: Gate,
    shape: Shape,
    seed: u64,
    history: Recorder,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(process) << 32));
    let pace = Pace::new(shape.rate);
    let mut seq = 0u64;
    while !stop.is_cancelled() {
        seq += 1;
        let key = format!("k{:03}", rng.random_range(0..shape.keys.max(1)));
        let roll = rng.random_range(0..100);
        let f = match roll {
            0..50 => Op::Put,
            50..85 => Op::Get,
            _ => Op::Delete,
        };
        let value = (f == Op::Put).then(|| format!("p{process}-{seq}"));
        let level = match shape.level {
            Some(Level::Quorum) if rng.random_range(0..10) == 0 => Some(Level::All),
            l => l,
        };
        let asked = level.map(consistency);
        let event = |outcome, value: Option<String>, version: Option<Stamp>, error| Event {
            process,
            outcome,
            f,
            node: node.clone(),
            key: key.clone(),
            value,
            version,
            wall_ms: wall_ms(),
            error,
            level,
        };
        let _open = gate.read().await;
        history.push(event(Outcome::Invoke, value.clone(), None, None));
        let done = match f {
            Op::Put => match client
                .put_with(
                    key.clone(),
                    value.clone().unwrap_or_default(),
                    PutOptions {
                        consistency: asked,
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(v) => event(Outcome::Ok, value, Some(stamp(&v)), None),
                // A write that errored may still have happened (a timeout, a
                // node killed after its fsync): indeterminate, unless it was
                // refused before anything was written.
                Err(e) => event(write_failed(&e), value, None, Some(e.to_string())),
            },
            Op::Delete => match client.delete_with(key.clone(), asked).await {
                Ok(d) => event(Outcome::Ok, None, Some(stamp(&d.version)), None),
                Err(e) => event(write_failed(&e), None, None, Some(e.to_string())),
            },
            Op::Get => match client.get_with(key.clone(), asked).await {
                Ok(Some(entry)) => event(
                    Outcome::Ok,
                    Some(String::from_utf8_lossy(&entry.value).into_owned()),
                    Some(stamp(&entry.version)),
                    None,
                ),
                Ok(None) => event(Outcome::Ok, None, None, None),
                // A read changes nothing, so a failed one is simply failed.
                Err(e) => event(Outcome::Fail, None, None, Some(e.to_string())),
            },
        };
        history.push(done);
        drop(_open);
        pace.wait(&mut rng).await;
    }
}
