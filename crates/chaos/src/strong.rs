//! The strong and mixed workloads' history and its checks: every operation
//! is a `SERIAL` read, a strong put or delete, a compare-and-set, or (in the
//! mixed workload) an eventual put or delete at `one`, `quorum` or `all` on
//! the same keys. The history of each key must be linearizable (checked by
//! `vergent-lincheck` against Vergent's KV model), with the replicas'
//! converged final state agreeing with a final linearizable read.
//!
//! The mixing contract (docs/consistency.md) is checked as two properties:
//! an eventual write, whatever its level and outcome, may take effect at any
//! point after its invocation or never (an `ONE` write is indeterminate; an
//! acknowledged level write may still lose to a newer version by
//! last-writer-wins), which the linearizability check expresses by leaving
//! it pending; and a strong operation that starts after a write was
//! acknowledged at `quorum`/`all` observes it or something newer by version
//! ([`level_writes_observed`]).
//!
//! Outcomes follow the API's contract: an answer is `ok`; a refusal the
//! contract calls definite (not enough voters, contention, clock skew, no
//! configuration, no connection) is `fail` and dropped from the check; every
//! other error, `OUTCOME_UNKNOWN` and timeouts above all, is `info`: the
//! operation may have taken effect at any point after its invocation, or never.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use vergent_lincheck::{
    CheckOptions, Expect, History, Operation, Verdict, VergentKv, VergentKvInput, VergentKvOutput,
    VergentOp,
};

use crate::check::{Checker, Violation};
use crate::history::{Level, Outcome, ReplicaState, Stamp};

/// A strong operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrongOp {
    /// A `SERIAL` get.
    Read,
    /// A `SERIAL` put.
    Write,
    /// A `SERIAL` delete.
    Delete,
    /// A compare-and-set (its `new` value `None` deletes).
    Cas,
    /// An eventual put (mixed workload) at the event's `level`.
    #[serde(rename = "eventual-put")]
    EventualPut,
    /// An eventual delete (mixed workload) at the event's `level`.
    #[serde(rename = "eventual-delete")]
    EventualDelete,
}

impl StrongOp {
    /// Whether this is an eventual write of the mixed workload.
    pub fn is_eventual(self) -> bool {
        matches!(self, Self::EventualPut | Self::EventualDelete)
    }
}

/// One line of the strong history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrongEvent {
    /// The client (logical process); one operation in flight per process.
    pub process: u32,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub outcome: Outcome,
    /// What was asked.
    pub f: StrongOp,
    /// The node the client sent it to.
    pub node: String,
    /// The key.
    pub key: String,
    /// Cas: the value the key must hold, `None` for "must be absent".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Write and Cas: the value written (`None`: a Cas that deletes).
    /// Ok Read, and ok Cas that did not apply: the value the key held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Ok Cas: whether it applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    /// Ok: the version written or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Stamp>,
    /// Microseconds since the run started, from one monotonic clock for
    /// every client, so real-time order between operations is exact.
    pub at_us: u64,
    /// Fail/info: the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Eventual writes: the level above `one` they asked for (`None`: `one`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

/// Outcome counts per operation.
pub type Counts = BTreeMap<StrongOp, BTreeMap<&'static str, usize>>;

/// Counts ok/fail/info (and applied/not applied for Cas) per operation.
pub fn counts(events: &[StrongEvent]) -> Counts {
    let mut out = Counts::new();
    for e in events {
        let name = match (e.outcome, e.applied) {
            (Outcome::Invoke, _) => "invoked",
            (Outcome::Ok, Some(true)) => "ok (applied)",
            (Outcome::Ok, Some(false)) => "ok (not applied)",
            (Outcome::Ok, None) => "ok",
            (Outcome::Fail, _) => "fail",
            (Outcome::Info, _) => "info",
        };
        *out.entry(e.f).or_default().entry(name).or_default() += 1;
    }
    out
}

type KvOperation = Operation<VergentKvInput, VergentKvOutput>;

/// An operation with the version its answer reported: the version a
/// strong operation read or wrote, or the version an acknowledged eventual
/// write was stamped with (the write itself stays pending).
type Versioned = (KvOperation, Option<Stamp>);

fn bytes(v: &Option<String>) -> Option<Vec<u8>> {
    v.as_ref().map(|s| s.clone().into_bytes())
}

