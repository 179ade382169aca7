//! The strong workload: concurrent clients doing SERIAL reads, strong puts
//! and deletes and compare-and-sets on a few hot keys, recording every
//! invocation and completion for the linearizability check. The mixed
//! workload is the same clients with a third of their operations turned
//! into eventual puts and deletes at `one`, `quorum` and `all` on the same keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vergent_chaos::history::{Level, Outcome};
use vergent_chaos::strong::{StrongEvent, StrongOp};
use vergent_client::{Client, Consistency, Error, ErrorCode, Expect, PutOptions};

use crate::workload::{Gate, Pace, stamp};

/// The shared, append-only strong history.
#[derive(Clone)]
pub(crate) struct StrongRecorder {
    events: Arc<Mutex<Vec<StrongEvent>>>,
    /// Zero of every event's `at_us`.
    start: Instant,
}

impl StrongRecorder {
    /// An empty history whose clock starts now.
    pub(crate) fn new() -> Self {
        Self {
            events: Arc::default(),
            start: Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn push(&self, mut e: StrongEvent) {
        // Stamped under the lock, so the log is in time order.
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        e.at_us = self.now_us();
        events.push(e);
    }

    /// Everything recorded so far.
    pub(crate) fn snapshot(&self) -> Vec<StrongEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The strong workload's keys: `s0`… (kept apart from the eventual keys).
pub(crate) fn key(i: u32) -> String {
    format!("s{i}")
}

/// Whether `key` belongs to the strong workload (the eventual one uses `k…`).
pub(crate) fn is_strong_key(key: &str) -> bool {
    key.starts_with('s')
}

/// Whether an error means the operation certainly did not take effect, as
/// the API documents: never sent (no connection), too few voters (nothing
/// sent to them), contention (superseded before any accept), clock skew
/// (nothing proposed), no configuration, or a refusal before the node
/// started (bootstrapping, fenced). Everything else may have applied, a
/// connection lost during the call included.
pub(crate) fn definite(e: &Error) -> bool {
    e.is_not_sent()
        || matches!(
            e.code(),
            Some(
                ErrorCode::NotEnoughVoters
                    | ErrorCode::Contention
                    | ErrorCode::ClockSkew
                    | ErrorCode::NoVotingConfig
                    | ErrorCode::Bootstrapping
                    | ErrorCode::Fenced
            )
        )
}

/// Whether an eventual write's error means it certainly did not take
/// effect: as [`definite`], less contention, skew and configuration answers,
/// which only strong rounds give; a level write refused for too few voters
/// wrote nothing.
fn eventual_definite(e: &Error) -> bool {
    e.is_not_sent()
        || matches!(
            e.code(),
            Some(ErrorCode::NotEnoughVoters | ErrorCode::Bootstrapping | ErrorCode::Fenced)
        )
}

/// The level of an eventual write: `one` 40%, `quorum` 45%, `all` 15%.
fn eventual_level(rng: &mut StdRng) -> Option<Level> {
    match rng.random_range(0..100) {
        0..40 => None,
        40..85 => Some(Level::Quorum),
        _ => Some(Level::All),
    }
}

fn consistency(level: Option<Level>) -> Consistency {
    match level {
        None => Consistency::One,
        Some(Level::Quorum) => Consistency::Quorum,
        Some(Level::All) => Consistency::All,
    }
}

/// One strong client process: bound to one node, one operation in flight;
/// with `mixed`, a third of its operations are eventual writes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn client(
    process: u32,
    node: String,
    client: Client,
    gate: Gate,
    keys: u32,
    rate: u32,
    seed: u64,
    mixed: bool,
    history: StrongRecorder,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(process) << 32) ^ 0x5e41);
    let pace = Pace::new(rate);
    // What this client last saw in each key: CAS expects it, so many apply.
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut seq = 0u64;
    while !stop.is_cancelled() {
        seq += 1;
        let k = key(rng.random_range(0..keys.max(1)));
        let fresh = format!("p{process}-{seq}");
        let roll = rng.random_range(0..100);
        let mut level = None;
        let (f, expect, value) = match roll {
            _ if mixed && roll % 3 == 0 => {
                level = eventual_level(&mut rng);
                if rng.random_range(0..5) == 0 {
                    (StrongOp::EventualDelete, None, None)
                } else {
                    (
                        StrongOp::EventualPut,
                        None,
                        Some(format!("e{process}-{seq}")),
                    )
                }
            }
            0..35 => (StrongOp::Read, None, None),
            35..70 => (
                StrongOp::Cas,
                seen.get(&k).cloned().flatten(),
                Some(fresh.clone()),
            ),
            // A guess that is usually stale: exercises "not applied".
            70..80 => (
                StrongOp::Cas,
                Some(format!("p{}-{}", rng.random_range(0..8), seq / 2)),
                Some(fresh.clone()),
            ),
            80..85 => (StrongOp::Cas, seen.get(&k).cloned().flatten(), None),
            85..95 => (StrongOp::Write, None, Some(fresh.clone())),
            _ => (StrongOp::Delete, None, None),
        };
        let event = |outcome, value: Option<String>, applied, version, error| StrongEvent {
            process,
            outcome,
            f,
            node: node.clone(),
            key: k.clone(),
            expect: expect.clone(),
            value,
            applied,
            version,
            at_us: 0,
            error,
            level,
        };
        let open = gate.read().await;
        history.push(event(Outcome::Invoke, value.clone(), None, None, None));
        let failed = |e: Error| {
            let sure = if f.is_eventual() {
                eventual_definite(&e)
            } else {
                definite(&e)
            };
            let outcome = if sure || f == StrongOp::Read {
                // A read changes nothing: failed or unknown, it is dropped.
                Outcome::Fail
            } else {
                Outcome::Info
            };
            (outcome, e.to_string())
        };
        let done = match f {
            StrongOp::Read => match client.get_with(k.clone(), Some(Consistency::Serial)).await {
                Ok(entry) => {
                    let v = entry
                        .as_ref()
                        .map(|e| String::from_utf8_lossy(&e.value).into_owned());
                    seen.insert(k.clone(), v.clone());
                    event(
                        Outcome::Ok,
                        v,
                        None,
                        entry.as_ref().map(|e| stamp(&e.version)),
                        None,
                    )
                }
                Err(e) => {
                    let (o, msg) = failed(e);
                    event(o, None, None, None, Some(msg))
                }
            },
            StrongOp::Write => {
                let options = PutOptions {
                    consistency: Some(Consistency::Serial),
                    ..PutOptions::default()
                };
                match client.put_with(k.clone(), fresh.clone(), options).await {
                    Ok(v) => {
                        seen.insert(k.clone(), Some(fresh.clone()));
                        event(Outcome::Ok, value.clone(), None, Some(stamp(&v)), None)
                    }
                    Err(e) => {
                        let (o, msg) = failed(e);
                        event(o, value.clone(), None, None, Some(msg))
                    }
                }
            }
            StrongOp::Delete | StrongOp::EventualDelete => {
                // The same call either way: only the level differs.
                let at = if f == StrongOp::Delete {
                    Consistency::Serial
                } else {
                    consistency(level)
                };
                match client.delete_with(k.clone(), Some(at)).await {
                    Ok(d) => {
                        seen.insert(k.clone(), None);
                        event(Outcome::Ok, None, None, Some(stamp(&d.version)), None)
                    }
                    Err(e) => {
                        let (o, msg) = failed(e);
                        event(o, None, None, None, Some(msg))
                    }
                }
            }
            StrongOp::EventualPut => {
                let options = PutOptions {
                    consistency: Some(consistency(level)),
                    ..PutOptions::default()
                };
                let written = value.clone().unwrap_or_default();
                match client.put_with(k.clone(), written.clone(), options).await {
                    Ok(v) => {
                        seen.insert(k.clone(), Some(written));
                        event(Outcome::Ok, value.clone(), None, Some(stamp(&v)), None)
                    }
                    Err(e) => {
                        let (o, msg) = failed(e);
                        event(o, value.clone(), None, None, Some(msg))
                    }
                }
            }
            StrongOp::Cas => {
                let condition = match &expect {
                    Some(v) => Expect::Value(v.clone().into_bytes()),
                    None => Expect::Absent,
                };
                match client
                    .compare_and_set(k.clone(), condition, value.clone().map(String::into_bytes))
                    .await
                {
                    Ok(r) => {
                        let now = r
                            .value
                            .as_ref()
                            .map(|v| String::from_utf8_lossy(v).into_owned());
                        seen.insert(k.clone(), now.clone());
                        let shown = if r.applied { value.clone() } else { now };
                        event(
                            Outcome::Ok,
                            shown,
                            Some(r.applied),
                            r.version.as_ref().map(stamp),
                            None,
                        )
                    }
                    Err(e) => {
                        seen.remove(&k);
                        let (o, msg) = failed(e);
                        event(o, value.clone(), None, None, Some(msg))
                    }
                }
            }
        };
        history.push(done);
        drop(open);
        // Also keeps the search for a linearization small.
        pace.wait(&mut rng).await;
    }
}

