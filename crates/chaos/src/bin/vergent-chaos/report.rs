//! The run's report: what was done, what was injected, what was checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use vergent_chaos::check::{Checker, SkewWindow, Violation};
use vergent_chaos::history::{Event, Op, Outcome};
use vergent_chaos::schedule::FaultKind;
use vergent_chaos::strong::StrongEvent;

use crate::Args;
use crate::nemesis::{Applied, SelfExit};

/// Everything the report shows.
pub(crate) struct Report<'a> {
    pub(crate) seed: u64,
    pub(crate) args: &'a Args,
    pub(crate) kinds: &'a [FaultKind],
    pub(crate) skipped: &'a [String],
    pub(crate) events: &'a [Event],
    pub(crate) applied: &'a [Applied],
    pub(crate) self_exits: &'a [SelfExit],
    pub(crate) proxy_totals: (u64, u64, u64),
    pub(crate) skew_windows: &'a [SkewWindow],
    pub(crate) workload_time: Duration,
    pub(crate) converge_time: Duration,
    pub(crate) converged: bool,
    pub(crate) final_keys: usize,
    pub(crate) violations: &'a [Violation],
    pub(crate) history_path: &'a Path,
    /// The strong workload's history (empty for the eventual one).
    pub(crate) strong_events: &'a [StrongEvent],
    /// Where it was written, when the workload was strong.
    pub(crate) strong_path: Option<&'a Path>,
    pub(crate) anti_entropy: AntiEntropy,
}

/// What the nodes' logs say about purges and the log, summed over every
/// node and every life of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AntiEntropy {
    /// Tombstones and expired values purged.
    pub(crate) purged: u64,
    /// Purge sweeps that purged something.
    pub(crate) purge_sweeps: u64,
    /// Log replays: a sender starting over from the beginning of its
    /// retained log for a peer whose data dir is new (wiped).
    pub(crate) log_replays: u64,
    /// Replicated records a receiver left to repair as older than the log's
    /// horizon.
    pub(crate) too_old_for_log: u64,
    /// Senders that skipped a truncated gap of their log.
    pub(crate) truncated_gaps: u64,
    /// Repair sessions that repaired something.
    pub(crate) repairs: u64,
}

impl AntiEntropy {
    /// Adds what one node's log says.
    pub(crate) fn add_log(&mut self, text: &str) {
        for line in text.lines() {
            if line.contains("purged tombstones every member confirmed") {
                self.purge_sweeps += 1;
                self.purged += field(line, "purged").unwrap_or(0);
            } else if line.contains("its cursor restarts at 0") && line.contains("repl/sent/") {
                // A sender whose peer came back with a new store: the peer
                // gets the whole retained log again.
                self.log_replays += 1;
            } else if line.contains("older than the log's horizon") {
                self.too_old_for_log += field(line, "skipped").unwrap_or(1);
            } else if line.contains("peer is behind the truncated log") {
                self.truncated_gaps += 1;
            } else if line.contains("repair session repaired differences") {
                self.repairs += 1;
            }
        }
    }
}