/// The input an invocation asked for.
fn input(e: &StrongEvent) -> VergentKvInput {
    let op = match e.f {
        StrongOp::Read => VergentOp::Get,
        StrongOp::Write | StrongOp::EventualPut => {
            VergentOp::Put(bytes(&e.value).unwrap_or_default())
        }
        StrongOp::Delete | StrongOp::EventualDelete => VergentOp::Delete,
        StrongOp::Cas => VergentOp::Cas {
            expect: match &e.expect {
                Some(v) => Expect::Value(v.clone().into_bytes()),
                None => Expect::Absent,
            },
            new: bytes(&e.value),
        },
    };
    VergentKvInput {
        key: e.key.clone().into_bytes(),
        op,
    }
}

/// Pairs invocations with completions into lincheck operations, and
/// reports answers that contradict themselves.
///
/// A Cas that did not apply answered with the value the key held, so it is
/// checked as a read of that value (a stronger check than "not applied"),
/// after checking that value does not match what the Cas expected.
fn operations(events: &[StrongEvent]) -> (Vec<Versioned>, Vec<Violation>) {
    let mut open: HashMap<u32, &StrongEvent> = HashMap::new();
    let mut ops = Vec::new();
    let mut bad = Vec::new();
    for e in events {
        if e.outcome == Outcome::Invoke {
            if let Some(prev) = open.insert(e.process, e) {
                // The process never completed its previous operation.
                ops.push((
                    Operation::pending(u64::from(prev.process), prev.at_us, input(prev)),
                    None,
                ));
            }
            continue;
        }
        let Some(inv) = open.remove(&e.process) else {
            continue;
        };
        let client = u64::from(inv.process);
        match e.outcome {
            Outcome::Fail => {}
            // An eventual write, even acknowledged, takes effect whenever
            // last-writer-wins lets it, or never: it stays pending.
            Outcome::Info | Outcome::Invoke | Outcome::Ok if inv.f.is_eventual() => {
                ops.push((
                    Operation::pending(client, inv.at_us, input(inv)),
                    e.version.clone(),
                ));
            }
            Outcome::Info | Outcome::Invoke => {
                ops.push((Operation::pending(client, inv.at_us, input(inv)), None));
            }
            Outcome::Ok => {
                let ret = e.at_us.max(inv.at_us);
                let (asked, answer) = match (inv.f, e.applied) {
                    (StrongOp::Read, _) => (input(inv), VergentKvOutput::Value(bytes(&e.value))),
                    (
                        StrongOp::Write
                        | StrongOp::Delete
                        | StrongOp::EventualPut
                        | StrongOp::EventualDelete,
                        _,
                    ) => (input(inv), VergentKvOutput::Done),
                    (StrongOp::Cas, Some(true)) => {
                        (input(inv), VergentKvOutput::Cas { applied: true })
                    }
                    (StrongOp::Cas, _) => {
                        if e.value == inv.expect {
                            bad.push(Violation {
                                checker: Checker::Linearizable,
                                key: Some(inv.key.clone()),
                                detail: format!(
                                    "a compare-and-set by process {} expecting {} did not apply, \
                                     yet answered that the key holds exactly that",
                                    inv.process,
                                    show(&inv.expect)
                                ),
                            });
                        }
                        let read = VergentKvInput {
                            key: inv.key.clone().into_bytes(),
                            op: VergentOp::Get,
                        };
                        (read, VergentKvOutput::Value(bytes(&e.value)))
                    }
                };
                ops.push((
                    Operation::returned(client, inv.at_us, ret, asked, answer),
                    e.version.clone(),
                ));
            }
        }
    }
    for inv in open.into_values() {
        ops.push((
            Operation::pending(u64::from(inv.process), inv.at_us, input(inv)),
            None,
        ));
    }
    // Deterministic order whatever the map's iteration did.
    ops.sort_by_key(|(o, _)| (o.call, o.client));
    (ops, bad)
}

fn show(v: &Option<String>) -> String {
    v.as_ref()
        .map_or_else(|| "absent".to_string(), |v| format!("{v:?}"))
}

