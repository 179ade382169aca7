//! `vergentctl` as scripts call it, on real `vergentd` processes over
//! loopback: the one-shot subcommands (`get`, `put`, `delete`, `scan`,
//! `status`, `members`) print what the shell's `-e` prints, in text, JSON
//! and tables, with its exit codes; its completions and man pages; a shell given
//! three endpoints goes on through another node when the one it is on is
//! killed, and says so; Ctrl-C on the shell's terminal (a pseudo-terminal
//! from util-linux `script`) cancels the request in flight and the shell
//! goes on; vergentd's TLS variables do not configure vergentctl, its own
//! do.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Cluster, bin, run_with_stdin, unread_bytes_at, wait_output};
use vergent_tls::TlsFiles;

/// How long one vergentctl run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// Every variable vergentctl or vergentd reads for its TLS files and
/// endpoints: each run starts without them, so the caller's environment
/// cannot change what a test sees.
const CLEARED: &[&str] = &[
    "VERGENTCTL_ENDPOINTS",
    "VERGENTCTL_TLS_CERTFILE",
    "VERGENTCTL_TLS_KEYFILE",
    "VERGENTCTL_TLS_CAFILE",
    "VERGENT_TLS_CERTFILE",
    "VERGENT_TLS_KEYFILE",
    "VERGENT_TLS_CAFILE",
];

/// `vergentctl` with `args`, `env` set (and [`CLEARED`] otherwise unset),
/// `stdin` written to its standard input.
fn vergentctl(args: &[&OsStr], env: &[(&str, &OsStr)], stdin: &[u8]) -> Output {
    let mut cmd = Command::new(bin("vergentctl"));
    for var in CLEARED {
        cmd.env_remove(var);
    }
    // vergentctl may exit before reading it.
    run_with_stdin(cmd.args(args).envs(env.iter().copied()), stdin).0
}

/// The TLS flags for `tls`.
fn tls_flags(tls: &TlsFiles) -> Vec<&OsStr> {
    vec![
        OsStr::new("--tls-certfile"),
        tls.cert.as_os_str(),
        OsStr::new("--tls-keyfile"),
        tls.key.as_os_str(),
        OsStr::new("--tls-cafile"),
        tls.ca.as_os_str(),
    ]
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

/// Each stdout line parsed as JSON.
fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{}", show(o))))
        .collect()
}

/// One node and the client files to reach it.
type Node = common::OneNode;

impl Node {
    /// `vergentctl SUBCOMMAND ARGS… --endpoints ADDR <TLS flags>`.
    fn one_shot(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        all.extend([OsStr::new("--endpoints"), OsStr::new(&self.proc.addr)]);
        all.extend(tls_flags(&self.certs.client));
        vergentctl(&all, &[], stdin)
    }

    /// `vergentctl connect ADDR <TLS flags> [--format F] -e LINE`.
    fn execute(&self, format: &str, line: &str) -> Output {
        let mut all: Vec<&OsStr> = vec![OsStr::new("connect"), OsStr::new(&self.proc.addr)];
        all.extend(tls_flags(&self.certs.client));
        all.extend(["--format", format, "-e", line].map(OsStr::new));
        vergentctl(&all, &[], b"")
    }
}

