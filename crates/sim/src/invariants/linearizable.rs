//! Strong operations are linearizable, per key: the history of strong
//! reads, writes and CASes (an operation never answered, or answered
//! "unknown", may have taken effect at any point after its call, or never;
//! one that certainly failed is left out) has an order that respects real
//! time and a register's semantics, as `vergent-lincheck` searches for it.

use std::collections::BTreeMap;

use vergent_consensus::{Expect, Op};
use vergent_lincheck::{
    CheckOptions, Expect as LinExpect, History as LinHistory, Operation, Verdict, VergentKv,
    VergentKvInput, VergentKvOutput, VergentOp, check_by_key,
};

use crate::history::{Event, History, StrongResult};

/// Search steps before the checker gives up; giving up is reported, never
/// taken for a pass.
const MAX_STEPS: u64 = 20_000_000;

/// The violations, one line each (a counterexample spans several lines).
pub fn check(history: &History) -> Vec<String> {
    let mut invoked: BTreeMap<u64, (usize, Vec<u8>, Op, u64)> = BTreeMap::new();
    let mut returned: BTreeMap<u64, (u64, StrongResult)> = BTreeMap::new();
    for e in &history.events {
        match e {
            Event::StrongInvoked {
                id,
                node,
                key,
                op,
                at_us,
            } => {
                invoked.insert(*id, (*node, key.clone(), op.clone(), *at_us));
            }
            Event::StrongReturned {
                id, at_us, result, ..
            } => {
                returned.insert(*id, (*at_us, result.clone()));
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    let mut ops = Vec::new();
    for (id, (node, key, op, call)) in invoked {
        let Some(input) = input_of(&op) else {
            violations.push(format!(
                "linearizable: operation {id} ({op:?}) has no model"
            ));
            continue;
        };
        let input = VergentKvInput { key, op: input };
        let client = node as u64;
        match returned.remove(&id) {
            None | Some((_, StrongResult::Unknown)) => {
                ops.push(Operation::pending(client, call, input));
            }
            Some((_, StrongResult::Failed)) => {}
            Some((ret, result)) => match output_of(&input.op, &result) {
                Some(output) => ops.push(Operation::returned(client, call, ret, input, output)),
                None => violations.push(format!(
                    "linearizable: operation {id} ({op:?}) answered {result:?}"
                )),
            },
        }
    }
    let history = match LinHistory::from_ops(ops) {
        Ok(h) => h,
        Err(e) => {
            violations.push(format!("linearizable: malformed history: {e}"));
            return violations;
        }
    };
    let options = CheckOptions {
        max_steps: Some(MAX_STEPS),
    };
    match check_by_key(&VergentKv, &history, |i| i.key.clone(), &options) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable(c) => violations.push(format!("linearizable: {c}")),
        Verdict::Unknown => violations.push(format!(
            "linearizable: undecided within {MAX_STEPS} search steps"
        )),
    }
    violations
}

/// The model's operation for a strong one.
fn input_of(op: &Op) -> Option<VergentOp> {
    Some(match op {
        Op::Read => VergentOp::Get,
        Op::Cas {
            expect: Expect::Any,
            new: Some(v),
        } => VergentOp::Put(v.clone()),
        Op::Cas {
            expect: Expect::Any,
            new: None,
        } => VergentOp::Delete,
        Op::Cas { expect, new } => VergentOp::Cas {
            expect: match expect {
                Expect::Absent => LinExpect::Absent,
                Expect::Value(v) => LinExpect::Value(v.clone()),
                // The model knows values, not versions.
                Expect::Any | Expect::Version(_) => return None,
            },
            new: new.clone(),
        },
    })
}

/// The model's answer for what the client was told; `None` when the answer
/// does not fit the operation at all.
fn output_of(op: &VergentOp, result: &StrongResult) -> Option<VergentKvOutput> {
    match (op, result) {
        (VergentOp::Get, StrongResult::Read(v)) => Some(VergentKvOutput::Value(v.clone())),
        (VergentOp::Put(_) | VergentOp::Delete, StrongResult::Applied(true)) => {
            Some(VergentKvOutput::Done)
        }
        (VergentOp::Cas { .. }, StrongResult::Applied(applied)) => {
            Some(VergentKvOutput::Cas { applied: *applied })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(h: &mut History, id: u64, op: Op, at_us: u64) {
        h.push(Event::StrongInvoked {
            id,
            node: id as usize,
            key: b"s0".to_vec(),
            op,
            at_us,
        });
    }

    fn answer(h: &mut History, id: u64, result: StrongResult, at_us: u64) {
        h.push(Event::StrongReturned {
            id,
            at_us,
            result,
            prepares: 3,
            accepts: 3,
        });
    }

    fn cas_absent(v: &str) -> Op {
        Op::Cas {
            expect: Expect::Absent,
            new: Some(v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn two_cas_on_absent_that_both_applied_are_reported() {
        let mut h = History::default();
        invoke(&mut h, 1, cas_absent("a"), 0);
        answer(&mut h, 1, StrongResult::Applied(true), 10);
        invoke(&mut h, 2, cas_absent("b"), 20);
        answer(&mut h, 2, StrongResult::Applied(true), 30);
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("not linearizable"), "{}", found[0]);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_reported() {
        let mut h = History::default();
        invoke(
            &mut h,
            1,
            Op::Cas {
                expect: Expect::Any,
                new: Some(b"a".to_vec()),
            },
            0,
        );
        answer(&mut h, 1, StrongResult::Applied(true), 10);
        invoke(&mut h, 2, Op::Read, 20);
        answer(&mut h, 2, StrongResult::Read(None), 30);
        assert_eq!(check(&h).len(), 1);
    }

    #[test]
    fn unknown_and_unanswered_operations_may_or_may_not_have_applied_and_failed_ones_did_not() {
        let mut h = History::default();
        invoke(&mut h, 1, cas_absent("a"), 0);
        answer(&mut h, 1, StrongResult::Unknown, 10);
        invoke(&mut h, 2, Op::Read, 20);
        answer(&mut h, 2, StrongResult::Read(Some(b"a".to_vec())), 30);
        invoke(&mut h, 3, cas_absent("b"), 40);
        answer(&mut h, 3, StrongResult::Failed, 50);
        invoke(&mut h, 4, cas_absent("c"), 60);
        invoke(&mut h, 5, Op::Read, 70);
        answer(&mut h, 5, StrongResult::Read(Some(b"a".to_vec())), 80);
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }
}
