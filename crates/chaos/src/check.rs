//! Checkers: each takes the history and/or the replicas' final state and
//! returns the violations it finds (empty when the property held).
//!
//! The guarantees checked are those of consistency `one` with last-writer-wins
//! by version: an acknowledged write is durable and is only ever superseded by
//! a greater version; replicas converge once faults stop; reads on one node
//! never go below the writes that node acknowledged; and a node with a wild
//! clock cannot drag the others' clocks along.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

use crate::history::{Event, Op, Outcome, Record, ReplicaState, Stamp};

/// The property a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checker {
    /// An acknowledged put is neither the final value nor superseded by a greater version.
    LostWrite,
    /// Replicas hold different contents after the faults stopped and the cluster settled.
    Convergence,
    /// An acknowledged delete was undone by an older value.
    Resurrection,
    /// A value was read or survived that no put wrote, or that a failed put wrote.
    UnwrittenValue,
    /// A node served a version older than a write it had acknowledged.
    NodeMonotonic,
    /// A node's clock ran past real time by more than the allowed offset.
    ClockPoisoning,
    /// A key's strong operations admit no linearization.
    Linearizable,
    /// A strong key's converged value differs from its final SERIAL read.
    StrongFinal,
    /// A read at `quorum`/`all` returned something older than a write
    /// acknowledged at `quorum`/`all` before the read started.
    LevelRead,
    /// A read at `quorum`/`all` returned something older than an earlier one had.
    LevelMonotonic,
    /// A strong operation started after a write was acknowledged at
    /// `quorum`/`all` and did not observe it or anything newer.
    LevelObserved,
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LostWrite => "lost-write",
            Self::Convergence => "convergence",
            Self::Resurrection => "resurrection",
            Self::UnwrittenValue => "unwritten-value",
            Self::NodeMonotonic => "node-monotonic",
            Self::ClockPoisoning => "clock-poisoning",
            Self::Linearizable => "linearizable",
            Self::StrongFinal => "strong-final",
            Self::LevelRead => "level-read",
            Self::LevelMonotonic => "level-monotonic",
            Self::LevelObserved => "level-observed",
        })
    }
}

/// One broken guarantee, with what shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which checker found it.
    pub checker: Checker,
    /// The key concerned, if one.
    pub key: Option<String>,
    /// What was expected and what was found.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "[{}] key {k:?}: {}", self.checker, self.detail),
            None => write!(f, "[{}] {}", self.checker, self.detail),
        }
    }
}

fn violation(checker: Checker, key: &str, detail: String) -> Violation {
    Violation {
        checker,
        key: Some(key.to_string()),
        detail,
    }
}

fn show(record: Option<&Record>) -> String {
    match record {
        None => "no record".into(),
        Some(Record {
            value: Some(v),
            version,
        }) => format!("{v:?} at {version}"),
        Some(Record {
            value: None,
            version,
        }) => format!("tombstone at {version}"),
    }
}

/// Convergence: every replica holds the same records (values, tombstones and
/// versions). Returns the common state, or one violation per differing key.
pub fn converged(states: &BTreeMap<String, ReplicaState>) -> Result<ReplicaState, Vec<Violation>> {
    let Some((_, first)) = states.iter().next() else {
        return Ok(ReplicaState::new());
    };
    let keys: BTreeSet<&String> = states.values().flat_map(|s| s.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let mine = first.get(key);
        if states.values().all(|s| s.get(key) == mine) {
            continue;
        }
        let per_node: Vec<String> = states
            .iter()
            .map(|(node, s)| format!("{node}: {}", show(s.get(key))))
            .collect();
        out.push(violation(
            Checker::Convergence,
            key,
            format!("replicas differ: {}", per_node.join("; ")),
        ));
    }
    if out.is_empty() {
        Ok(first.clone())
    } else {
        Err(out)
    }
}

/// No lost acknowledged write: every put acknowledged with version `h` is, in
/// the final state, either that very value at `h` or superseded by a version
/// greater than `h`.
pub fn lost_writes(history: &[Event], final_state: &ReplicaState) -> Vec<Violation> {
    acked_writes_kept(history, final_state, Op::Put, Checker::LostWrite)
}