#[test]
fn one_shot_put_get_delete_and_scan_print_what_the_shell_prints_and_a_missing_key_exits_1() {
    let node = Node::start();
    let put = node.one_shot(&["put", "app/a", "hello world"], b"");
    assert_eq!(put.status.code(), Some(0), "{}", show(&put));
    assert!(text(&put.stdout).starts_with("OK hlc="), "{}", show(&put));
    let put = node.one_shot(&["put", "app/b", "--stdin"], b"\xff\x00two\n");
    assert_eq!(put.status.code(), Some(0), "{}", show(&put));
    let put = node.one_shot(&["put", "other", "x", "--format", "json"], b"");
    assert_eq!(put.status.code(), Some(0), "{}", show(&put));

    // Reads print exactly what `connect -e` prints, in every format.
    for format in ["text", "json", "table"] {
        for (args, line) in [
            (&["get", "app/a"][..], "get app/a"),
            (&["get", "-v", "app/a"], "get -v app/a"),
            (&["get", "app/b"], "get app/b"),
            (&["scan", "app/"], "scan app/"),
            (&["scan", "app/", "--limit", "1"], "scan app/ 1"),
        ] {
            let mut with_format = args.to_vec();
            with_format.extend(["--format", format]);
            let one = node.one_shot(&with_format, b"");
            let shell = node.execute(format, line);
            assert_eq!(one.status.code(), Some(0), "{}", show(&one));
            assert_eq!(
                (&one.stdout, &one.stderr),
                (&shell.stdout, &shell.stderr),
                "{args:?} vs -e {line:?}:\n{}\n{}",
                show(&one),
                show(&shell)
            );
        }
    }
    let get = node.one_shot(&["get", "app/a"], b"");
    assert_eq!(text(&get.stdout), "hello world\n");
    let raw = node.one_shot(&["get", "--raw", "app/b"], b"");
    assert_eq!(raw.stdout, b"\xff\x00two\n", "{}", show(&raw));
    let scan = node.one_shot(&["scan", "app/"], b"");
    assert_eq!(
        text(&scan.stdout),
        "app/a\thello world\napp/b\t\"\\xff\\x00two\\n\"\n(2 entries)\n"
    );
    let scan = node.one_shot(&["scan", "app/", "--format", "json"], b"");
    let entries = json_lines(&scan);
    assert_eq!(entries.len(), 2, "{}", show(&scan));
    assert_eq!(entries[0]["key"], "app/a");
    assert_eq!(entries[0]["value"], "hello world");
    assert_eq!(entries[1]["value_b64"], "/wB0d28K");
    assert_eq!(text(&scan.stderr), "(2 entries)\n");
    // A table: a header, a rule, cells escaped as text shows them, aligned
    // to the widest; the trailer follows on stdout, as in text.
    let scan = node.one_shot(&["scan", "app/", "--format", "table"], b"");
    assert_eq!(scan.status.code(), Some(0), "{}", show(&scan));
    assert_eq!(
        text(&scan.stdout),
        "\
KEY    VALUE
-----  ---------------
app/a  hello world
app/b  \"\\xff\\x00two\\n\"
(2 entries)
",
        "{}",
        show(&scan)
    );
    assert_eq!(text(&scan.stderr), "", "{}", show(&scan));
    let empty = node.one_shot(&["scan", "none/", "--format", "table"], b"");
    assert_eq!(
        text(&empty.stdout),
        "KEY  VALUE\n---  -----\n(0 entries)\n",
        "{}",
        show(&empty)
    );
    let get = node.one_shot(&["get", "app/a", "--format", "json"], b"");
    let got = json_lines(&get);
    assert_eq!(got.len(), 1, "{}", show(&get));
    assert_eq!(got[0]["found"], true);
    assert_eq!(got[0]["value"], "hello world");
    assert_eq!(got[0]["origin"], "node-a");

    let delete = node.one_shot(&["delete", "app/a"], b"");
    assert_eq!(delete.status.code(), Some(0), "{}", show(&delete));
    assert!(
        text(&delete.stdout).starts_with("OK hlc="),
        "{}",
        show(&delete)
    );
    let delete = node.one_shot(&["delete", "app/b", "--format", "json"], b"");
    assert_eq!(json_lines(&delete)[0]["existed"], true, "{}", show(&delete));

    // A missing key: (nil) or found:false, and exit code 1, as with -e.
    let missing = node.one_shot(&["get", "app/a"], b"");
    assert_eq!(missing.status.code(), Some(1), "{}", show(&missing));
    assert_eq!(text(&missing.stdout), "(nil)\n");
    assert_eq!(node.execute("text", "get app/a").status.code(), Some(1));
    let missing = node.one_shot(&["get", "app/a", "--format", "json"], b"");
    assert_eq!(missing.status.code(), Some(1), "{}", show(&missing));
    assert_eq!(
        json_lines(&missing),
        [serde_json::json!({"key": "app/a", "found": false})]
    );

    // A failed command exits 1 with one error line, as with -e.
    let bad = node.one_shot(&["put", "k", "--value-file", "/nonexistent/v"], b"");
    assert_eq!(bad.status.code(), Some(1), "{}", show(&bad));
    assert!(
        text(&bad.stderr).starts_with("error: cannot read --value-file"),
        "{}",
        show(&bad)
    );
    // A wrong command line is a usage error (2), before any connection.
    let usage = node.one_shot(&["cas", "k", "1"], b"");
    assert_eq!(usage.status.code(), Some(2), "{}", show(&usage));
    assert!(
        text(&usage.stderr).contains("usage: cas"),
        "{}",
        show(&usage)
    );
}

