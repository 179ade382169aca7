//! The labelled histories of Porcupine's test suite (Jepsen etcd runs and
//! Porcupine's KV runs, `tests/histories/`): every verdict must match its
//! label (nextest's timings show the runs stay cheap in a debug build).

use std::path::{Path, PathBuf};

use vergent_lincheck::formats::{parse_jepsen_etcd, parse_porcupine_kv};
use vergent_lincheck::{CheckOptions, KvString, Register, Verdict, check, check_by_key};

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/histories")
        .join(dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_labelled_etcd_history_gets_its_recorded_verdict() {
    let dir = data("jepsen-etcd");
    let labels = read(&dir.join("verdicts.tsv"));
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for row in labels.lines().filter(|l| !l.trim().is_empty()) {
        let (file, expected) = row
            .split_once('\t')
            .unwrap_or_else(|| panic!("verdicts.tsv row without a tab: {row:?}"));
        let history =
            parse_jepsen_etcd(&read(&dir.join(file))).unwrap_or_else(|e| panic!("{file}: {e}"));
        let verdict = check(&Register::<i64>::new(), &history, &CheckOptions::default());
        let got = match &verdict {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable(_) => "not-linearizable",
            Verdict::Unknown => "unknown",
        };
        if got != expected {
            mismatches.push(format!("{file}: expected {expected}, got {got}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 102, "verdicts.tsv labels 102 histories");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_kv_ok_history_is_linearizable_and_every_bad_one_is_not() {
    for clients in ["c01", "c10", "c50"] {
        for (suffix, linearizable) in [("ok", true), ("bad", false)] {
            let file = format!("{clients}-{suffix}.txt");
            let history = parse_porcupine_kv(&read(&data("kv").join(&file)))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let verdict = check_by_key(
                &KvString,
                &history,
                |input| input.key.clone(),
                &CheckOptions::default(),
            );
            match verdict {
                Verdict::Linearizable => assert!(linearizable, "{file}: reported linearizable"),
                Verdict::NotLinearizable(cx) => {
                    assert!(!linearizable, "{file}: reported not linearizable:\n{cx}");
                    assert!(cx.key.is_some(), "{file}: the counterexample names its key");
                }
                Verdict::Unknown => panic!("{file}: no budget was set, yet Unknown"),
            }
        }
    }
}