/// No resurrection: every delete acknowledged with version `d` leaves, in the
/// final state, its tombstone at `d` or something greater, never an older value.
pub fn resurrection(history: &[Event], final_state: &ReplicaState) -> Vec<Violation> {
    acked_writes_kept(history, final_state, Op::Delete, Checker::Resurrection)
}

/// Whether a delete of `key` that may have taken effect (acknowledged above
/// `at`, or of unknown outcome and version) could have superseded a write at
/// `at` and been purged since.
fn maybe_deleted_after(history: &[Event], key: &str, at: &Stamp) -> bool {
    history.iter().any(|d| {
        d.f == Op::Delete
            && d.key == key
            && match d.outcome {
                Outcome::Ok => d.version.as_ref().is_some_and(|v| v > at),
                Outcome::Info => true,
                Outcome::Invoke | Outcome::Fail => false,
            }
    })
}

/// Every acknowledged `f` (put or delete) is in the final state as written
/// (same version, same value or tombstone) or superseded by a greater version.
/// A key with nothing left was purged: that keeps a delete, and a put only
/// when a later delete may have superseded it.
fn acked_writes_kept(
    history: &[Event],
    final_state: &ReplicaState,
    f: Op,
    checker: Checker,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for e in history.iter().filter(|e| e.is_acked_write() && e.f == f) {
        let what = match &e.value {
            Some(v) => format!("put of {v:?}"),
            None => "delete".to_string(),
        };
        let Some(at) = &e.version else {
            out.push(violation(
                checker,
                &e.key,
                format!("{what} acknowledged without a version"),
            ));
            continue;
        };
        let found = final_state.get(&e.key);
        let kept = match found {
            None => f == Op::Delete || maybe_deleted_after(history, &e.key, at),
            Some(r) if r.version > *at => true,
            // A put leaves its value, a delete its tombstone (value None).
            Some(r) => r.version == *at && r.value == e.value,
        };
        if !kept {
            out.push(violation(
                checker,
                &e.key,
                format!(
                    "{what} acknowledged by {} at {at}; final state: {}",
                    e.node,
                    show(found)
                ),
            ));
        }
    }
    out
}

/// No unwritten values: every value read, and every value in the final
/// state, was written by a put to that key that did not certainly fail.
pub fn unwritten_values(history: &[Event], final_state: &ReplicaState) -> Vec<Violation> {
    // (key, value) → whether some attempt may have written it.
    let mut attempts: HashMap<(&str, &str), bool> = HashMap::new();
    for e in history.iter().filter(|e| e.f == Op::Put) {
        let Some(v) = e.value.as_deref() else {
            continue;
        };
        let slot = attempts.entry((&e.key, v)).or_insert(true);
        if e.outcome == Outcome::Fail {
            *slot = false;
        }
    }
    let mut out = Vec::new();
    let mut judge = |key: &str, value: &str, seen: String| match attempts.get(&(key, value)) {
        Some(true) => {}
        Some(false) => out.push(violation(
            Checker::UnwrittenValue,
            key,
            format!("{seen} {value:?}, whose put was refused"),
        )),
        None => out.push(violation(
            Checker::UnwrittenValue,
            key,
            format!("{seen} {value:?}, which no put to this key wrote"),
        )),
    };
    for e in history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok && e.f == Op::Get)
    {
        if let Some(v) = &e.value {
            judge(&e.key, v, format!("a read on {} returned", e.node));
        }
    }
    for (key, r) in final_state {
        if let Some(v) = &r.value {
            judge(key, v, "the final state holds".into());
        }
    }
    out
}

