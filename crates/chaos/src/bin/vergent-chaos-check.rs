//! `vergent-chaos-check FILE`: runs the strong workload's linearizability
//! check again on a recorded `strong-history.jsonl`, e.g. after editing a
//! history to test a hypothesis about a failure, or to check one recorded
//! elsewhere. Exit codes: 0 linearizable, 1 violations found, 2 unreadable.

use std::io::BufRead;
use std::process::ExitCode;

use vergent_chaos::strong::{MAX_STEPS, StrongEvent, linearizable};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: vergent-chaos-check STRONG_HISTORY_JSONL");
        return ExitCode::from(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vergent-chaos-check: cannot open {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut events = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let parsed = line
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str::<StrongEvent>(&l).map_err(|e| e.to_string()));
        match parsed {
            Ok(e) => events.push(e),
            Err(e) => {
                eprintln!("vergent-chaos-check: {path} line {}: {e}", n + 1);
                return ExitCode::from(2);
            }
        }
    }
    let options = vergent_lincheck::CheckOptions {
        max_steps: Some(MAX_STEPS),
    };
    let violations = linearizable(&events, &options);
    let ops = events
        .iter()
        .filter(|e| e.outcome == vergent_chaos::history::Outcome::Invoke)
        .count();
    if violations.is_empty() {
        println!("linearizable: {ops} operations in {path}");
        return ExitCode::SUCCESS;
    }
    for v in &violations {
        println!("{v}");
    }
    println!("{} violations in {ops} operations", violations.len());
    ExitCode::from(1)
}
