//! The shell as scripts use it, on a real `vergentd` on loopback: piped input
//! read as bytes with bad lines reported by number, binary-safe values and
//! their display, exit codes for missing keys, raw and JSON output.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{bin, run_with_stdin};

/// One node and the client files to reach it.
type Node = common::OneNode;

impl Node {
    /// `vergentctl connect ADDR <args>` with `stdin` as its standard input
    /// (a pipe, written whole and closed).
    fn ctl(&self, args: &[&[u8]], stdin: &[u8]) -> Output {
        use std::os::unix::ffi::OsStrExt;
        let tls = &self.certs.client;
        // vergentctl may exit before reading all of stdin (e.g. -e mode).
        run_with_stdin(
            Command::new(bin("vergentctl"))
                .args(["connect", &self.proc.addr, "--tls-certfile"])
                .arg(&tls.cert)
                .arg("--tls-keyfile")
                .arg(&tls.key)
                .arg("--tls-cafile")
                .arg(&tls.ca)
                .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a))),
            stdin,
        )
        .0
    }

    /// The shell reading `script` from a pipe.
    fn script(&self, script: &[u8]) -> Output {
        self.ctl(&[], script)
    }

    /// `-e COMMAND` for each command, with nothing on stdin.
    fn execute(&self, commands: &[&[u8]]) -> Output {
        let mut args: Vec<&[u8]> = Vec::new();
        for c in commands {
            args.push(b"-e");
            args.push(c);
        }
        self.ctl(&args, b"")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

#[test]
fn a_piped_line_that_cannot_be_parsed_is_reported_with_its_number_and_later_lines_still_run() {
    let node = Node::start();
    let out = node.script(b"put bin \xff\xfe\nput k \"open\nfrobnicate\nput after 1\nget after\n");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        err.contains("error: unbalanced quotes (line 2)"),
        "{}",
        show(&out)
    );
    assert!(
        err.contains("error: unknown command \"frobnicate\"") && err.contains("(line 3)"),
        "{}",
        show(&out)
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        2,
        "{}",
        show(&out)
    );
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", show(&out));
    assert!(lines[0].starts_with("OK hlc="), "{}", show(&out));
    assert!(lines[1].starts_with("OK hlc="), "{}", show(&out));
    assert_eq!(lines[2], "1", "{}", show(&out));
}

#[test]
fn a_raw_byte_value_from_a_pipe_round_trips_exactly() {
    let node = Node::start();
    // Every byte but the line separator, and a CRLF line end that is not
    // part of the value.
    let mut value: Vec<u8> = (0u8..=255).filter(|b| *b != b'\n').collect();
    value.retain(|b| !b" \t\r\"'".contains(b));
    let mut script = b"put bin ".to_vec();
    script.extend_from_slice(&value);
    script.extend_from_slice(b"\r\n");
    let out = node.script(&script);
    assert!(out.status.success(), "{}", show(&out));
    let got = node.execute(&[b"get --raw bin"]);
    assert!(got.status.success(), "{}", show(&got));
    assert_eq!(got.stdout, value, "{}", show(&got));
}