#[test]
fn one_shot_status_and_members_parse_in_text_and_json() {
    let node = Node::start();
    let status = node.one_shot(&["status"], b"");
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));
    let out = text(&status.stdout);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["node_id:", "node-a"]),
        "{}",
        show(&status)
    );
    assert!(out.contains("\nkeys:"), "{}", show(&status));
    let status = node.one_shot(&["status", "--format", "json"], b"");
    let s = json_lines(&status);
    assert_eq!(s.len(), 1, "{}", show(&status));
    assert_eq!(s[0]["node_id"], "node-a");
    assert!(s[0]["uptime_ms"].is_u64(), "{}", show(&status));

    let members = node.one_shot(&["members"], b"");
    assert_eq!(members.status.code(), Some(0), "{}", show(&members));
    let out = text(&members.stdout);
    assert!(
        out.starts_with("voting configuration:"),
        "{}",
        show(&members)
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("node-a ") && l.ends_with("(this node)")),
        "{}",
        show(&members)
    );
    let members = node.one_shot(&["members", "--format", "json"], b"");
    let m = json_lines(&members);
    assert_eq!(m.len(), 1, "{}", show(&members));
    assert_eq!(m[0]["node_id"], "node-a");
    assert_eq!(m[0]["this_node"], true);
    assert_eq!(m[0]["addr"], node.proc.addr.as_str());

    let members = node.one_shot(&["members", "--format", "table"], b"");
    assert_eq!(members.status.code(), Some(0), "{}", show(&members));
    let out = text(&members.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", show(&members));
    assert!(
        lines[0].starts_with("voting configuration:"),
        "{}",
        show(&members)
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "ADDRESS",
            "STATE",
            "INCARNATION",
            "VOTER",
            "LAST",
            "CHANGE"
        ],
        "{}",
        show(&members)
    );
    assert!(lines[2].chars().all(|c| c == '-' || c == ' '), "{out}");
    assert!(
        lines[3].starts_with(&format!("node-a  {}  ", node.proc.addr))
            && lines[3].ends_with("(this node)"),
        "{}",
        show(&members)
    );
    // status has no table: it prints as text.
    let status = node.one_shot(&["status", "--format", "table"], b"");
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));
    let out = text(&status.stdout);
    assert!(
        out.starts_with("node_id:") && out.contains("\nkeys:") && !out.contains("---"),
        "{}",
        show(&status)
    );
}

#[test]
fn completions_for_bash_print_a_script_that_knows_connect_and_get() {
    let out = vergentctl(&[OsStr::new("completions"), OsStr::new("bash")], &[], b"");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let script = text(&out.stdout);
    assert!(script.contains("_vergentctl()"), "{script}");
    assert!(script.contains("complete -F _vergentctl"), "{script}");
    for word in ["connect", "get", "put", "--endpoints", "--tls-certfile"] {
        assert!(script.contains(word), "no {word} in the script");
    }
    // `bash -n` parses it without running it, where bash exists.
    if let Ok(check) = Command::new("bash").args(["-n", "-c", &script]).output() {
        assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = vergentctl(&[OsStr::new("completions"), OsStr::new(shell)], &[], b"");
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", show(&out));
        assert!(text(&out.stdout).contains("connect"), "{shell}");
    }
}

#[test]
fn man_writes_a_readable_roff_page_for_vergentctl_and_each_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("man1");
    let out = vergentctl(
        &[OsStr::new("man"), OsStr::new("--out"), out_dir.as_os_str()],
        &[],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let listed: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    for page in [
        "vergentctl.1",
        "vergentctl-connect.1",
        "vergentctl-get.1",
        "vergentctl-put.1",
        "vergentctl-members.1",
        "vergentctl-gen-cert.1",
        "vergentctl-completions.1",
    ] {
        let path = out_dir.join(page);
        assert!(
            listed.iter().any(|l| l == &path.display().to_string()),
            "{page} not listed: {listed:?}"
        );
        let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(roff.contains("\n.TH "), "{page} has no title line");
        assert!(roff.contains("\n.SH NAME"), "{page} has no NAME section");
    }
    let get = std::fs::read_to_string(out_dir.join("vergentctl-get.1")).expect("read");
    assert!(get.contains("VERGENTCTL_TLS_CERTFILE"), "{get}");
    // Rendered as man renders it, where groff exists.
    match Command::new("groff")
        .args(["-man", "-Tutf8"])
        .arg(out_dir.join("vergentctl-get.1"))
        .output()
    {
        Ok(r) => {
            assert!(r.status.success(), "groff: {}", text(&r.stderr));
            // Drop grotty's overstrikes (X, backspace, X for bold).
            let mut page = String::new();
            for c in text(&r.stdout).chars() {
                if c == '\u{8}' {
                    page.pop();
                } else {
                    page.push(c);
                }
            }
            assert!(page.contains("NAME"), "{page}");
            assert!(page.contains("vergentctl-get"), "{page}");
            assert!(page.contains("--endpoints"), "{page}");
        }
        Err(e) => eprintln!("groff not run ({e}): checked the roff source only"),
    }
}