/// Drops pending puts whose value no returned read reports and no
/// compare-and-set expects. Values are unique per write, so such a put can
/// only matter to the search by being linearized and then overwritten:
/// leaving it out (which "may never have applied" allows) changes no
/// verdict, and keeps the search small when the mixed workload leaves every
/// eventual write pending.
fn without_unobserved_puts(ops: Vec<Versioned>) -> Vec<Versioned> {
    let mut observed: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for (op, _) in &ops {
        if let Some(VergentKvOutput::Value(Some(v))) = &op.output {
            observed.insert(v.clone());
        }
        if let VergentOp::Cas {
            expect: Expect::Value(v),
            ..
        } = &op.input.op
        {
            observed.insert(v.clone());
        }
    }
    ops.into_iter()
        .filter(|(op, _)| {
            op.is_returned() || !matches!(&op.input.op, VergentOp::Put(v) if !observed.contains(v))
        })
        .collect()
}

/// Gives each pending write whose value a returned operation observed (a
/// read that returned it, a compare-and-set that applied expecting it) the
/// return of its first such observer at or after its call: the write took
/// effect (values are unique per write) and did so before that observer,
/// so every valid linearization already places it there. Without the bound
/// an observed pending write could float anywhere after its call, and with
/// the mixed workload leaving every eventual write pending the search
/// outgrew any budget.
fn bound_observed_writes(ops: Vec<Versioned>) -> Vec<Versioned> {
    // Value -> the returns of the operations that observed it.
    let mut seen: HashMap<Vec<u8>, Vec<u64>> = HashMap::new();
    for (op, _) in &ops {
        let (Some(ret), Some(out)) = (op.ret, &op.output) else {
            continue;
        };
        let observed = match (&op.input.op, out) {
            (_, VergentKvOutput::Value(Some(v))) => Some(v),
            (
                VergentOp::Cas {
                    expect: Expect::Value(v),
                    ..
                },
                VergentKvOutput::Cas { applied: true },
            ) => Some(v),
            _ => None,
        };
        if let Some(v) = observed {
            seen.entry(v.clone()).or_default().push(ret);
        }
    }
    ops.into_iter()
        .map(|(mut op, version)| {
            if op.is_returned() {
                return (op, version);
            }
            let (written, output) = match &op.input.op {
                VergentOp::Put(v) => (v, VergentKvOutput::Done),
                VergentOp::Cas { new: Some(v), .. } => (v, VergentKvOutput::Cas { applied: true }),
                _ => return (op, version),
            };
            let first = seen
                .get(written)
                .and_then(|rets| rets.iter().copied().filter(|r| *r >= op.call).min());
            if let Some(ret) = first {
                op.ret = Some(ret);
                op.output = Some(output);
            }
            (op, version)
        })
        .collect()
}

/// Gives each pending write whose version is known (an acknowledged
/// eventual write) a deadline: the first return, at or after its call, of
/// a strong operation that reported a greater version. That operation read
/// or wrote a record newer than the write, so by last-writer-wins the write
/// cannot take effect after it; before it, it may have or not
/// ([`Operation::unknown_until`]). Without deadlines the pending deletes of
/// the mixed workload (not unique, so never left out) stayed candidates
/// for the whole run and the search outgrew any budget.
fn superseded_by(ops: Vec<Versioned>) -> Vec<KvOperation> {
    let newer: Vec<(u64, Stamp)> = ops
        .iter()
        .filter_map(|(op, v)| Some((op.ret?, v.clone()?)))
        .collect();
    ops.into_iter()
        .map(|(op, version)| match (op.ret, version) {
            (None, Some(v)) => newer
                .iter()
                .filter(|(ret, w)| *ret >= op.call && *w > v)
                .map(|(ret, _)| *ret)
                .min()
                .map_or(op.clone(), |by| {
                    Operation::unknown_until(op.client, op.call, by, op.input.clone())
                }),
            (_, _) => op,
        })
        .collect()
}

/// Search steps allowed over all keys; running out is reported, never passed.
pub const MAX_STEPS: u64 = 50_000_000;

/// Checks that every key's strong history is linearizable, one key at a
/// time (P-compositionality), so every failing key is reported.
pub fn linearizable(events: &[StrongEvent], options: &CheckOptions) -> Vec<Violation> {
    let (ops, mut violations) = operations(events);
    let mut by_key: BTreeMap<String, Vec<Versioned>> = BTreeMap::new();
    for op in ops {
        by_key
            .entry(String::from_utf8_lossy(&op.0.input.key).into_owned())
            .or_default()
            .push(op);
    }
    for (key, ops) in by_key {
        let ops = superseded_by(bound_observed_writes(without_unobserved_puts(ops)));
        let violation = |detail| Violation {
            checker: Checker::Linearizable,
            key: Some(key.clone()),
            detail,
        };
        let history = match History::from_ops(ops) {
            Ok(h) => h,
            Err(e) => {
                violations.push(violation(format!("the recorded history is malformed: {e}")));
                continue;
            }
        };
        match vergent_lincheck::check(&VergentKv, &history, options) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable(cx) => {
                violations.push(violation(format!("no linearization exists: {cx}")));
            }
            Verdict::Unknown => violations.push(violation(format!(
                "the checker ran out of its budget ({:?} steps) before deciding; not a pass \
                 (fewer clients or more keys make the search smaller)",
                options.max_steps
            ))),
        }
    }
    violations
}