/// After healing: one SERIAL read of every strong key, recorded in the
/// history (as process `process`) so the check covers the final state.
/// Retried until `deadline`: a read that does not answer changes nothing.
pub(crate) async fn final_reads(
    client: &Client,
    node: &str,
    keys: u32,
    process: u32,
    history: &StrongRecorder,
    deadline: std::time::Instant,
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for i in 0..keys {
        let k = key(i);
        loop {
            let event = |outcome, value, version, error| StrongEvent {
                process,
                outcome,
                f: StrongOp::Read,
                node: node.to_string(),
                key: k.clone(),
                expect: None,
                value,
                applied: None,
                version,
                at_us: 0,
                error,
                level: None,
            };
            history.push(event(Outcome::Invoke, None, None, None));
            match client.get_with(k.clone(), Some(Consistency::Serial)).await {
                Ok(entry) => {
                    let version = entry.as_ref().map(|e| stamp(&e.version));
                    let v = entry.map(|e| String::from_utf8_lossy(&e.value).into_owned());
                    history.push(event(Outcome::Ok, v.clone(), version, None));
                    out.insert(k.clone(), v);
                    break;
                }
                Err(e) => {
                    history.push(event(Outcome::Fail, None, None, Some(e.to_string())));
                    anyhow::ensure!(
                        std::time::Instant::now() < deadline,
                        "read {k} at SERIAL after healing: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok(out)
}