/// The number after `name=` in a text log line (or `"name":` in JSON).
fn field(line: &str, name: &str) -> Option<u64> {
    let rest = line
        .split_once(&format!("{name}="))
        .or_else(|| line.split_once(&format!("\"{name}\":")))?
        .1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// At most this many violations are printed per checker.
const SHOWN: usize = 20;

impl Report<'_> {
    /// Whether every check passed and no node crashed on its own.
    pub(crate) fn pass(&self) -> bool {
        self.violations.is_empty() && self.self_exits.iter().all(|e| e.expected)
    }

    /// The command that replays this run.
    fn replay(&self) -> String {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        let a = self.args;
        let mut cmd = format!(
            "cargo xtask chaos --workload {} --nodes {} --duration {} --seed {} --faults {}",
            a.workload.name(),
            a.nodes,
            humantime::format_duration(a.duration),
            self.seed,
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(",")
            }
        );
        // Every other setting that shapes the run, so the replay is the run.
        cmd.push_str(&format!(
            " --clients {} --keys {} --rate {}",
            a.clients(),
            a.keys(),
            a.rate()
        ));
        if a.unsafe_quorum_of_one {
            cmd.push_str(" --unsafe-quorum-of-one");
        }
        if a.unsafe_levels_of_one {
            cmd.push_str(" --unsafe-levels-of-one");
        }
        if let Some(g) = a.tombstone_grace {
            cmd.push_str(&format!(
                " --tombstone-grace {}",
                humantime::format_duration(g)
            ));
        }
        cmd
    }

    /// Markdown text.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        let verdict = if self.pass() { "PASS" } else { "FAIL" };
        let _ = writeln!(s, "# vergent chaos run: {verdict}\n");
        let _ = writeln!(
            s,
            "seed {}, {} nodes, {} workload {:.1} s, {} clients on {} keys",
            self.seed,
            self.args.nodes,
            self.args.workload.name(),
            self.workload_time.as_secs_f64(),
            self.args.clients(),
            self.args.keys()
        );
        if self.args.unsafe_quorum_of_one {
            let _ = writeln!(
                s,
                "\n**nodes ran the broken core (`--unsafe-quorum-of-one`): this run must FAIL**"
            );
        }
        if self.args.unsafe_levels_of_one {
            let _ = writeln!(
                s,
                "\n**nodes ran the broken level tracker (`--unsafe-levels-of-one`): this run must FAIL**"
            );
        }
        let _ = writeln!(s, "replay: `{}`\n", self.replay());
        for skip in self.skipped {
            let _ = writeln!(s, "- skipped {skip}");
        }

        // Operations.
        let _ = writeln!(s, "\n## Operations\n");
        let eventual_ops: &[Op] = if self.events.is_empty() && !self.strong_events.is_empty() {
            &[]
        } else {
            &[Op::Put, Op::Get, Op::Delete]
        };
        if !eventual_ops.is_empty() {
            let _ = writeln!(s, "| op | invoked | ok | fail | info (indeterminate) |");
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        }
        for &op in eventual_ops {
            let count = |o: Outcome| {
                self.events
                    .iter()
                    .filter(|e| e.f == op && e.outcome == o)
                    .count()
            };
            let _ = writeln!(
                s,
                "| {op:?} | {} | {} | {} | {} |",
                count(Outcome::Invoke),
                count(Outcome::Ok),
                count(Outcome::Fail),
                count(Outcome::Info)
            );
        }
        if !self.strong_events.is_empty() {
            let _ = writeln!(
                s,
                "strong operations (fail: certainly not applied; info: unknown):\n"
            );
            let _ = writeln!(
                s,
                "| op | invoked | ok | ok (applied) | ok (not applied) | fail | info (unknown) |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
            for (op, c) in vergent_chaos::strong::counts(self.strong_events) {
                let n = |name: &str| c.get(name).copied().unwrap_or(0);
                let _ = writeln!(
                    s,
                    "| {op:?} | {} | {} | {} | {} | {} | {} |",
                    n("invoked"),
                    n("ok"),
                    n("ok (applied)"),
                    n("ok (not applied)"),
                    n("fail"),
                    n("info")
                );
            }
        }
        let mut by_level: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
        for e in self.strong_events.iter().filter(|e| e.f.is_eventual()) {
            let level = match e.level {
                None => "one",
                Some(vergent_chaos::history::Level::Quorum) => "quorum",
                Some(vergent_chaos::history::Level::All) => "all",
            };
            let slot = match e.outcome {
                Outcome::Invoke => 0,
                Outcome::Ok => 1,
                Outcome::Fail => 2,
                Outcome::Info => 3,
            };
            by_level.entry(level).or_default()[slot] += 1;
        }
        if !by_level.is_empty() {
            let _ = writeln!(s, "\neventual writes on the strong keys, by level:\n");
            let _ = writeln!(s, "| level | invoked | ok | fail | info (unknown) |");
            let _ = writeln!(s, "|---|---:|---:|---:|---:|");
            for (level, [i, o, f, u]) in &by_level {
                let _ = writeln!(s, "| {level} | {i} | {o} | {f} | {u} |");
            }
        }
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        let strong_errors = self.strong_events.iter().filter_map(|e| e.error.as_deref());
        for e in self
            .events
            .iter()
            .filter_map(|e| e.error.as_deref())
            .chain(strong_errors)
        {
            let kind = e.split(": ").next().unwrap_or(e).trim().to_string();
            *errors.entry(kind).or_default() += 1;
        }
        if !errors.is_empty() {
            let _ = writeln!(s, "\nerrors by kind:");
            for (kind, n) in &errors {
                let _ = writeln!(s, "- {n} × {kind}");
            }
        }

        // Faults.
        let _ = writeln!(s, "\n## Faults injected ({})\n", self.applied.len());
        let _ = writeln!(s, "| at | held | fault |");
        let _ = writeln!(s, "|---:|---:|---|");
        for a in self.applied {
            let _ = writeln!(
                s,
                "| {:.1} s | {:.1} s | {} |",
                a.at_ms as f64 / 1000.0,
                a.held_ms as f64 / 1000.0,
                a.fault
            );
        }
        let mut by_kind: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for a in self.applied {
            *by_kind.entry(a.fault.kind()).or_default() += 1;
        }
        let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(s, "\nby kind: {}", counts.join(", "));
        let (fwd, delayed, dropped) = self.proxy_totals;
        if fwd + delayed + dropped > 0 {
            let _ = writeln!(
                s,
                "delay proxies: {fwd} datagrams forwarded, {delayed} delayed, {dropped} dropped"
            );
        }
        let skewed: BTreeSet<&str> = self.skew_windows.iter().map(|w| w.node.as_str()).collect();
        if !skewed.is_empty() {
            let list: Vec<&str> = skewed.into_iter().collect();
            let _ = writeln!(s, "nodes run with a wrong clock: {}", list.join(", "));
        }
        for e in self.self_exits {
            let _ = writeln!(
                s,
                "- {} exited by itself at {:.1} s ({}){}",
                e.node,
                e.at_ms as f64 / 1000.0,
                e.status,
                if e.expected {
                    ": fail-stop under the disk fault, restarted"
                } else {
                    ": UNEXPECTED (a crash)"
                }
            );
        }

        // Anti-entropy.
        let ae = &self.anti_entropy;
        let grace = self
            .args
            .tombstone_grace
            .map_or("the default (24 h)".to_string(), |g| {
                humantime::format_duration(g).to_string()
            });
        let _ = writeln!(s, "\n## Anti-entropy (tombstone grace {grace})\n");
        let _ = writeln!(
            s,
            "- {} tombstones purged (summed over the nodes) in {} sweeps",
            ae.purged, ae.purge_sweeps
        );
        let wipes = self
            .applied
            .iter()
            .filter(|a| a.fault.kind() == FaultKind::Wipe)
            .count();
        let _ = writeln!(
            s,
            "- {wipes} wipes; {} log replays to a wiped node's new store",
            ae.log_replays
        );
        let _ = writeln!(
            s,
            "- {} replicated records left to repair as older than the log's horizon; {} truncated log gaps skipped",
            ae.too_old_for_log, ae.truncated_gaps
        );
        let _ = writeln!(s, "- {} repair sessions repaired differences", ae.repairs);

        // Checks.
        let acked_puts = self
            .events
            .iter()
            .filter(|e| e.is_acked_write() && e.f == Op::Put)
            .count();
        let acked_deletes = self
            .events
            .iter()
            .filter(|e| e.is_acked_write() && e.f == Op::Delete)
            .count();
        let reads = self
            .events
            .iter()
            .filter(|e| e.outcome == Outcome::Ok && e.f == Op::Get)
            .count();
        let _ = writeln!(s, "\n## Checks\n");
        let convergence = if self.converged {
            format!(
                "converged in {:.1} s after healing ({} keys incl. tombstones)",
                self.converge_time.as_secs_f64(),
                self.final_keys
            )
        } else {
            format!(
                "NOT converged within {:.1} s",
                self.converge_time.as_secs_f64()
            )
        };
        let rows = [
            (
                Checker::LostWrite,
                format!("{acked_puts} acknowledged puts"),
            ),
            (
                Checker::Resurrection,
                format!("{acked_deletes} acknowledged deletes"),
            ),
            (Checker::Convergence, convergence),
            (
                Checker::UnwrittenValue,
                format!("{reads} reads and the final state"),
            ),
            (Checker::NodeMonotonic, format!("{reads} reads")),
            (
                Checker::ClockPoisoning,
                format!(
                    "{} acknowledged writes and every node's clock",
                    acked_puts + acked_deletes
                ),
            ),
        ];
        let strong_ops = self
            .strong_events
            .iter()
            .filter(|e| e.outcome == Outcome::Invoke)
            .count();
        let strong_rows = [
            (
                Checker::Linearizable,
                format!(
                    "{strong_ops} strong operations on {} keys, final SERIAL reads included",
                    self.args.keys()
                ),
            ),
            (
                Checker::StrongFinal,
                "every strong key's converged value".to_string(),
            ),
        ];
        let acked_level_writes = self
            .strong_events
            .iter()
            .filter(|e| e.outcome == Outcome::Ok && e.f.is_eventual() && e.level.is_some())
            .count();
        let mixed_rows = (acked_level_writes > 0).then(|| {
            (
                Checker::LevelObserved,
                format!(
                    "strong operations against {acked_level_writes} eventual writes \
                     acknowledged at quorum/all"
                ),
            )
        });
        let level_reads = self
            .events
            .iter()
            .filter(|e| e.outcome == Outcome::Ok && e.f == Op::Get && e.level.is_some())
            .count();
        let level_writes = self
            .events
            .iter()
            .filter(|e| e.is_acked_write() && e.level.is_some())
            .count();
        let level_rows = [
            (
                Checker::LevelRead,
                format!(
                    "{level_reads} level reads against {level_writes} acknowledged level writes"
                ),
            ),
            (
                Checker::LevelMonotonic,
                format!("{level_reads} level reads"),
            ),
        ];
        let rows: Vec<(Checker, String)> = if self.strong_path.is_some() {
            rows.into_iter()
                .chain(strong_rows)
                .chain(mixed_rows)
                .collect()
        } else if level_reads + level_writes > 0 {
            rows.into_iter().chain(level_rows).collect()
        } else {
            rows.into_iter().collect()
        };
        let _ = writeln!(s, "| checker | checked | violations |");
        let _ = writeln!(s, "|---|---|---:|");
        for (checker, checked) in &rows {
            let n = self
                .violations
                .iter()
                .filter(|v| v.checker == *checker)
                .count();
            let _ = writeln!(s, "| {checker} | {checked} | {n} |");
        }
        if !self.violations.is_empty() {
            let _ = writeln!(s, "\n## Violations\n");
            for (checker, _) in &rows {
                let of: Vec<&Violation> = self
                    .violations
                    .iter()
                    .filter(|v| v.checker == *checker)
                    .collect();
                for v in of.iter().take(SHOWN) {
                    let _ = writeln!(s, "- {v}");
                }
                if of.len() > SHOWN {
                    let _ = writeln!(s, "- … and {} more {checker}", of.len() - SHOWN);
                }
            }
        }
        let strong_file = self
            .strong_path
            .map(|p| format!(", {} (strong history)", p.display()))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nfiles: {} (history){strong_file}, final-state.json, schedule.json, logs/ (one per node)",
            self.history_path.display()
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anti_entropy_counts_come_from_the_nodes_log_lines() {
        let log = "\
2026-12-02T01:00:00Z  INFO vergent_node::peer::purge: purged tombstones every member confirmed purged=12
2026-12-02T01:00:01Z  INFO vergent_node::peer: the other side's data dir is new; its cursor restarts at 0 cursor=repl/sent/n2
2026-12-02T01:00:01Z  INFO vergent_node::peer: the other side's data dir is new; its cursor restarts at 0 cursor=repl/received/n2
2026-12-02T01:00:02Z  INFO vergent_node::peer::inbound: replicated records older than the log's horizon were left to repair origin=n2 skipped=7
{\"level\":\"INFO\",\"fields\":{\"message\":\"purged tombstones every member confirmed\",\"purged\":3}}
";
        let mut ae = AntiEntropy::default();
        ae.add_log(log);
        assert_eq!(
            ae,
            AntiEntropy {
                purged: 15,
                purge_sweeps: 2,
                log_replays: 1,
                too_old_for_log: 7,
                truncated_gaps: 0,
                repairs: 0,
            }
        );
    }
}
