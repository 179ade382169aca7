//! Tests of the checker: a brute-force oracle cross-checked on random small
//! histories, crafted violations it must report, pending operations, the
//! step budget and the event-log builder.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::history::{Event, EventKind, HistoryError};
use crate::models::{
    Expect, Register, RegisterInput, RegisterOutput, VergentKv, VergentKvInput, VergentKvOutput,
    VergentOp,
};

type Reg = Operation<RegisterInput<i64>, RegisterOutput<i64>>;

fn done(
    client: u64,
    call: u64,
    ret: u64,
    input: RegisterInput<i64>,
    out: RegisterOutput<i64>,
) -> Reg {
    Operation::returned(client, call, ret, input, out)
}

fn reg(ops: Vec<Reg>) -> Verdict {
    let history = History::from_ops(ops).expect("valid history");
    check(&Register::<i64>::new(), &history, &CheckOptions::default())
}

/// Whether some order of all returned operations and any subset of the
/// pending ones respects real time and the model, found by trying every
/// order; a pending operation may take any output in `outputs`.
fn brute_force<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    outputs: &[M::Output],
) -> bool {
    fn go<M: Model>(
        model: &M,
        ops: &[Operation<M::Input, M::Output>],
        outputs: &[M::Output],
        placed: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        let all_returned_placed = ops
            .iter()
            .zip(placed.iter())
            .all(|(op, &p)| p || op.ret.is_none());
        if all_returned_placed {
            return true;
        }
        for b in 0..ops.len() {
            // `b` may go next only after every operation that returned
            // before `b` was called.
            let ready = !placed[b]
                && ops
                    .iter()
                    .zip(placed.iter())
                    .all(|(a, &p)| p || a.ret.is_none_or(|ret| ret >= ops[b].call));
            if !ready {
                continue;
            }
            let mut nexts: Vec<M::State> = match &ops[b].output {
                Some(out) => model.step(state, &ops[b].input, out).into_iter().collect(),
                None => outputs
                    .iter()
                    .filter_map(|out| model.step(state, &ops[b].input, out))
                    .collect(),
            };
            if ops[b].output.is_none() && ops[b].ret.is_some() {
                // Unknown but bounded: placed by its deadline, perhaps
                // without effect.
                nexts.push(state.clone());
            }
            for next in nexts {
                placed[b] = true;
                let found = go(model, ops, outputs, placed, &next);
                placed[b] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    let mut placed = vec![false; ops.len()];
    go(model, ops, outputs, &mut placed, &model.init())
}

/// A history of up to 7 operations by 3 clients on a real register, each
/// taking effect at a random point inside its interval (or, if it never
/// returns, possibly not at all); then, sometimes, one output is corrupted.
fn random_history(rng: &mut ChaCha8Rng) -> Vec<Reg> {
    enum Client {
        Idle,
        Busy { op: usize, applied: bool },
    }
    let n = rng.random_range(1..=7);
    let mut clients = [Client::Idle, Client::Idle, Client::Idle];
    let mut ops: Vec<Reg> = Vec::new();
    let mut register: Option<i64> = None;
    let mut t = 0;
    loop {
        let busy = clients.iter().any(|c| matches!(c, Client::Busy { .. }));
        if ops.len() == n && (!busy || rng.random_bool(0.15)) {
            // Whoever is still busy never hears back.
            break;
        }
        t += 1;
        let c = rng.random_range(0..3);
        match clients[c] {
            Client::Idle if ops.len() < n => {
                let value = rng.random_range(0..3);
                let input = match rng.random_range(0..10) {
                    0..4 => RegisterInput::Read,
                    4..7 => RegisterInput::Write(value),
                    _ => RegisterInput::Cas {
                        expect: rng.random_range(0..3),
                        new: value,
                    },
                };
                clients[c] = Client::Busy {
                    op: ops.len(),
                    applied: false,
                };
                ops.push(Operation::pending(c as u64, t, input));
            }
            Client::Idle => {}
            Client::Busy { op, applied: false } => {
                let out = match &ops[op].input {
                    RegisterInput::Read => RegisterOutput::Read(register),
                    RegisterInput::Write(v) => {
                        register = Some(*v);
                        RegisterOutput::Written
                    }
                    RegisterInput::Cas { expect, new } => {
                        let matched = register == Some(*expect);
                        if matched {
                            register = Some(*new);
                        }
                        RegisterOutput::Cas(matched)
                    }
                };
                ops[op].output = Some(out);
                clients[c] = Client::Busy { op, applied: true };
            }
            Client::Busy { op, applied: true } => {
                if rng.random_bool(0.1) {
                    // Took effect, but the client timed out.
                    ops[op].output = None;
                } else {
                    ops[op].ret = Some(t);
                }
                clients[c] = Client::Idle;
            }
        }
    }
    for op in &mut ops {
        if op.ret.is_none() {
            op.output = None;
        }
    }
    if rng.random_bool(0.7) {
        let returned: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
        if !returned.is_empty() {
            let i = returned[rng.random_range(0..returned.len())];
            let v = rng.random_range(0..3);
            let corrupt = match &ops[i].input {
                RegisterInput::Read if rng.random_bool(0.25) => RegisterOutput::Read(None),
                RegisterInput::Read => RegisterOutput::Read(Some(v)),
                RegisterInput::Write(_) => RegisterOutput::Written,
                RegisterInput::Cas { .. } => RegisterOutput::Cas(rng.random_bool(0.5)),
            };
            ops[i].output = Some(corrupt);
        }
    }
    ops
}

#[test]
fn the_checker_agrees_with_brute_force_on_random_small_register_histories() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x11_4e_a7);
    let mut outputs = vec![RegisterOutput::Read(None), RegisterOutput::Written];
    outputs.extend((0..3).map(|v| RegisterOutput::Read(Some(v))));
    outputs.extend([RegisterOutput::Cas(true), RegisterOutput::Cas(false)]);
    let (mut yes, mut no, mut pending) = (0, 0, 0);
    for case in 0..2000 {
        let ops = random_history(&mut rng);
        pending += ops.iter().filter(|op| op.ret.is_none()).count();
        let expected = brute_force(&Register::<i64>::new(), &ops, &outputs);
        let verdict = reg(ops.clone());
        assert_eq!(
            verdict.is_linearizable(),
            expected,
            "case {case}: brute force says {expected}, the checker {verdict:?}\n{ops:#?}"
        );
        assert!(!matches!(verdict, Verdict::Unknown));
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    eprintln!("{yes} linearizable, {no} not, {pending} pending operations");
    assert!(yes > 400 && no > 400, "{yes} linearizable, {no} not");
    assert!(pending > 300, "only {pending} pending operations");
}

#[test]
fn the_checker_agrees_with_brute_force_on_random_histories_with_bounded_unknown_outcomes() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xb0_4d_ed);
    let mut outputs = vec![RegisterOutput::Read(None), RegisterOutput::Written];
    outputs.extend((0..3).map(|v| RegisterOutput::Read(Some(v))));
    outputs.extend([RegisterOutput::Cas(true), RegisterOutput::Cas(false)]);
    let (mut yes, mut no, mut bounded) = (0, 0, 0);
    for case in 0..2000 {
        let mut ops = random_history(&mut rng);
        for op in &mut ops {
            let is_read = matches!(op.input, RegisterInput::Read);
            if op.ret.is_none() && rng.random_bool(0.5) {
                // Unknown, but settled within a few ticks of its call.
                op.ret = Some(op.call + rng.random_range(0..6));
            } else if op.ret.is_some() && !is_read && rng.random_bool(0.3) {
                op.output = None;
            }
            bounded += usize::from(op.ret.is_some() && op.output.is_none());
        }
        let expected = brute_force(&Register::<i64>::new(), &ops, &outputs);
        let verdict = reg(ops.clone());
        assert_eq!(
            verdict.is_linearizable(),
            expected,
            "case {case}: brute force says {expected}, the checker {verdict:?}\n{ops:#?}"
        );
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    eprintln!("{yes} linearizable, {no} not, {bounded} bounded unknown operations");
    assert!(yes > 400 && no > 300, "{yes} linearizable, {no} not");
    assert!(bounded > 300, "only {bounded} bounded unknown operations");
}

#[test]
fn a_bounded_unknown_write_may_not_take_effect_after_its_deadline() {
    // write 1 (done), then a write of 2 unknown but settled by 20; a read
    // at [30, 40] of 2 is fine, and so is 1 (it may never have applied)...
    for seen in [1, 2] {
        let v = reg(vec![
            done(0, 0, 5, RegisterInput::Write(1), RegisterOutput::Written),
            Operation::unknown_until(1, 10, 20, RegisterInput::Write(2)),
            done(
                2,
                30,
                40,
                RegisterInput::Read,
                RegisterOutput::Read(Some(seen)),
            ),
        ]);
        assert!(v.is_linearizable(), "read {seen}: {v:?}");
    }
    // ...but after a write of 3 that followed its deadline, 2 cannot appear.
    let v = reg(vec![
        Operation::unknown_until(1, 10, 20, RegisterInput::Write(2)),
        done(0, 25, 28, RegisterInput::Write(3), RegisterOutput::Written),
        done(
            2,
            30,
            40,
            RegisterInput::Read,
            RegisterOutput::Read(Some(2)),
        ),
    ]);
    assert!(matches!(v, Verdict::NotLinearizable(_)), "{v:?}");
    // Left pending instead, it could.
    let v = reg(vec![
        Operation::pending(1, 10, RegisterInput::Write(2)),
        done(0, 25, 28, RegisterInput::Write(3), RegisterOutput::Written),
        done(
            2,
            30,
            40,
            RegisterInput::Read,
            RegisterOutput::Read(Some(2)),
        ),
    ]);
    assert!(v.is_linearizable(), "{v:?}");
}

#[test]
fn a_stale_read_after_a_completed_write_is_not_linearizable() {
    let kv = |client, call, ret, key: &str, op, out| {
        Operation::returned(
            client,
            call,
            ret,
            VergentKvInput {
                key: key.as_bytes().to_vec(),
                op,
            },
            out,
        )
    };
    let history = History::from_ops([
        kv(
            0,
            0,
            10,
            "x",
            VergentOp::Put(b"1".to_vec()),
            VergentKvOutput::Done,
        ),
        kv(0, 1, 2, "y", VergentOp::Get, VergentKvOutput::Value(None)),
        kv(1, 20, 30, "x", VergentOp::Get, VergentKvOutput::Value(None)),
    ])
    .expect("valid history");
    let verdict = check_by_key(
        &VergentKv,
        &history,
        |input| String::from_utf8_lossy(&input.key).into_owned(),
        &CheckOptions::default(),
    );
    let Verdict::NotLinearizable(cx) = verdict else {
        panic!("a stale read passed: {verdict:?}");
    };
    assert_eq!(cx.key.as_deref(), Some("\"x\""));
    assert_eq!(cx.ops, 2);
    assert_eq!(cx.linearized.len(), 1, "the write can be placed");
    assert_eq!(cx.linearized[0].index, 0);
    assert_eq!(cx.stuck.len(), 1, "the read cannot follow it");
    assert_eq!(cx.stuck[0].index, 2);
    let shown = cx.to_string();
    assert!(shown.contains("key \"x\" is not linearizable"), "{shown}");
    assert!(shown.contains("#2 client 1 [20, 30] "), "{shown}");
}

#[test]
fn two_cas_applied_from_the_same_expected_value_are_not_linearizable() {
    use RegisterInput::{Cas, Write};
    let verdict = reg(vec![
        done(0, 0, 1, Write(0), RegisterOutput::Written),
        done(
            1,
            2,
            5,
            Cas { expect: 0, new: 1 },
            RegisterOutput::Cas(true),
        ),
        done(
            2,
            3,
            6,
            Cas { expect: 0, new: 2 },
            RegisterOutput::Cas(true),
        ),
    ]);
    assert!(
        matches!(verdict, Verdict::NotLinearizable(_)),
        "{verdict:?}"
    );
}

#[test]
fn a_read_of_a_value_never_written_is_not_linearizable() {
    use RegisterInput::{Read, Write};
    let verdict = reg(vec![
        done(0, 0, 10, Write(1), RegisterOutput::Written),
        done(1, 2, 8, Read, RegisterOutput::Read(Some(7))),
    ]);
    assert!(
        matches!(verdict, Verdict::NotLinearizable(_)),
        "{verdict:?}"
    );
}

#[test]
fn a_failed_cas_is_a_constraint_not_a_non_event() {
    use RegisterInput::{Cas, Write};
    let verdict = reg(vec![
        done(0, 0, 1, Write(1), RegisterOutput::Written),
        done(
            0,
            2,
            3,
            Cas { expect: 1, new: 2 },
            RegisterOutput::Cas(false),
        ),
    ]);
    assert!(
        matches!(verdict, Verdict::NotLinearizable(_)),
        "{verdict:?}"
    );
}

#[test]
fn concurrent_operations_may_take_effect_in_either_order() {
    use RegisterInput::{Read, Write};
    // The read overlaps both writes; an operation ending exactly when another
    // starts overlaps it too.
    let verdict = reg(vec![
        done(0, 0, 10, Write(1), RegisterOutput::Written),
        done(1, 1, 10, Write(2), RegisterOutput::Written),
        done(2, 10, 12, Read, RegisterOutput::Read(Some(1))),
    ]);
    assert_eq!(verdict, Verdict::Linearizable);
}

#[test]
fn a_pending_write_may_explain_a_read_or_never_happen() {
    use RegisterInput::{Read, Write};
    let seen = reg(vec![
        Operation::pending(0, 0, Write(1)),
        done(1, 5, 6, Read, RegisterOutput::Read(Some(1))),
        done(1, 7, 8, Read, RegisterOutput::Read(Some(1))),
    ]);
    assert_eq!(seen, Verdict::Linearizable);
    let never = reg(vec![
        Operation::pending(0, 0, Write(1)),
        done(1, 5, 6, Read, RegisterOutput::Read(None)),
    ]);
    assert_eq!(never, Verdict::Linearizable);
    // Once seen, it cannot be unseen.
    let flicker = reg(vec![
        Operation::pending(0, 0, Write(1)),
        done(1, 5, 6, Read, RegisterOutput::Read(Some(1))),
        done(1, 7, 8, Read, RegisterOutput::Read(None)),
    ]);
    assert!(
        matches!(flicker, Verdict::NotLinearizable(_)),
        "{flicker:?}"
    );
}

#[test]
fn a_read_of_a_value_from_a_write_called_only_later_is_not_linearizable() {
    use RegisterInput::{Read, Write};
    let verdict = reg(vec![
        done(0, 0, 5, Read, RegisterOutput::Read(Some(1))),
        Operation::pending(1, 10, Write(1)),
    ]);
    let Verdict::NotLinearizable(cx) = verdict else {
        panic!("a read saw the future: {verdict:?}");
    };
    assert_eq!(cx.key, None);
    assert!(cx.linearized.is_empty());
    assert_eq!(cx.stuck.iter().map(|s| s.index).collect::<Vec<_>>(), [0]);
}

#[test]
fn an_exhausted_step_budget_gives_unknown_never_a_pass() {
    use RegisterInput::{Read, Write};
    let history = History::from_ops((0..20).flat_map(|i| {
        [
            done(
                0,
                4 * i,
                4 * i + 3,
                Write(i as i64),
                RegisterOutput::Written,
            ),
            done(
                1,
                4 * i + 1,
                4 * i + 2,
                Read,
                RegisterOutput::Read(Some(i as i64)),
            ),
        ]
    }))
    .expect("valid history");
    let model = Register::<i64>::new();
    for max_steps in [0, 1, 10] {
        let options = CheckOptions {
            max_steps: Some(max_steps),
        };
        assert_eq!(check(&model, &history, &options), Verdict::Unknown);
        assert_eq!(
            check_by_key(&model, &history, |_| 0, &options),
            Verdict::Unknown
        );
    }
    let enough = CheckOptions {
        max_steps: Some(10_000),
    };
    assert_eq!(check(&model, &history, &enough), Verdict::Linearizable);
    // Nothing to search needs no steps.
    let empty = History::new();
    let none = CheckOptions { max_steps: Some(0) };
    assert_eq!(check(&model, &empty, &none), Verdict::Linearizable);
}

#[test]
fn keys_are_checked_independently() {
    use RegisterInput::{Read, Write};
    // As one register the read of 1 would be stale; per key it is not.
    let ops = vec![
        done(0, 0, 1, Write(1), RegisterOutput::Written),
        done(0, 2, 3, Write(2), RegisterOutput::Written),
        done(1, 4, 5, Read, RegisterOutput::Read(Some(1))),
    ];
    let history = History::from_ops(ops).expect("valid history");
    let model = Register::<i64>::new();
    let options = CheckOptions::default();
    assert!(matches!(
        check(&model, &history, &options),
        Verdict::NotLinearizable(_)
    ));
    let key = |input: &RegisterInput<i64>| match input {
        Write(2) => "b",
        _ => "a",
    };
    assert_eq!(
        check_by_key(&model, &history, key, &options),
        Verdict::Linearizable
    );
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(reg(Vec::new()), Verdict::Linearizable);
}

#[test]
fn vergent_kv_treats_deleted_and_never_written_as_one_state() {
    let op = |call, op, out| {
        Operation::returned(
            0,
            call,
            call + 1,
            VergentKvInput {
                key: b"k".to_vec(),
                op,
            },
            out,
        )
    };
    let cas = |expect, new: &[u8]| VergentOp::Cas {
        expect,
        new: Some(new.to_vec()),
    };
    let applied = |applied| VergentKvOutput::Cas { applied };
    let ok = History::from_ops([
        op(0, cas(Expect::Absent, b"a"), applied(true)),
        op(2, VergentOp::Delete, VergentKvOutput::Done),
        op(4, VergentOp::Get, VergentKvOutput::Value(None)),
        op(6, cas(Expect::Value(b"a".to_vec()), b"b"), applied(false)),
        op(8, cas(Expect::Absent, b"c"), applied(true)),
        op(
            10,
            VergentOp::Get,
            VergentKvOutput::Value(Some(b"c".to_vec())),
        ),
        op(12, cas(Expect::Any, b"d"), applied(true)),
    ])
    .expect("valid history");
    assert_eq!(
        check(&VergentKv, &ok, &CheckOptions::default()),
        Verdict::Linearizable
    );
    for bad in [
        op(20, cas(Expect::Any, b"e"), applied(false)),
        op(20, cas(Expect::Absent, b"e"), applied(true)),
        op(20, VergentOp::Get, VergentKvOutput::Value(None)),
    ] {
        let mut history = ok.clone();
        history.push(bad).expect("valid operation");
        let verdict = check(&VergentKv, &history, &CheckOptions::default());
        assert!(
            matches!(verdict, Verdict::NotLinearizable(_)),
            "{verdict:?}"
        );
    }
}

#[test]
fn events_complete_drop_or_leave_pending_their_operations() {
    let ev = |client, time, kind: EventKind<RegisterInput<i64>, RegisterOutput<i64>>| Event {
        client,
        time,
        kind,
    };
    let history = History::from_events([
        ev(0, 0, EventKind::Invoke(RegisterInput::Write(1))),
        ev(1, 1, EventKind::Invoke(RegisterInput::Read)),
        ev(2, 2, EventKind::Invoke(RegisterInput::Write(2))),
        ev(3, 3, EventKind::Invoke(RegisterInput::Write(3))),
        ev(0, 4, EventKind::Ok(RegisterOutput::Written)),
        ev(1, 5, EventKind::Fail),
        ev(2, 6, EventKind::Info),
        ev(1, 7, EventKind::Invoke(RegisterInput::Read)),
    ])
    .expect("valid log");
    let got: Vec<_> = history
        .ops()
        .iter()
        .map(|op| (op.client, op.call, op.ret))
        .collect();
    assert_eq!(
        got,
        [(0, 0, Some(4)), (2, 2, None), (3, 3, None), (1, 7, None)]
    );
}

#[test]
fn malformed_event_logs_and_operations_are_typed_errors() {
    let ev = |client, time, kind: EventKind<RegisterInput<i64>, RegisterOutput<i64>>| Event {
        client,
        time,
        kind,
    };
    assert_eq!(
        History::from_events([
            ev(0, 0, EventKind::Invoke(RegisterInput::Read)),
            ev(0, 1, EventKind::Invoke(RegisterInput::Read)),
        ]),
        Err(HistoryError::InvokeInFlight {
            event: 1,
            client: 0
        })
    );
    assert_eq!(
        History::from_events([ev(4, 0, EventKind::Info)]),
        Err(HistoryError::CompletionWithoutInvoke {
            event: 0,
            client: 4
        })
    );
    assert_eq!(
        History::from_events([
            ev(0, 5, EventKind::Invoke(RegisterInput::Read)),
            ev(0, 4, EventKind::Fail),
        ]),
        Err(HistoryError::TimeWentBackwards { event: 1, time: 4 })
    );
    assert_eq!(
        History::from_ops([done(
            0,
            5,
            4,
            RegisterInput::Read,
            RegisterOutput::Read(None)
        )]),
        Err(HistoryError::ReturnBeforeCall {
            index: 0,
            call: 5,
            ret: 4
        })
    );
    let mut half: Reg = Operation::pending(0, 0, RegisterInput::Read);
    half.output = Some(RegisterOutput::Read(None));
    // A return without an output is an unknown outcome with a deadline.
    let bounded: Reg = Operation::unknown_until(0, 0, 1, RegisterInput::Read);
    assert!(History::from_ops([bounded]).is_ok());
    assert_eq!(
        History::from_ops([half]),
        Err(HistoryError::HalfReturned { index: 0 })
    );
}