#[test]
fn vergentds_tls_variables_do_not_configure_vergentctl_but_its_own_do() {
    let node = Node::start();
    let tls = &node.certs.client;
    let addr = OsStr::new(&node.proc.addr);
    let get = [
        OsStr::new("get"),
        OsStr::new("k"),
        OsStr::new("--endpoints"),
        addr,
    ];
    let vergentd_names = [
        ("VERGENT_TLS_CERTFILE", tls.cert.as_os_str()),
        ("VERGENT_TLS_KEYFILE", tls.key.as_os_str()),
        ("VERGENT_TLS_CAFILE", tls.ca.as_os_str()),
    ];
    let out = vergentctl(&get, &vergentd_names, b"");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("--tls-certfile"), "{}", show(&out));
    assert!(
        err.contains("VERGENT_TLS_CERTFILE is set, but it is vergentd's")
            && err.contains("VERGENTCTL_TLS_CERTFILE"),
        "{}",
        show(&out)
    );
    // The certificate alone under vergentd's name does not do either.
    let out = vergentctl(
        &get,
        &[
            ("VERGENT_TLS_CERTFILE", tls.cert.as_os_str()),
            ("VERGENTCTL_TLS_KEYFILE", tls.key.as_os_str()),
            ("VERGENTCTL_TLS_CAFILE", tls.ca.as_os_str()),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("--tls-certfile"),
        "{}",
        show(&out)
    );

    // vergentctl's own names, endpoints included, need no flag at all.
    let own = [
        ("VERGENTCTL_ENDPOINTS", addr),
        ("VERGENTCTL_TLS_CERTFILE", tls.cert.as_os_str()),
        ("VERGENTCTL_TLS_KEYFILE", tls.key.as_os_str()),
        ("VERGENTCTL_TLS_CAFILE", tls.ca.as_os_str()),
    ];
    let put = vergentctl(&["put", "k", "v"].map(OsStr::new), &own, b"");
    assert_eq!(put.status.code(), Some(0), "{}", show(&put));
    let got = vergentctl(&["get", "k"].map(OsStr::new), &own, b"");
    assert_eq!(text(&got.stdout), "v\n", "{}", show(&got));
    let bench = vergentctl(
        &[
            "bench",
            "--requests",
            "20",
            "--clients",
            "2",
            "--connections",
            "1",
            "--warmup",
            "0s",
            "--json",
        ]
        .map(OsStr::new),
        &own,
        b"",
    );
    assert_eq!(bench.status.code(), Some(0), "{}", show(&bench));
}