#[test]
fn a_missing_key_exits_1_in_execute_and_pipe_mode_prints_nil_and_later_lines_still_run() {
    let node = Node::start();
    let out = node.execute(&[b"get nothing-here"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(text(&out.stdout), "(nil)\n", "{}", show(&out));
    assert!(
        !text(&out.stderr).contains("error"),
        "a miss is an answer, not an error: {}",
        show(&out)
    );
    // --raw: nothing on stdout, so a script's captured value is empty.
    let out = node.execute(&[b"get --raw nothing-here"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    // A miss does not stop later -e commands, but still sets the exit code.
    let out = node.execute(&[b"get nothing-here", b"put k v", b"get k"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", show(&out));
    assert_eq!((lines[0], lines[2]), ("(nil)", "v"), "{}", show(&out));
    // A found key exits 0.
    let out = node.execute(&[b"get k"]);
    assert!(out.status.success(), "{}", show(&out));
    // Piped scripts print (nil) and go on; the miss makes the exit code 1.
    let out = node.script(b"get nothing-here\nget k\n");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(text(&out.stdout), "(nil)\nv\n", "{}", show(&out));
    assert!(!text(&out.stderr).contains("error"), "{}", show(&out));
    // A script whose every get finds its key exits 0.
    let out = node.script(b"get k\nget k\n");
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn put_takes_a_value_file_or_stdin_as_bytes_and_refuses_stdin_that_holds_the_script() {
    let node = Node::start();
    let value: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let file = node._tmp.path().join("value.bin");
    std::fs::write(&file, &value).expect("write value file");
    let mut put = b"put from-file --value-file ".to_vec();
    put.extend_from_slice(file.to_str().expect("utf-8 path").as_bytes());
    let out = node.execute(&[&put]);
    assert!(out.status.success(), "{}", show(&out));
    let got = node.execute(&[b"get --raw from-file"]);
    assert_eq!(got.stdout, value, "{}", show(&got));

    // redis-cli -x: the value is all of stdin, newlines included.
    let out = node.ctl(&[b"-e", b"put from-stdin --stdin"], b"two\nlines\n\xff");
    assert!(out.status.success(), "{}", show(&out));
    let got = node.execute(&[b"get --raw from-stdin"]);
    assert_eq!(got.stdout, b"two\nlines\n\xff", "{}", show(&got));

    // In a piped script stdin is the script: refused, with the line number.
    let out = node.script(b"put k --stdin\nput k --value-file /nonexistent/v\nput k ok\n");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: put --stdin works with -e only") && err.contains("(line 1)"),
        "{}",
        show(&out)
    );
    assert!(
        err.contains("error: cannot read --value-file /nonexistent/v") && err.contains("(line 2)"),
        "{}",
        show(&out)
    );
    assert!(text(&out.stdout).starts_with("OK hlc="), "{}", show(&out));
}

/// Every stdout line of `out` as a JSON value; panics on any that is not.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}\n{}", show(out)))
        })
        .collect()
}

/// Waits, with a deadline, until the lone node formed its voting
/// configuration (which `cas` needs), as its JSON status shows.
fn wait_formed(node: &Node) {
    let start = std::time::Instant::now();
    loop {
        let out = node.ctl(&[b"--format", b"json", b"-e", b"status"], b"");
        if out.status.success() && !json_lines(&out)[0]["voting"].is_null() {
            return;
        }
        assert!(
            start.elapsed() < common::DEADLINE,
            "no voting configuration within {:?}: {}",
            common::DEADLINE,
            show(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn json_output_parses_for_get_scan_status_members_and_the_writes() {
    let node = Node::start();
    wait_formed(&node);
    let script = br#"put text hello
put "bin\xff" "\xff\xfe"
get text
get "bin\xff"
get missing
scan
status
members
delete text
cas c --absent 1
cas c 5 6
consistency quorum
format
"#;
    let out = node.ctl(&[b"--format", b"json"], script);
    // `get missing` makes the exit code 1; every line still ran.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v = json_lines(&out);
    assert_eq!(v.len(), 14, "{}", show(&out));
    for put in &v[0..2] {
        assert_eq!(put["ok"], true, "{put}");
        assert!(
            put["hlc"].as_str().is_some_and(|h| h.starts_with("20")),
            "{put}"
        );
    }
    assert_eq!(v[2]["key"], "text");
    assert_eq!(v[2]["value"], "hello");
    assert_eq!(v[2]["found"], true);
    assert_eq!(v[2]["origin"], "node-a");
    assert_eq!(v[2]["consistency"], "ONE");
    // Bytes that are not UTF-8 come as base64, under a name that says so.
    assert_eq!(v[3]["key_b64"], "Ymlu/w==", "{}", v[3]);
    assert_eq!(v[3]["value_b64"], "//4=", "{}", v[3]);
    assert!(v[3].get("value").is_none(), "{}", v[3]);
    assert_eq!(v[4], serde_json::json!({"key": "missing", "found": false}));
    // Scan: one object per entry, in key order; the count on stderr.
    assert_eq!(v[5]["key_b64"], "Ymlu/w==", "{}", v[5]);
    assert_eq!(v[6]["key"], "text", "{}", v[6]);
    assert!(text(&out.stderr).contains("(2 entries)"), "{}", show(&out));
    let status = &v[7];
    assert_eq!(status["node_id"], "node-a", "{status}");
    assert_eq!(status["keys"], 2, "{status}");
    assert_eq!(status["state"], "serving", "{status}");
    assert!(
        status["memory"]["block_cache_capacity_bytes"].as_u64() > Some(0),
        "{status}"
    );
    assert!(
        status["workers"].as_array().is_some_and(|w| !w.is_empty()),
        "{status}"
    );
    assert_eq!(v[8]["node_id"], "node-a", "{}", v[8]);
    assert_eq!(v[8]["this_node"], true, "{}", v[8]);
    assert_eq!(v[8]["state"], "alive", "{}", v[8]);
    assert_eq!(v[8]["voter"], true, "{}", v[8]);
    assert_eq!(status["voting"]["voters"][0], "node-a", "{status}");
    assert_eq!(v[9]["ok"], true, "{}", v[9]);
    assert_eq!(v[9]["existed"], true, "{}", v[9]);
    assert_eq!(v[10]["applied"], true, "{}", v[10]);
    assert_eq!(v[11]["applied"], false, "{}", v[11]);
    assert_eq!(v[11]["value"], "1", "{}", v[11]);
    assert_eq!(v[12], serde_json::json!({"consistency": "QUORUM"}));
    assert_eq!(v[13], serde_json::json!({"format": "json"}));
}

#[test]
fn json_watch_prints_one_object_per_change_and_its_banner_on_stderr() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let node = Node::start();
    let tls = &node.certs.client;
    let mut watch = Command::new(bin("vergentctl"))
        .args(["connect", &node.proc.addr, "--tls-certfile"])
        .arg(&tls.cert)
        .arg("--tls-keyfile")
        .arg(&tls.key)
        .arg("--tls-cafile")
        .arg(&tls.ca)
        .args(["--format", "json", "-e", "watch app/"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    for (pipe, tx) in [
        (
            Box::new(watch.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            out_tx,
        ),
        (Box::new(watch.stderr.take().expect("stderr")), err_tx),
    ] {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    // The banner comes once the watch is registered on the node.
    let banner = err_rx
        .recv_timeout(common::DEADLINE)
        .expect("the watch printed its banner on stderr");
    assert!(banner.starts_with("watching"), "{banner}");
    let out = node.script(b"put app/a hello\nput app/b \"\\xff\"\ndelete app/a\n");
    assert!(out.status.success(), "{}", show(&out));
    let mut events = Vec::new();
    while events.len() < 3 {
        let line = out_rx
            .recv_timeout(common::DEADLINE)
            .unwrap_or_else(|_| panic!("3 watch events, got {events:?}"));
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        events.push(event);
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(events[0]["op"], "put");
    assert_eq!(events[0]["key"], "app/a");
    assert_eq!(events[0]["value"], "hello");
    assert_eq!(events[0]["source"], "local");
    assert_eq!(events[0]["origin"], "node-a");
    assert_eq!(events[1]["value_b64"], "/w==", "{}", events[1]);
    assert_eq!(events[2]["op"], "delete", "{}", events[2]);
    assert!(events[2].get("value").is_none(), "{}", events[2]);
}

#[test]
fn help_cmd_prints_that_commands_usage_and_a_typo_gets_a_suggestion_with_its_line() {
    let node = Node::start();
    let out = node.script(b"help get\ngte k\n");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("get --raw KEY"), "{}", show(&out));
    assert!(!stdout.contains("put KEY"), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("error: unknown command \"gte\"; did you mean get? (line 2)"),
        "{}",
        show(&out)
    );
}