/// The mixing contract's promise to level writes: a strong operation that
/// starts after an eventual write was acknowledged at `quorum` or `all`
/// observes it or something newer. Its answer's version must be at least
/// the write's (a read, or a CAS that did not apply and reports the current
/// version) or above it (a strong write, delete or applied CAS, whose
/// version is the one it wrote). A read that finds the key absent and
/// reports no version is explained only by a delete that may have
/// superseded the write: one invoked before the read returned whose version
/// is unknown or above the write's.
pub fn level_writes_observed(events: &[StrongEvent]) -> Vec<Violation> {
    struct Done<'a> {
        inv: &'a StrongEvent,
        end: &'a StrongEvent,
    }
    let mut open: HashMap<u32, &StrongEvent> = HashMap::new();
    let mut done: Vec<Done<'_>> = Vec::new();
    // Deletes of any kind that were not refused, as (key, invoked, version).
    let mut deletes: Vec<(&str, u64, Option<&Stamp>)> = Vec::new();
    let deletes_of = |inv: &StrongEvent| {
        matches!(inv.f, StrongOp::Delete | StrongOp::EventualDelete)
            || (inv.f == StrongOp::Cas && inv.value.is_none())
    };
    for e in events {
        if e.outcome == Outcome::Invoke {
            if let Some(prev) = open.insert(e.process, e)
                && deletes_of(prev)
            {
                deletes.push((&prev.key, prev.at_us, None));
            }
            continue;
        }
        let Some(inv) = open.remove(&e.process) else {
            continue;
        };
        if deletes_of(inv) && e.outcome != Outcome::Fail && e.applied != Some(false) {
            let version = (e.outcome == Outcome::Ok)
                .then_some(e.version.as_ref())
                .flatten();
            deletes.push((&inv.key, inv.at_us, version));
        }
        if e.outcome == Outcome::Ok {
            done.push(Done { inv, end: e });
        }
    }
    for inv in open.into_values() {
        if deletes_of(inv) {
            deletes.push((&inv.key, inv.at_us, None));
        }
    }
    let acked: Vec<(&Done<'_>, &Stamp)> = done
        .iter()
        .filter(|d| d.inv.f.is_eventual() && d.inv.level.is_some())
        .filter_map(|d| d.end.version.as_ref().map(|v| (d, v)))
        .collect();
    let mut out = Vec::new();
    for s in done.iter().filter(|d| !d.inv.f.is_eventual()) {
        // The newest level write acknowledged before this operation started.
        let Some((w, wv)) = acked
            .iter()
            .filter(|(w, _)| w.inv.key == s.inv.key && w.end.at_us < s.inv.at_us)
            .max_by(|a, b| a.1.cmp(b.1))
        else {
            continue;
        };
        let wrote = match s.inv.f {
            StrongOp::Read => false,
            StrongOp::Cas => s.end.applied == Some(true),
            _ => true,
        };
        let fine = match &s.end.version {
            Some(v) if wrote => v > *wv,
            Some(v) => v >= *wv,
            None if wrote => false,
            None => {
                w.inv.f == StrongOp::EventualDelete
                    || deletes.iter().any(|(k, at, dv)| {
                        *k == s.inv.key && *at <= s.end.at_us && dv.is_none_or(|dv| dv > *wv)
                    })
            }
        };
        if !fine {
            out.push(Violation {
                checker: Checker::LevelObserved,
                key: Some(s.inv.key.clone()),
                detail: format!(
                    "a {:?} by process {} started {} us after process {}'s {:?} of {} at {:?} \
                     was acknowledged with version {wv}, yet answered {} with version {}",
                    s.inv.f,
                    s.inv.process,
                    s.inv.at_us - w.end.at_us,
                    w.inv.process,
                    w.inv.f,
                    show(&w.inv.value),
                    w.inv.level.unwrap_or(Level::Quorum),
                    show(&s.end.value),
                    s.end
                        .version
                        .as_ref()
                        .map_or_else(|| "none".to_string(), ToString::to_string)
                ),
            });
        }
    }
    out
}