/// Per-node monotonic reads: a value read from node N carries a version no
/// older than any write to that key that N acknowledged before the read was
/// sent. Acknowledged means durable, so this holds across `kill -9`.
pub fn node_monotonic(history: &[Event]) -> Vec<Violation> {
    let mut floor: HashMap<(&str, &str), &Stamp> = HashMap::new();
    // The floor each process's pending read must respect.
    let mut pending: HashMap<u32, Option<&Stamp>> = HashMap::new();
    let mut out = Vec::new();
    for e in history {
        let at = (e.node.as_str(), e.key.as_str());
        match (e.outcome, e.f) {
            (Outcome::Invoke, Op::Get) => {
                pending.insert(e.process, floor.get(&at).copied());
            }
            (Outcome::Ok, Op::Get) => {
                let Some(Some(min)) = pending.remove(&e.process) else {
                    continue;
                };
                // An absent key may be a newer delete from elsewhere; only a
                // value carries a version to compare.
                if let (Some(v), Some(read)) = (&e.value, &e.version)
                    && read < min
                {
                    out.push(violation(
                        Checker::NodeMonotonic,
                        &e.key,
                        format!(
                            "{} returned {v:?} at {read} after acknowledging a write at {min}",
                            e.node
                        ),
                    ));
                }
            }
            (Outcome::Ok, Op::Put | Op::Delete) => {
                if let Some(v) = &e.version {
                    let slot = floor.entry(at).or_insert(v);
                    if v > *slot {
                        *slot = v;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Reads at `quorum`/`all` against writes at `quorum`/`all` and each other,
/// in real time (the client's wall clock, one machine): a read invoked after
/// such a write was acknowledged returns it or something newer
/// ([`Checker::LevelRead`]), and a read invoked after another returned
/// never returns an older version ([`Checker::LevelMonotonic`]).
///
/// An absent answer carries no version: it is held against an acknowledged
/// put only when no delete of the key could be newer (none acknowledged with
/// a greater version, none of unknown outcome), and against an earlier read's
/// value likewise.
pub fn level_reads(history: &[Event]) -> Vec<Violation> {
    // Per key: acknowledged level writes (ack time, version, delete?), and
    // deletes whose outcome is unknown (their version too).
    let mut acked: HashMap<&str, Vec<(u64, &Stamp, bool)>> = HashMap::new();
    let mut unknown_delete: BTreeSet<&str> = BTreeSet::new();
    for e in history {
        if e.f == Op::Delete && e.outcome == Outcome::Info {
            unknown_delete.insert(e.key.as_str());
        }
        if e.level.is_some()
            && e.outcome == Outcome::Ok
            && matches!(e.f, Op::Put | Op::Delete)
            && let Some(v) = &e.version
        {
            acked
                .entry(e.key.as_str())
                .or_default()
                .push((e.wall_ms, v, e.f == Op::Delete));
        }
    }
    // A delete newer than `v` may explain an absent answer.
    let newer_delete = |key: &str, v: &Stamp| {
        unknown_delete.contains(key)
            || acked
                .get(key)
                .is_some_and(|w| w.iter().any(|(_, d, del)| *del && *d > v))
    };
    let mut invoked: HashMap<u32, u64> = HashMap::new();
    let mut answered: HashMap<&str, Vec<(u64, Option<&Stamp>)>> = HashMap::new();
    let mut out = Vec::new();
    for e in history {
        if e.f != Op::Get || e.level.is_none() {
            continue;
        }
        match e.outcome {
            Outcome::Invoke => {
                invoked.insert(e.process, e.wall_ms);
            }
            Outcome::Ok => {
                let Some(start) = invoked.remove(&e.process) else {
                    continue;
                };
                let read = e.version.as_ref().filter(|_| e.value.is_some());
                for (at, w, deleted) in acked.get(e.key.as_str()).into_iter().flatten() {
                    if *at >= start {
                        continue;
                    }
                    let stale = match read {
                        Some(r) => r < *w,
                        None => !*deleted && !newer_delete(&e.key, w),
                    };
                    if stale {
                        out.push(violation(
                            Checker::LevelRead,
                            &e.key,
                            format!(
                                "{} answered {} at {:?}, older than the {} at {w} acknowledged {} ms before the read began",
                                e.node,
                                read.map_or("absent".to_string(), ToString::to_string),
                                e.level,
                                if *deleted { "delete" } else { "write" },
                                start - at
                            ),
                        ));
                    }
                }
                for (at, earlier) in answered.get(e.key.as_str()).into_iter().flatten() {
                    if *at >= start {
                        continue;
                    }
                    let back = match (read, earlier) {
                        (Some(r), Some(p)) => r < *p,
                        (None, Some(p)) => !newer_delete(&e.key, p),
                        _ => false,
                    };
                    if back {
                        out.push(violation(
                            Checker::LevelMonotonic,
                            &e.key,
                            format!(
                                "{} answered {} after an earlier level read returned {}",
                                e.node,
                                read.map_or("absent".to_string(), ToString::to_string),
                                earlier.map_or("absent".to_string(), ToString::to_string),
                            ),
                        ));
                    }
                }
                answered
                    .entry(e.key.as_str())
                    .or_default()
                    .push((e.wall_ms, read));
            }
            _ => {
                invoked.remove(&e.process);
            }
        }
    }
    out
}

/// A node's clock read at a wall-clock time (from its status).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClockReading {
    /// The node.
    pub node: String,
    /// Its HLC.
    pub hlc: u64,
    /// Wall-clock time when the reading came back, ms since the Unix epoch.
    pub wall_ms: u64,
}

/// A span of wall-clock time during which a node's clock was wrong on
/// purpose (from the skew until its stamps could have caught up after the heal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkewWindow {
    /// The node.
    pub node: String,
    /// Start, ms since the Unix epoch.
    pub from_ms: u64,
    /// End, ms since the Unix epoch.
    pub until_ms: u64,
}

/// No clock poisoning: a node whose own clock is right never stamps a write,
/// or reports an HLC, beyond real time plus `max_offset_ms` (and `slack_ms`
/// for scheduling), even while a peer's clock is far ahead. A node is exempt
/// inside its own [`SkewWindow`]s: its clock was wrong on purpose.
pub fn clock_poisoning(
    history: &[Event],
    readings: &[ClockReading],
    skews: &[SkewWindow],
    max_offset_ms: u64,
    slack_ms: u64,
) -> Vec<Violation> {
    let exempt = |node: &str, at: u64| {
        skews
            .iter()
            .any(|w| w.node == node && (w.from_ms..=w.until_ms).contains(&at))
    };
    let bound = max_offset_ms + slack_ms;
    let mut out = Vec::new();
    for e in history
        .iter()
        .filter(|e| e.is_acked_write() && !exempt(&e.node, e.wall_ms))
    {
        if let Some(v) = &e.version
            && v.physical_ms() > e.wall_ms + bound
        {
            out.push(violation(
                Checker::ClockPoisoning,
                &e.key,
                format!(
                    "{} stamped a write at {v}, {} ms ahead of real time (bound {bound} ms)",
                    e.node,
                    v.physical_ms() - e.wall_ms
                ),
            ));
        }
    }
    for r in readings.iter().filter(|r| !exempt(&r.node, r.wall_ms)) {
        let physical = vergent_hlc::Timestamp::from_u64(r.hlc).physical_ms();
        if physical > r.wall_ms + bound {
            out.push(Violation {
                checker: Checker::ClockPoisoning,
                key: None,
                detail: format!(
                    "{}'s clock reads {}, {} ms ahead of real time (bound {bound} ms)",
                    r.node,
                    vergent_hlc::Timestamp::from_u64(r.hlc),
                    physical - r.wall_ms
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Each checker is fed a crafted history that breaks its property (it must
    //! report it) and one that keeps it (it must stay quiet).

    use super::*;

    const MS: u64 = 1_800_000_000_000;

    fn stamp(ms: u64, origin: &str) -> Stamp {
        Stamp {
            hlc: vergent_hlc::Timestamp::new(ms, 0).as_u64(),
            origin: origin.into(),
        }
    }

    fn ev(
        process: u32,
        outcome: Outcome,
        f: Op,
        node: &str,
        key: &str,
        value: Option<&str>,
        version: Option<Stamp>,
    ) -> Event {
        Event {
            process,
            outcome,
            f,
            node: node.into(),
            key: key.into(),
            value: value.map(str::to_string),
            version,
            wall_ms: MS,
            error: None,
            level: None,
        }
    }

    /// A level operation by `process` invoked at `from` and answered at `to` (ms).
    #[allow(clippy::too_many_arguments)]
    fn at_level(
        process: u32,
        f: Op,
        key: &str,
        value: Option<&str>,
        version: Option<Stamp>,
        outcome: Outcome,
        from: u64,
        to: u64,
    ) -> [Event; 2] {
        let mut inv = ev(process, Outcome::Invoke, f, "n1", key, value, None);
        inv.wall_ms = MS + from;
        inv.level = Some(crate::history::Level::Quorum);
        let mut done = ev(process, outcome, f, "n1", key, value, version);
        done.wall_ms = MS + to;
        done.level = Some(crate::history::Level::Quorum);
        [inv, done]
    }

    #[test]
    fn a_level_read_after_an_acknowledged_level_write_sees_it_or_newer() {
        let mut h = Vec::new();
        h.extend(at_level(
            1,
            Op::Put,
            "k",
            Some("a"),
            Some(stamp(MS + 1, "n1")),
            Outcome::Ok,
            0,
            5,
        ));
        h.extend(at_level(
            2,
            Op::Get,
            "k",
            Some("a"),
            Some(stamp(MS + 1, "n1")),
            Outcome::Ok,
            10,
            12,
        ));
        h.extend(at_level(
            3,
            Op::Get,
            "k",
            Some("b"),
            Some(stamp(MS + 9, "n2")),
            Outcome::Ok,
            13,
            14,
        ));
        // Concurrent with the write: may miss it.
        h.extend(at_level(4, Op::Get, "k", None, None, Outcome::Ok, 3, 4));
        assert!(level_reads(&h).is_empty(), "{:?}", level_reads(&h));
    }

    #[test]
    fn a_level_read_that_misses_an_earlier_acknowledged_write_or_goes_back_is_reported() {
        let mut h = Vec::new();
        h.extend(at_level(
            1,
            Op::Put,
            "k",
            Some("a"),
            Some(stamp(MS + 5, "n1")),
            Outcome::Ok,
            0,
            5,
        ));
        h.extend(at_level(2, Op::Get, "k", None, None, Outcome::Ok, 10, 12));
        let found = level_reads(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].checker, Checker::LevelRead);

        let mut m = Vec::new();
        m.extend(at_level(
            1,
            Op::Get,
            "k",
            Some("b"),
            Some(stamp(MS + 9, "n2")),
            Outcome::Ok,
            0,
            2,
        ));
        m.extend(at_level(
            2,
            Op::Get,
            "k",
            Some("a"),
            Some(stamp(MS + 5, "n1")),
            Outcome::Ok,
            3,
            4,
        ));
        let found = level_reads(&m);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].checker, Checker::LevelMonotonic);
    }

    #[test]
    fn an_absent_level_read_is_excused_by_a_delete_that_may_be_newer() {
        let mut h = Vec::new();
        h.extend(at_level(
            1,
            Op::Put,
            "k",
            Some("a"),
            Some(stamp(MS + 5, "n1")),
            Outcome::Ok,
            0,
            5,
        ));
        h.extend(at_level(
            2,
            Op::Delete,
            "k",
            None,
            None,
            Outcome::Info,
            1,
            9,
        ));
        h.extend(at_level(3, Op::Get, "k", None, None, Outcome::Ok, 10, 12));
        assert!(level_reads(&h).is_empty(), "{:?}", level_reads(&h));
        // ONE reads are not held to it.
        let mut one = Vec::new();
        one.extend(at_level(
            1,
            Op::Put,
            "k",
            Some("a"),
            Some(stamp(MS + 5, "n1")),
            Outcome::Ok,
            0,
            5,
        ));
        let mut get = at_level(2, Op::Get, "k", None, None, Outcome::Ok, 10, 12);
        get[0].level = None;
        get[1].level = None;
        one.extend(get);
        assert!(level_reads(&one).is_empty());
    }

    fn put_ok(node: &str, key: &str, value: &str, at: Stamp) -> [Event; 2] {
        [
            ev(1, Outcome::Invoke, Op::Put, node, key, Some(value), None),
            ev(1, Outcome::Ok, Op::Put, node, key, Some(value), Some(at)),
        ]
    }

    fn delete_ok(node: &str, key: &str, at: Stamp) -> [Event; 2] {
        [
            ev(1, Outcome::Invoke, Op::Delete, node, key, None, None),
            ev(1, Outcome::Ok, Op::Delete, node, key, None, Some(at)),
        ]
    }

    fn state(records: &[(&str, Option<&str>, Stamp)]) -> ReplicaState {
        records
            .iter()
            .map(|(k, v, s)| {
                (
                    k.to_string(),
                    Record {
                        value: v.map(str::to_string),
                        version: s.clone(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn lost_writes_reports_an_acked_put_that_is_missing_or_older_in_the_final_state() {
        let mut h = Vec::new();
        h.extend(put_ok("n1", "a", "a1", stamp(MS + 10, "n1")));
        h.extend(put_ok("n2", "b", "b1", stamp(MS + 20, "n2")));
        h.extend(put_ok("n3", "c", "c1", stamp(MS + 30, "n3")));
        // a: missing; b: an older version survived; c: same version, other value.
        let fin = state(&[
            ("b", Some("b0"), stamp(MS + 5, "n1")),
            ("c", Some("cX"), stamp(MS + 30, "n3")),
        ]);
        let found = lost_writes(&h, &fin);
        let keys: Vec<_> = found.iter().filter_map(|v| v.key.as_deref()).collect();
        assert_eq!(keys, ["a", "b", "c"], "{found:#?}");
        assert!(found.iter().all(|v| v.checker == Checker::LostWrite));
    }

    #[test]
    fn lost_writes_accepts_the_value_itself_or_a_greater_version_even_a_tombstone() {
        let mut h = Vec::new();
        h.extend(put_ok("n1", "a", "a1", stamp(MS + 10, "n1")));
        h.extend(put_ok("n1", "b", "b1", stamp(MS + 10, "n1")));
        h.extend(put_ok("n1", "c", "c1", stamp(MS + 10, "n1")));
        // An indeterminate put must not count as acknowledged.
        h.push(ev(2, Outcome::Info, Op::Put, "n2", "d", Some("d1"), None));
        let fin = state(&[
            ("a", Some("a1"), stamp(MS + 10, "n1")),
            ("b", Some("b2"), stamp(MS + 10, "n2")),
            ("c", None, stamp(MS + 11, "n3")),
        ]);
        assert_eq!(lost_writes(&h, &fin), []);
    }

    #[test]
    fn resurrection_reports_an_older_value_surviving_an_acked_delete() {
        let mut h = Vec::new();
        h.extend(put_ok("n1", "k", "old", stamp(MS + 1, "n1")));
        h.extend(delete_ok("n2", "k", stamp(MS + 2, "n2")));
        let fin = state(&[("k", Some("old"), stamp(MS + 1, "n1"))]);
        let found = resurrection(&h, &fin);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].checker, Checker::Resurrection);
        // A newer put after the delete is fine, as is the tombstone itself.
        let newer = state(&[("k", Some("new"), stamp(MS + 3, "n3"))]);
        assert_eq!(resurrection(&h, &newer), []);
        let tomb = state(&[("k", None, stamp(MS + 2, "n2"))]);
        assert_eq!(resurrection(&h, &tomb), []);
    }

    #[test]
    fn a_purged_tombstone_keeps_its_delete_and_the_puts_it_superseded_but_no_others() {
        let mut h = Vec::new();
        h.extend(put_ok("n1", "k", "old", stamp(MS + 1, "n1")));
        h.extend(delete_ok("n2", "k", stamp(MS + 2, "n2")));
        let purged = state(&[]);
        assert_eq!(resurrection(&h, &purged), []);
        assert_eq!(lost_writes(&h, &purged), []);
        // A put after the delete cannot have been purged away.
        h.extend(put_ok("n3", "k", "new", stamp(MS + 3, "n3")));
        let lost = lost_writes(&h, &purged);
        assert_eq!(lost.len(), 1, "{lost:#?}");
        assert_eq!(lost[0].checker, Checker::LostWrite);
    }

    #[test]
    fn unwritten_values_reports_phantom_reads_and_values_of_refused_puts() {
        let mut h = Vec::new();
        h.extend(put_ok("n1", "k", "real", stamp(MS + 1, "n1")));
        h.push(ev(
            2,
            Outcome::Invoke,
            Op::Put,
            "n2",
            "k",
            Some("refused"),
            None,
        ));
        h.push(ev(
            2,
            Outcome::Fail,
            Op::Put,
            "n2",
            "k",
            Some("refused"),
            None,
        ));
        h.push(ev(3, Outcome::Invoke, Op::Get, "n3", "k", None, None));
        h.push(ev(
            3,
            Outcome::Ok,
            Op::Get,
            "n3",
            "k",
            Some("phantom"),
            Some(stamp(MS + 1, "n1")),
        ));
        let fin = state(&[("k", Some("refused"), stamp(MS + 4, "n2"))]);
        let found = unwritten_values(&h, &fin);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].detail.contains("phantom"));
        assert!(found[1].detail.contains("refused"));
        let good = state(&[("k", Some("real"), stamp(MS + 1, "n1"))]);
        assert_eq!(unwritten_values(&h[..4], &good), []);
    }

    #[test]
    fn node_monotonic_reports_a_read_below_a_write_the_same_node_acknowledged() {
        let mut h = Vec::new();
        h.extend(put_ok("n1", "k", "v1", stamp(MS + 1, "n1")));
        h.extend(put_ok("n1", "k", "v2", stamp(MS + 2, "n1")));
        // After a restart n1 serves v1 again: v2 was acknowledged and lost.
        h.push(ev(2, Outcome::Invoke, Op::Get, "n1", "k", None, None));
        h.push(ev(
            2,
            Outcome::Ok,
            Op::Get,
            "n1",
            "k",
            Some("v1"),
            Some(stamp(MS + 1, "n1")),
        ));
        let found = node_monotonic(&h);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].checker, Checker::NodeMonotonic);
    }

    #[test]
    fn node_monotonic_allows_stale_reads_from_other_nodes_and_concurrent_reads() {
        let mut h = Vec::new();
        // Read on n1 invoked before the put completes: may see the old value.
        h.push(ev(2, Outcome::Invoke, Op::Get, "n1", "k", None, None));
        h.extend(put_ok("n1", "k", "v2", stamp(MS + 2, "n1")));
        h.push(ev(
            2,
            Outcome::Ok,
            Op::Get,
            "n1",
            "k",
            Some("v1"),
            Some(stamp(MS + 1, "n1")),
        ));
        // n2 has not received it yet: allowed at consistency one.
        h.push(ev(3, Outcome::Invoke, Op::Get, "n2", "k", None, None));
        h.push(ev(
            3,
            Outcome::Ok,
            Op::Get,
            "n2",
            "k",
            Some("v1"),
            Some(stamp(MS + 1, "n1")),
        ));
        assert_eq!(node_monotonic(&h), []);
    }

    #[test]
    fn converged_reports_each_key_where_replicas_differ_and_returns_the_common_state() {
        let same = state(&[("a", Some("1"), stamp(MS, "n1"))]);
        let mut states = BTreeMap::new();
        states.insert("n1".to_string(), same.clone());
        states.insert("n2".to_string(), same.clone());
        assert_eq!(converged(&states), Ok(same.clone()));

        // n3 misses "a" and has an extra tombstone "b".
        states.insert("n3".to_string(), state(&[("b", None, stamp(MS, "n3"))]));
        let found = converged(&states).expect_err("diverged");
        let keys: Vec<_> = found.iter().filter_map(|v| v.key.as_deref()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert!(found[0].detail.contains("n3: no record"), "{}", found[0]);
    }

    #[test]
    fn clock_poisoning_reports_a_correct_node_stamping_or_reading_far_ahead() {
        let mut h = Vec::new();
        // n2 took n1's skewed clock: its write is 3 s ahead of real time.
        let mut ok = put_ok("n2", "k", "v", stamp(MS + 3_000, "n2"));
        ok[1].wall_ms = MS;
        h.extend(ok);
        let readings = [
            ClockReading {
                node: "n3".into(),
                hlc: vergent_hlc::Timestamp::new(MS + 2_000, 0).as_u64(),
                wall_ms: MS,
            },
            ClockReading {
                node: "n1".into(),
                hlc: vergent_hlc::Timestamp::new(MS + 9_000, 0).as_u64(),
                wall_ms: MS,
            },
        ];
        let skews = [SkewWindow {
            node: "n1".into(),
            from_ms: MS - 1_000,
            until_ms: MS + 1_000,
        }];
        let found = clock_poisoning(&h, &readings, &skews, 500, 250);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].detail.contains("n2 stamped"));
        assert!(found[1].detail.contains("n3's clock"));

        // Within the bound (and the skewed node inside its window) is fine.
        let mut fine = put_ok("n2", "k", "v", stamp(MS + 600, "n2"));
        fine[1].wall_ms = MS;
        assert_eq!(clock_poisoning(&fine, &readings[1..], &skews, 500, 250), []);

        // The skewed node outside its window is held to the bound like any other.
        let late = [ClockReading {
            wall_ms: MS + 5_000,
            ..readings[1].clone()
        }];
        assert_eq!(clock_poisoning(&[], &late, &skews, 500, 250).len(), 1);
    }
}
