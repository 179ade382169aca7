//! The shell as scripts use it, on a real `vergentd` on loopback: piped input
//! read as bytes with bad lines reported by number, binary-safe values and
//! their display, exit codes for missing keys, raw and JSON output.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Certs, Proc, bin, wait_output};

/// One node and the client files to reach it.
struct Node {
    _tmp: tempfile::TempDir,
    certs: Certs,
    proc: Proc,
}

impl Node {
    fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let certs = Certs::generate(&tmp.path().join("certs"));
        let proc = Proc::start(&certs, &tmp.path().join("data"), &["--node-id", "node-a"]);
        Self {
            _tmp: tmp,
            certs,
            proc,
        }
    }

    /// `vergentctl connect ADDR <args>` with `stdin` as its standard input
    /// (a pipe, written whole and closed).
    fn ctl(&self, args: &[&[u8]], stdin: &[u8]) -> Output {
        use std::os::unix::ffi::OsStrExt;
        let tls = &self.certs.client;
        let mut child = Command::new(bin("vergentctl"))
            .args(["connect", &self.proc.addr, "--tls-certfile"])
            .arg(&tls.cert)
            .arg("--tls-keyfile")
            .arg(&tls.key)
            .arg("--tls-cafile")
            .arg(&tls.ca)
            .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vergentctl");
        let mut pipe = child.stdin.take().expect("stdin piped");
        // vergentctl may exit before reading all of it (e.g. -e mode).
        let _ = pipe.write_all(stdin);
        drop(pipe);
        wait_output(child, Duration::from_secs(60))
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