/// The strong keys' final linearizable values against the replicas'
/// converged state: a decided value enters the LWW store with a version
/// above every other, so once the cluster has settled the two must agree.
pub fn final_agrees(
    final_reads: &BTreeMap<String, Option<String>>,
    state: &ReplicaState,
) -> Vec<Violation> {
    final_reads
        .iter()
        .filter_map(|(key, read)| {
            let stored = state.get(key).and_then(|r| r.value.clone());
            (stored != *read).then(|| Violation {
                checker: Checker::StrongFinal,
                key: Some(key.clone()),
                detail: format!(
                    "the final SERIAL read saw {} but the converged replicas hold {}",
                    show(read),
                    show(&stored)
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Record;

    struct H(Vec<StrongEvent>);

    impl H {
        #[allow(clippy::too_many_arguments)]
        fn ev(
            &mut self,
            process: u32,
            outcome: Outcome,
            f: StrongOp,
            expect: Option<&str>,
            value: Option<&str>,
            applied: Option<bool>,
            at_us: u64,
        ) -> &mut Self {
            self.0.push(StrongEvent {
                process,
                outcome,
                f,
                node: format!("n{}", process % 3 + 1),
                key: "s0".into(),
                expect: expect.map(str::to_string),
                value: value.map(str::to_string),
                applied,
                version: None,
                at_us,
                error: None,
                level: None,
            });
            self
        }

        /// Sets the last event's version (hlc, origin `n1`) and level.
        fn at(&mut self, hlc: u64, level: Option<Level>) -> &mut Self {
            if let Some(e) = self.0.last_mut() {
                e.version = Some(Stamp {
                    hlc,
                    origin: "n1".into(),
                });
                e.level = level;
            }
            self
        }

        /// Sets the level of the last event.
        fn level(&mut self, level: Level) -> &mut Self {
            if let Some(e) = self.0.last_mut() {
                e.level = Some(level);
            }
            self
        }
    }

    fn check(h: &H) -> Vec<Violation> {
        linearizable(&h.0, &CheckOptions::default())
    }

    use Outcome::{Fail, Info, Invoke, Ok as Done};
    use StrongOp::{Cas, Delete, EventualDelete, EventualPut, Read, Write};

    /// A strong write of "a" (version 5), then an eventual put of "e" at
    /// `level` acknowledged with version 10, then a SERIAL read answering
    /// `seen` with version `seen_at`.
    fn write_then_eventual_then_read(
        level: Option<Level>,
        seen: Option<&str>,
        seen_at: Option<u64>,
    ) -> H {
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Write, None, Some("a"), None, 0)
            .ev(0, Done, Write, None, Some("a"), None, 10)
            .at(5, None)
            .ev(1, Invoke, EventualPut, None, Some("e"), None, 20);
        if let Some(l) = level {
            h.level(l);
        }
        h.ev(1, Done, EventualPut, None, Some("e"), None, 30)
            .at(10, level)
            .ev(2, Invoke, Read, None, None, None, 40)
            .ev(2, Done, Read, None, seen, None, 50);
        if let Some(v) = seen_at {
            h.at(v, None);
        }
        h
    }

    #[test]
    fn a_one_write_may_be_observed_or_superseded_unseen_by_strong_operations() {
        for (seen, at) in [(Some("a"), 5), (Some("e"), 10)] {
            let h = write_then_eventual_then_read(None, seen, Some(at));
            assert_eq!(check(&h), vec![], "read {seen:?}");
            assert_eq!(level_writes_observed(&h.0), vec![], "read {seen:?}");
        }
    }

    #[test]
    fn a_strong_read_older_than_a_quorum_write_acknowledged_before_it_is_caught() {
        let h = write_then_eventual_then_read(Some(Level::Quorum), Some("a"), Some(5));
        // Linearizability alone allows it (the eventual write may never
        // apply); the contract for level writes does not.
        assert_eq!(check(&h), vec![]);
        let v = level_writes_observed(&h.0);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].checker, Checker::LevelObserved);
        assert!(v[0].detail.contains("Quorum"), "{v:?}");
        // Seeing it, or anything newer, is what the contract asks.
        for (seen, at) in [(Some("e"), 10), (Some("e"), 12)] {
            let h = write_then_eventual_then_read(Some(Level::All), seen, Some(at));
            assert_eq!(level_writes_observed(&h.0), vec![]);
            assert_eq!(check(&h), vec![]);
        }
    }

    #[test]
    fn an_absent_read_after_a_quorum_put_needs_a_delete_that_may_supersede_it() {
        let h = write_then_eventual_then_read(Some(Level::Quorum), None, None);
        assert_eq!(level_writes_observed(&h.0).len(), 1);
        // A strong delete acknowledged with a version above the put's explains it.
        let mut h = write_then_eventual_then_read(Some(Level::Quorum), None, None);
        h.0.truncate(4);
        h.ev(3, Invoke, Delete, None, None, None, 32)
            .ev(3, Done, Delete, None, None, None, 35)
            .at(11, None)
            .ev(2, Invoke, Read, None, None, None, 40)
            .ev(2, Done, Read, None, None, None, 50);
        assert_eq!(level_writes_observed(&h.0), vec![]);
        assert_eq!(check(&h), vec![]);
        // One whose version is below the put's does not, and is itself
        // caught: it started after the put was acknowledged.
        h.0[5].version = Some(Stamp {
            hlc: 9,
            origin: "n1".into(),
        });
        let v = level_writes_observed(&h.0);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("Delete") && v[1].detail.contains("Read"));
    }

    #[test]
    fn a_strong_write_stamped_below_an_acknowledged_level_write_is_caught() {
        let mut h = H(Vec::new());
        h.ev(1, Invoke, EventualDelete, None, None, None, 0)
            .level(Level::Quorum)
            .ev(1, Done, EventualDelete, None, None, None, 10)
            .at(10, Some(Level::Quorum))
            .ev(0, Invoke, Write, None, Some("a"), None, 20)
            .ev(0, Done, Write, None, Some("a"), None, 30)
            .at(10, None);
        assert_eq!(level_writes_observed(&h.0).len(), 1, "equal is not above");
        h.0[3].version = Some(Stamp {
            hlc: 11,
            origin: "n1".into(),
        });
        assert_eq!(level_writes_observed(&h.0), vec![]);
    }

    #[test]
    fn eventual_writes_stay_pending_yet_cannot_explain_a_value_before_their_invocation() {
        // A read returns "e" before the eventual put of "e" was invoked.
        let mut h = H(Vec::new());
        h.ev(2, Invoke, Read, None, None, None, 0)
            .ev(2, Done, Read, None, Some("e"), None, 10)
            .ev(1, Invoke, EventualPut, None, Some("e"), None, 20)
            .ev(1, Done, EventualPut, None, Some("e"), None, 30);
        assert_eq!(check(&h).len(), 1);
        // A failed eventual write never applied.
        let mut h = H(Vec::new());
        h.ev(1, Invoke, EventualPut, None, Some("e"), None, 0)
            .ev(1, Fail, EventualPut, None, Some("e"), None, 10)
            .ev(2, Invoke, Read, None, None, None, 20)
            .ev(2, Done, Read, None, Some("e"), None, 30);
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn a_pending_write_is_bounded_by_the_first_observer_of_its_value_after_its_call() {
        let mut h = H(Vec::new());
        h.ev(2, Invoke, Read, None, None, None, 0)
            .ev(2, Done, Read, None, Some("late"), None, 5)
            .ev(1, Invoke, EventualPut, None, Some("e"), None, 10)
            .ev(3, Invoke, EventualPut, None, Some("late"), None, 12)
            .ev(4, Invoke, Cas, None, Some("c"), None, 14)
            .ev(4, Info, Cas, None, Some("c"), None, 15)
            .ev(2, Invoke, Read, None, None, None, 20)
            .ev(2, Done, Read, None, Some("e"), None, 30)
            .ev(0, Invoke, Cas, Some("c"), Some("d"), None, 40)
            .ev(0, Done, Cas, Some("c"), Some("d"), Some(true), 50)
            .ev(2, Invoke, Read, None, None, None, 60)
            .ev(2, Done, Read, None, Some("e"), None, 70);
        let (ops, bad) = operations(&h.0);
        assert_eq!(bad, vec![]);
        let bounded = bound_observed_writes(ops);
        let find = |v: &str| {
            bounded
                .iter()
                .map(|(o, _)| o)
                .find(|o| match &o.input.op {
                    VergentOp::Put(x) | VergentOp::Cas { new: Some(x), .. } => x == v.as_bytes(),
                    _ => false,
                })
                .expect("the write")
        };
        // First observed at the read returning at 30, not the later one.
        assert_eq!(find("e").ret, Some(30));
        assert_eq!(find("e").output, Some(VergentKvOutput::Done));
        // An unknown CAS whose value a CAS that applied expected.
        assert_eq!(find("c").ret, Some(50));
        assert_eq!(
            find("c").output,
            Some(VergentKvOutput::Cas { applied: true })
        );
        // Observed only before it was invoked: left pending, for the
        // search to reject.
        assert_eq!(find("late").ret, None);
        assert_eq!(check(&h).len(), 1);
        // Read once, overwritten by an acknowledged strong write, then read
        // again: a write applies once, so that is caught.
        let mut h = H(Vec::new());
        h.ev(1, Invoke, EventualPut, None, Some("e"), None, 0)
            .ev(2, Invoke, Read, None, None, None, 10)
            .ev(2, Done, Read, None, Some("e"), None, 20)
            .ev(0, Invoke, Write, None, Some("a"), None, 30)
            .ev(0, Done, Write, None, Some("a"), None, 40)
            .ev(2, Invoke, Read, None, None, None, 50)
            .ev(2, Done, Read, None, Some("e"), None, 60);
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn an_acknowledged_eventual_delete_cannot_take_effect_after_a_newer_strong_write() {
        // Delete acknowledged with version 10; then a strong write of "a",
        // read back; then a read finds the key absent.
        let history = |written_at: u64| {
            let mut h = H(Vec::new());
            h.ev(1, Invoke, EventualDelete, None, None, None, 0)
                .ev(1, Done, EventualDelete, None, None, None, 10)
                .at(10, None)
                .ev(0, Invoke, Write, None, Some("a"), None, 20)
                .ev(0, Done, Write, None, Some("a"), None, 30)
                .at(written_at, None)
                .ev(2, Invoke, Read, None, None, None, 35)
                .ev(2, Done, Read, None, Some("a"), None, 38)
                .at(written_at, None)
                .ev(2, Invoke, Read, None, None, None, 40)
                .ev(2, Done, Read, None, None, None, 50);
            h
        };
        // Stamped above the delete, the write wins for good: caught.
        assert_eq!(check(&history(11)).len(), 1);
        // Stamped below it (a skewed clock), the delete may still win.
        assert_eq!(check(&history(9)), vec![]);
    }

    #[test]
    fn unobserved_eventual_puts_are_left_out_without_hiding_a_violation() {
        // The stale read after an acknowledged CAS, among many eventual puts
        // nobody read: still caught, and decided well within a tiny budget.
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, None, Some("1"), None, 0).ev(
            0,
            Done,
            Cas,
            None,
            Some("1"),
            Some(true),
            10,
        );
        for p in 10..40 {
            h.ev(
                p,
                Invoke,
                EventualPut,
                None,
                Some(&format!("e{p}")),
                None,
                11,
            );
        }
        h.ev(1, Invoke, Read, None, None, None, 20)
            .ev(1, Done, Read, None, None, None, 30);
        let v = linearizable(
            &h.0,
            &CheckOptions {
                max_steps: Some(1_000),
            },
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("no linearization"), "{v:?}");
    }

    #[test]
    fn a_counter_of_sequential_cas_is_linearizable() {
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, None, Some("1"), None, 0)
            .ev(0, Done, Cas, None, Some("1"), Some(true), 10)
            .ev(1, Invoke, Cas, Some("1"), Some("2"), None, 20)
            .ev(1, Done, Cas, Some("1"), Some("2"), Some(true), 30)
            .ev(2, Invoke, Read, None, None, None, 40)
            .ev(2, Done, Read, None, Some("2"), None, 50);
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn two_cas_from_the_same_value_both_applying_is_caught() {
        // What a quorum of one does: both proposers see "1" and both win.
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Write, None, Some("1"), None, 0)
            .ev(0, Done, Write, None, Some("1"), None, 5)
            .ev(1, Invoke, Cas, Some("1"), Some("a"), None, 10)
            .ev(2, Invoke, Cas, Some("1"), Some("b"), None, 11)
            .ev(1, Done, Cas, Some("1"), Some("a"), Some(true), 20)
            .ev(2, Done, Cas, Some("1"), Some("b"), Some(true), 21);
        let v = check(&h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].checker, Checker::Linearizable);
        assert_eq!(v[0].key.as_deref(), Some("s0"));
    }

    #[test]
    fn a_stale_serial_read_after_an_acknowledged_cas_is_caught() {
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, None, Some("1"), None, 0)
            .ev(0, Done, Cas, None, Some("1"), Some(true), 10)
            .ev(1, Invoke, Read, None, None, None, 20)
            .ev(1, Done, Read, None, None, None, 30);
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn an_unknown_cas_may_have_applied_or_not() {
        for seen in [None, Some("1")] {
            let mut h = H(Vec::new());
            h.ev(0, Invoke, Cas, None, Some("1"), None, 0)
                .ev(0, Info, Cas, None, Some("1"), None, 10)
                .ev(1, Invoke, Read, None, None, None, 20)
                .ev(1, Done, Read, None, seen, None, 30);
            assert_eq!(check(&h), vec![], "read {seen:?}");
        }
    }

    #[test]
    fn a_failed_cas_is_known_not_to_have_applied() {
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, None, Some("1"), None, 0)
            .ev(0, Fail, Cas, None, Some("1"), None, 10)
            .ev(1, Invoke, Read, None, None, None, 20)
            .ev(1, Done, Read, None, Some("1"), None, 30);
        assert_eq!(
            check(&h).len(),
            1,
            "a value only a failed CAS wrote was read"
        );
    }

    #[test]
    fn a_cas_that_did_not_apply_reports_the_value_it_saw_and_is_checked_as_a_read() {
        // Not applied, "current is 7": but nothing ever wrote 7.
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, Some("x"), Some("1"), None, 0).ev(
            0,
            Done,
            Cas,
            Some("x"),
            Some("7"),
            Some(false),
            10,
        );
        assert_eq!(check(&h).len(), 1);
        // Not applied although the key held what it expected.
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, None, Some("1"), None, 0).ev(
            0,
            Done,
            Cas,
            None,
            None,
            Some(false),
            10,
        );
        let v = check(&h);
        assert!(
            v.iter().any(|v| v.detail.contains("did not apply")),
            "{v:?}"
        );
    }

    #[test]
    fn an_exhausted_budget_is_reported_not_passed() {
        let mut h = H(Vec::new());
        for p in 0..6 {
            h.ev(
                p,
                Invoke,
                Write,
                None,
                Some(&format!("v{p}")),
                None,
                u64::from(p),
            );
        }
        h.ev(9, Invoke, Read, None, None, None, 100)
            .ev(9, Done, Read, None, Some("v3"), None, 110);
        let v = linearizable(&h.0, &CheckOptions { max_steps: Some(1) });
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].detail.contains("budget"), "{v:?}");
    }

    #[test]
    fn the_final_read_must_match_the_converged_state() {
        let reads = BTreeMap::from([
            ("s0".to_string(), Some("a".to_string())),
            ("s1".to_string(), None),
        ]);
        let rec = |v: Option<&str>| Record {
            value: v.map(str::to_string),
            version: Stamp {
                hlc: 1,
                origin: "n1".into(),
            },
        };
        let agree = ReplicaState::from([("s0".to_string(), rec(Some("a")))]);
        assert_eq!(final_agrees(&reads, &agree), vec![]);
        let tomb = ReplicaState::from([
            ("s0".to_string(), rec(Some("a"))),
            ("s1".to_string(), rec(None)),
        ]);
        assert_eq!(final_agrees(&reads, &tomb), vec![]);
        let stale = ReplicaState::from([("s0".to_string(), rec(Some("b")))]);
        let v = final_agrees(&reads, &stale);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].checker, Checker::StrongFinal);
    }

    #[test]
    fn strong_history_lines_round_trip() {
        let mut h = H(Vec::new());
        h.ev(0, Invoke, Cas, None, Some("1"), None, 0).ev(
            0,
            Done,
            Cas,
            None,
            Some("1"),
            Some(true),
            10,
        );
        let text: Vec<String> =
            h.0.iter()
                .map(|e| serde_json::to_string(e).expect("encode"))
                .collect();
        assert!(text[0].contains(r#""f":"cas""#), "{}", text[0]);
        let back: Vec<StrongEvent> = text
            .iter()
            .map(|t| serde_json::from_str(t).expect("decode"))
            .collect();
        assert_eq!(back, h.0);
    }
}
