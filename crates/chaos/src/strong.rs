//! The strong workload's history and its checks: every operation is a
//! `SERIAL` read, a strong put or delete, or a compare-and-set, and the
//! history of each key must be linearizable (checked by `vergent-lincheck`
//! against Vergent's KV model), with the replicas' converged final state
//! agreeing with a final linearizable read.
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
use crate::history::{Outcome, ReplicaState, Stamp};

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

fn bytes(v: &Option<String>) -> Option<Vec<u8>> {
    v.as_ref().map(|s| s.clone().into_bytes())
}

/// The input an invocation asked for.
fn input(e: &StrongEvent) -> VergentKvInput {
    let op = match e.f {
        StrongOp::Read => VergentOp::Get,
        StrongOp::Write => VergentOp::Put(bytes(&e.value).unwrap_or_default()),
        StrongOp::Delete => VergentOp::Delete,
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
fn operations(events: &[StrongEvent]) -> (Vec<KvOperation>, Vec<Violation>) {
    let mut open: HashMap<u32, &StrongEvent> = HashMap::new();
    let mut ops = Vec::new();
    let mut bad = Vec::new();
    for e in events {
        if e.outcome == Outcome::Invoke {
            if let Some(prev) = open.insert(e.process, e) {
                // The process never completed its previous operation.
                ops.push(Operation::pending(
                    u64::from(prev.process),
                    prev.at_us,
                    input(prev),
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
            Outcome::Info | Outcome::Invoke => {
                ops.push(Operation::pending(client, inv.at_us, input(inv)));
            }
            Outcome::Ok => {
                let ret = e.at_us.max(inv.at_us);
                let (asked, answer) = match (inv.f, e.applied) {
                    (StrongOp::Read, _) => (input(inv), VergentKvOutput::Value(bytes(&e.value))),
                    (StrongOp::Write | StrongOp::Delete, _) => (input(inv), VergentKvOutput::Done),
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
                ops.push(Operation::returned(client, inv.at_us, ret, asked, answer));
            }
        }
    }
    for inv in open.into_values() {
        ops.push(Operation::pending(
            u64::from(inv.process),
            inv.at_us,
            input(inv),
        ));
    }
    // Deterministic order whatever the map's iteration did.
    ops.sort_by_key(|o| (o.call, o.client));
    (ops, bad)
}

fn show(v: &Option<String>) -> String {
    v.as_ref()
        .map_or_else(|| "absent".to_string(), |v| format!("{v:?}"))
}

/// Search steps allowed over all keys; running out is reported, never passed.
pub const MAX_STEPS: u64 = 50_000_000;

/// Checks that every key's strong history is linearizable, one key at a
/// time (P-compositionality), so every failing key is reported.
pub fn linearizable(events: &[StrongEvent], options: &CheckOptions) -> Vec<Violation> {
    let (ops, mut violations) = operations(events);
    let mut by_key: BTreeMap<String, Vec<KvOperation>> = BTreeMap::new();
    for op in ops {
        by_key
            .entry(String::from_utf8_lossy(&op.input.key).into_owned())
            .or_default()
            .push(op);
    }
    for (key, ops) in by_key {
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
            });
            self
        }
    }

    fn check(h: &H) -> Vec<Violation> {
        linearizable(&h.0, &CheckOptions::default())
    }

    use Outcome::{Fail, Info, Invoke, Ok as Done};
    use StrongOp::{Cas, Read, Write};

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