/// A `vergentctl connect` reading its script from a pipe the test keeps
/// open, its stdout seen line by line as it prints.
struct LiveShell {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LiveShell {
    fn spawn(args: &[&OsStr]) -> Self {
        let mut cmd = Command::new(bin("vergentctl"));
        for var in CLEARED {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .args(args)
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vergentctl");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, script: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(script.as_bytes())
            .expect("write to the shell");
        stdin.flush().expect("flush");
    }

    /// Reads stdout lines until one satisfies `want`, and returns it.
    fn until(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no such line within {RUN_DEADLINE:?} ({e}): {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Closes stdin (the end of the script) and waits for the exit.
    fn finish(mut self) -> (Output, Vec<String>) {
        drop(self.stdin.take());
        let out = wait_output(self.child, RUN_DEADLINE);
        let mut seen = self.seen;
        seen.extend(self.lines.try_iter());
        (out, seen)
    }
}

#[test]
fn a_shell_on_three_endpoints_goes_on_through_another_when_its_node_is_killed_and_says_which() {
    let cluster = Cluster::new(3);
    let a = cluster.start(0);
    let _b = cluster.start(1);
    let _c = cluster.start(2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let clients = rt.block_on(async {
        let clients = cluster.clients(3).await;
        for c in &clients {
            common::serving(c).await;
        }
        clients
    });
    let endpoints = (0..3)
        .map(|i| cluster.addr(i))
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("connect"),
        OsStr::new("--endpoints"),
        OsStr::new(&endpoints),
    ];
    args.extend(tls_flags(&cluster.certs.client));
    let mut shell = LiveShell::spawn(&args);
    shell.send("put k before\nendpoint\n");
    let before = cluster.addr(0);
    assert!(shell.until(|l| l.starts_with("OK hlc=")).starts_with("OK"));
    let in_use = shell.until(|l| l.starts_with("in use:"));
    assert_eq!(in_use, format!("in use:    {before}"));
    assert_eq!(
        shell.until(|l| l.starts_with("endpoints:")),
        format!("endpoints: {}", endpoints.replace(',', ", "))
    );
    // Whichever node the shell moves to holds the value.
    rt.block_on(async {
        for c in &clients[1..] {
            let until = Instant::now() + common::DEADLINE;
            while common::get_serving(c, "k").await.map(|e| e.value) != Some(b"before".to_vec()) {
                assert!(Instant::now() < until, "{} lacks k", c.endpoint());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    a.kill9();
    // These lines are read only now, after the kill.
    shell.send("get k\nput k after\nget k\nendpoint\n");
    let (out, seen) = shell.finish();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{seen:?}\n{stderr}");
    let after_kill: Vec<&str> = seen[3..].iter().map(String::as_str).collect();
    assert_eq!(after_kill.len(), 5, "{seen:?}\n{stderr}");
    assert_eq!(after_kill[0], "before", "{seen:?}");
    assert!(after_kill[1].starts_with("OK hlc="), "{seen:?}");
    assert_eq!(after_kill[2], "after", "{seen:?}");
    let now = after_kill[3]
        .strip_prefix("in use:    ")
        .expect("the endpoint in use");
    assert_ne!(now, before, "{seen:?}");
    assert!(
        [cluster.addr(1), cluster.addr(2)].iter().any(|e| e == now),
        "{now} is none of the others"
    );
    assert_eq!(
        after_kill[4],
        format!("endpoints: {}", endpoints.replace(',', ", "))
    );
    assert!(
        stderr.contains(&format!("(now on {now}: {before} could not serve)")),
        "{stderr}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
}

#[test]
fn ctrl_c_in_the_terminal_cancels_the_request_in_flight_and_the_shell_goes_on() {
    use std::sync::{Arc, Mutex};
    let node = Node::start();
    let port: u16 = node
        .proc
        .addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port");
    // The shell on a terminal: util-linux `script` gives it a pseudo-terminal
    // whose input is our pipe, so a 0x03 we write is a Ctrl-C typed there.
    let tls = &node.certs.client;
    let command = format!(
        "exec {} connect {} --tls-certfile {} --tls-keyfile {} --tls-cafile {} --timeout 120s",
        bin("vergentctl").display(),
        node.proc.addr,
        tls.cert.display(),
        tls.key.display(),
        tls.ca.display()
    );
    let mut cmd = Command::new("script");
    for var in CLEARED {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("HOME", std::env::temp_dir())
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script");
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().expect("stdout piped");
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("screen")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let shows = |what: &str, after: usize| {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let s = screen.lock().expect("screen").clone();
            if s[after..].contains(what) {
                return s.len();
            }
            assert!(Instant::now() < deadline, "no {what:?} on the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut stdin = child.stdin.take().expect("stdin piped");
    let mut type_in = |bytes: &[u8]| {
        stdin.write_all(bytes).expect("type");
        stdin.flush().expect("flush");
    };
    let at = shows("Connected to", 0);
    type_in(b"put k v\n");
    let at = shows("OK hlc=", at);

    // The node stops reading; the next get reaches its socket and waits.
    common::signal(node.proc.pid(), "STOP");
    let before = unread_bytes_at(port);
    type_in(b"get k\n");
    let deadline = Instant::now() + RUN_DEADLINE;
    while unread_bytes_at(port) <= before {
        assert!(Instant::now() < deadline, "the get never reached the node");
        std::thread::sleep(Duration::from_millis(5));
    }
    let typed = Instant::now();
    type_in(b"\x03");
    let at = shows("(cancelled)", at);
    assert!(
        typed.elapsed() < Duration::from_secs(30),
        "cancelled only after {:?}, not at once",
        typed.elapsed()
    );
    common::signal(node.proc.pid(), "CONT");

    // The shell is still there, and its next command runs.
    type_in(b"get k\n");
    shows("\nv\r\n", at);
    type_in(b"exit\n");
    drop(stdin);
    let out = wait_output(child, RUN_DEADLINE);
    let screen = screen.lock().expect("screen").clone();
    assert_eq!(out.status.code(), Some(0), "{screen}\n{}", show(&out));
    assert!(!screen.contains("error:"), "{screen}");
}
