//! The interactive shell and its non-interactive twin for pipes and `-e`.
//!
//! Lines are split like a POSIX shell (quotes keep spaces), parsed into a
//! [`Cmd`], then run against the node. A failed command prints one `error:`
//! line and never ends the shell; when reading from a pipe, the exit code is 1
//! if any command failed.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use futures::StreamExt;
use indicatif::HumanBytes;
use rustyline::error::ReadlineError;
use std::cell::Cell;

use vergent_client::{Client, Consistency, Error, Expect, PutOptions};

use crate::exit;

const HELP: &str = "\
Commands:
  put KEY VALUE [--ttl DURATION]   store a value (e.g. --ttl 30s); prints OK hlc=...
  get KEY                          print the value, or (nil)
  get -v KEY | getv KEY            print the value with its HLC and origin node
  get --serial KEY                 a linearizable read (by per-key consensus)
  delete KEY                       delete a key; prints OK hlc=...
  cas KEY EXPECTED NEW             compare-and-set by per-key consensus: write NEW if KEY
                                   holds EXPECTED; prints OK hlc=... when it applied, else
                                   NOT APPLIED with the current value and version
  cas KEY --absent NEW             ... if KEY holds nothing (absent or deleted)
  cas KEY EXPECTED --delete        ... delete KEY if it holds EXPECTED
  member remove ID                 remove voter ID (a dead node) by a joint configuration
                                   change; prints the voters before and after
  keyspace strict PREFIX           declare PREFIX strict: eventual (ONE) writes of keys under
                                   it are refused (STRONG_KEYSPACE); only SERIAL and cas write
  consistency [one|serial|quorum|all]
                                   show or set the session's level for put/get/delete
                                   (put, get and delete also take --consistency LEVEL)
  scan [PREFIX] [LIMIT]            list keys and values under PREFIX (default limit 100)
  watch [PREFIX]                   stream changes applied on this node (Ctrl-C stops)
  status                           show the node's id, version, uptime, key count and replication
  members                          show the cluster as this node sees it (gossip)
  help                             this text
  exit | quit | \\q                 leave (Ctrl-D works too)
Quote values with spaces: put greeting \"hello world\"";

/// A parsed shell command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    Put {
        key: String,
        value: String,
        ttl: Option<Duration>,
        consistency: Option<Consistency>,
    },
    Get {
        key: String,
        verbose: bool,
        consistency: Option<Consistency>,
    },
    Delete {
        key: String,
        consistency: Option<Consistency>,
    },
    Cas {
        key: String,
        expect: CasExpect,
        /// `None`: delete.
        new: Option<String>,
    },
    /// Show (`None`) or set the session's consistency level.
    Consistency(Option<Consistency>),
    /// `keyspace strict PREFIX`.
    Strict {
        prefix: String,
    },
    /// `member remove ID`.
    RemoveMember {
        id: String,
    },
    Scan {
        prefix: String,
        limit: u32,
    },
    Watch {
        prefix: String,
    },
    Status,
    Members,
    Help,
    Exit,
    Empty,
}

/// What a `cas` line requires of the key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CasExpect {
    /// `--absent`.
    Absent,
    /// This value.
    Value(String),
}

/// Parses a level name as cqlsh's `CONSISTENCY` takes it (any case).
fn level(name: &str) -> Result<Consistency, String> {
    match name.to_ascii_lowercase().as_str() {
        "one" => Ok(Consistency::One),
        "quorum" => Ok(Consistency::Quorum),
        "all" => Ok(Consistency::All),
        "serial" => Ok(Consistency::Serial),
        _ => Err(format!(
            "unknown consistency level {name:?}: one, quorum, all or serial"
        )),
    }
}

/// A level's name as the shell prints it.
pub(crate) fn level_name(c: Consistency) -> &'static str {
    match c {
        Consistency::Unspecified | Consistency::One => "ONE",
        Consistency::Quorum => "QUORUM",
        Consistency::All => "ALL",
        Consistency::Serial => "SERIAL",
    }
}

/// Splits `--consistency LEVEL` and `--serial` out of `args`.
fn take_level(
    args: Vec<String>,
    usage: &str,
) -> Result<(Vec<String>, Option<Consistency>), String> {
    let (mut rest, mut consistency) = (Vec::new(), None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--consistency" => {
                let l = it.next().ok_or(format!("usage: {usage}"))?;
                consistency = Some(level(&l)?);
            }
            "--serial" => consistency = Some(Consistency::Serial),
            _ => rest.push(a),
        }
    }
    Ok((rest, consistency))
}

/// Parses one input line.
pub(crate) fn parse(line: &str) -> Result<Cmd, String> {
    // psql's quit; checked before splitting, which would eat the backslash.
    if line.trim() == "\\q" {
        return Ok(Cmd::Exit);
    }
    let words = shlex::split(line).ok_or("unbalanced quotes")?;
    let mut it = words.into_iter();
    let Some(cmd) = it.next() else {
        return Ok(Cmd::Empty);
    };
    let args: Vec<String> = it.collect();
    let arity = |n: usize, usage: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    };
    match cmd.to_ascii_lowercase().as_str() {
        "put" | "set" => {
            let usage = "put KEY VALUE [--ttl DURATION] [--consistency LEVEL]";
            let (args, consistency) = take_level(args, usage)?;
            let (mut pos, mut ttl) = (Vec::new(), None);
            let mut it = args.into_iter();
            while let Some(a) = it.next() {
                if a == "--ttl" {
                    let d = it.next().ok_or(format!("usage: {usage}"))?;
                    ttl = Some(
                        humantime::parse_duration(&d)
                            .map_err(|e| format!("invalid --ttl {d:?}: {e}"))?,
                    );
                } else {
                    pos.push(a);
                }
            }
            let [key, value]: [String; 2] =
                pos.try_into().map_err(|_| format!("usage: {usage}"))?;
            Ok(Cmd::Put {
                key,
                value,
                ttl,
                consistency,
            })
        }
        "get" | "getv" => {
            let usage = "get [-v] [--serial | --consistency LEVEL] KEY";
            let (args, consistency) = take_level(args, usage)?;
            let mut verbose = cmd.eq_ignore_ascii_case("getv");
            let mut keys = Vec::new();
            for a in args {
                if a == "-v" {
                    verbose = true;
                } else {
                    keys.push(a);
                }
            }
            let [key]: [String; 1] = keys.try_into().map_err(|_| format!("usage: {usage}"))?;
            Ok(Cmd::Get {
                key,
                verbose,
                consistency,
            })
        }
        "delete" | "del" => {
            let usage = "delete KEY [--consistency LEVEL]";
            let (args, consistency) = take_level(args, usage)?;
            let [key]: [String; 1] = args.try_into().map_err(|_| format!("usage: {usage}"))?;
            Ok(Cmd::Delete { key, consistency })
        }
        "cas" => {
            let usage = "cas KEY EXPECTED NEW | cas KEY --absent NEW | cas KEY EXPECTED --delete";
            let absent = args.iter().any(|a| a == "--absent");
            let delete = args.iter().any(|a| a == "--delete");
            let pos: Vec<String> = args
                .into_iter()
                .filter(|a| a != "--absent" && a != "--delete")
                .collect();
            let wrong = || format!("usage: {usage}");
            match (absent, delete, pos.as_slice()) {
                (false, false, [key, expected, new]) => Ok(Cmd::Cas {
                    key: key.clone(),
                    expect: CasExpect::Value(expected.clone()),
                    new: Some(new.clone()),
                }),
                (true, false, [key, new]) => Ok(Cmd::Cas {
                    key: key.clone(),
                    expect: CasExpect::Absent,
                    new: Some(new.clone()),
                }),
                (false, true, [key, expected]) => Ok(Cmd::Cas {
                    key: key.clone(),
                    expect: CasExpect::Value(expected.clone()),
                    new: None,
                }),
                (true, true, [key]) => Ok(Cmd::Cas {
                    key: key.clone(),
                    expect: CasExpect::Absent,
                    new: None,
                }),
                _ => Err(wrong()),
            }
        }
        "member" => match args.as_slice() {
            [sub, id] if sub == "remove" => Ok(Cmd::RemoveMember { id: id.clone() }),
            _ => Err("usage: member remove ID".into()),
        },
        "keyspace" => match args.as_slice() {
            [sub, prefix] if sub == "strict" => Ok(Cmd::Strict {
                prefix: prefix.clone(),
            }),
            _ => Err("usage: keyspace strict PREFIX".into()),
        },
        "consistency" => match args.as_slice() {
            [] => Ok(Cmd::Consistency(None)),
            [l] => Ok(Cmd::Consistency(Some(level(l)?))),
            _ => Err("usage: consistency [one|serial|quorum|all]".into()),
        },
        "scan" => {
            let usage = "scan [PREFIX] [LIMIT]";
            if args.len() > 2 {
                return Err(format!("usage: {usage}"));
            }
            let limit = match args.get(1) {
                Some(l) => l
                    .parse()
                    .map_err(|_| format!("invalid LIMIT {l:?}: expected a number"))?,
                None => 100,
            };
            Ok(Cmd::Scan {
                prefix: args.first().cloned().unwrap_or_default(),
                limit,
            })
        }
        "watch" => {
            if args.len() > 1 {
                return Err("usage: watch [PREFIX]".into());
            }
            Ok(Cmd::Watch {
                prefix: args.first().cloned().unwrap_or_default(),
            })
        }
        "status" => {
            arity(0, "status")?;
            Ok(Cmd::Status)
        }
        "members" => {
            arity(0, "members")?;
            Ok(Cmd::Members)
        }
        "help" | "?" => Ok(Cmd::Help),
        "exit" | "quit" => Ok(Cmd::Exit),
        other => Err(format!("unknown command {other:?}; type help")),
    }
}

/// Shows bytes as UTF-8 text when they are, escaping them otherwise.
pub(crate) fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\t') => s.to_string(),
        _ => bytes.escape_ascii().to_string(),
    }
}

fn version_text(v: &vergent_client::Version) -> String {
    format!("hlc={} origin={}", v.hlc, v.origin)
}

/// The shell: a client, a runtime to drive it, and a prompt.
pub(crate) struct Shell {
    client: Client,
    runtime: tokio::runtime::Runtime,
    /// The session's level for put/get/delete (`consistency LEVEL`).
    level: Cell<Consistency>,
}

impl Shell {
    pub(crate) fn new(client: Client, runtime: tokio::runtime::Runtime) -> Self {
        Self {
            client,
            runtime,
            level: Cell::new(Consistency::One),
        }
    }

    /// `vergent(ADDR)> `, with the session's level when it is not ONE.
    fn prompt(&self) -> String {
        match self.level.get() {
            Consistency::One | Consistency::Unspecified => {
                format!("vergent({})> ", self.client.endpoint())
            }
            l => format!(
                "vergent({})[{}]> ",
                self.client.endpoint(),
                level_name(l).to_ascii_lowercase()
            ),
        }
    }

    /// A command's own level, else the session's.
    fn level_for(&self, given: Option<Consistency>) -> Consistency {
        given.unwrap_or(self.level.get())
    }

    /// Runs the `-e` commands in order; stops at the first failure.
    pub(crate) fn run_commands(&self, commands: &[String]) -> u8 {
        for line in commands {
            match self.run_line(line) {
                Ok(true) => {}
                Ok(false) => return 0,
                Err(code) => return code,
            }
        }
        0
    }

    /// Reads commands from the terminal (with line editing and history) or,
    /// when stdin is not a terminal, line by line from stdin.
    pub(crate) fn run(&self) -> u8 {
        if std::io::stdin().is_terminal() {
            self.run_interactive()
        } else {
            self.run_piped()
        }
    }

    fn run_piped(&self) -> u8 {
        let mut status = 0;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match self.run_line(&line) {
                Ok(true) => {}
                Ok(false) => break,
                Err(code) => status = status.max(code),
            }
        }
        status
    }

    fn run_interactive(&self) -> u8 {
        let mut editor = match rustyline::DefaultEditor::new() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: cannot start the line editor: {e}");
                return exit::ERROR;
            }
        };
        let history = std::env::var_os("HOME")
            .map(|h| std::path::PathBuf::from(h).join(".vergentctl_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        println!(
            "Connected to {}. Type help for commands.",
            self.client.endpoint()
        );
        loop {
            match editor.readline(&self.prompt()) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if let Ok(false) = self.run_line(&line) {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("error: {e}");
                    break;
                }
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        0
    }

    /// Runs one line. `Ok(false)` means exit; `Err(code)` a failed command.
    fn run_line(&self, line: &str) -> Result<bool, u8> {
        let cmd = match parse(line) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(exit::ERROR);
            }
        };
        if cmd == Cmd::Exit {
            return Ok(false);
        }
        match self.runtime.block_on(self.execute(cmd)) {
            Ok(()) => Ok(true),
            Err(e) => {
                eprintln!("error: {}", describe(&e));
                let _ = std::io::stdout().flush();
                Err(if e.is_connection() {
                    exit::CONNECT
                } else {
                    exit::ERROR
                })
            }
        }
    }

    async fn execute(&self, cmd: Cmd) -> Result<(), Error> {
        let c = &self.client;
        let mut out = std::io::stdout().lock();
        match cmd {
            Cmd::Put {
                key,
                value,
                ttl,
                consistency,
            } => {
                let v = c
                    .put_with(
                        key,
                        value,
                        PutOptions {
                            ttl,
                            consistency: Some(self.level_for(consistency)),
                        },
                    )
                    .await?;
                let _ = writeln!(out, "OK hlc={}", v.hlc);
            }
            Cmd::Cas { key, expect, new } => {
                let expect = match expect {
                    CasExpect::Absent => Expect::Absent,
                    CasExpect::Value(v) => Expect::Value(v.into_bytes()),
                };
                let r = c
                    .compare_and_set(key, expect, new.map(String::into_bytes))
                    .await?;
                // Neither outcome is an error: a CAS that finds something
                // else is an answer, and exits 0 in -e and pipe mode too.
                match (&r.applied, &r.value, &r.version) {
                    (true, _, Some(v)) => {
                        let _ = writeln!(out, "OK hlc={}", v.hlc);
                    }
                    (true, _, None) => {
                        let _ = writeln!(out, "OK");
                    }
                    (false, Some(value), Some(v)) => {
                        let _ = writeln!(
                            out,
                            "NOT APPLIED current={} {}",
                            show(value),
                            version_text(v)
                        );
                    }
                    (false, None, Some(v)) => {
                        let _ = writeln!(out, "NOT APPLIED current=(nil) {}", version_text(v));
                    }
                    (false, _, None) => {
                        let _ = writeln!(out, "NOT APPLIED current=(nil)");
                    }
                }
            }
            Cmd::RemoveMember { id } => {
                let before = c.status().await?.voting;
                let change = c.remove_member(id.clone()).await?;
                let v = &change.voting;
                let _ = writeln!(
                    out,
                    "OK removed {id}: voters {} -> {} (epoch {})",
                    before.map_or_else(|| "?".to_string(), |b| b.voters.join(", ")),
                    v.voters.join(", "),
                    v.epoch
                );
                if !change.unconfirmed.is_empty() {
                    let _ = writeln!(
                        out,
                        "not yet confirmed by {}",
                        change.unconfirmed.join(", ")
                    );
                }
            }
            Cmd::Strict { prefix } => {
                let change = c.declare_strict(prefix.clone()).await?;
                let v = &change.voting;
                let _ = writeln!(
                    out,
                    "OK strict prefix {prefix:?}: configuration epoch {} (voters {}; strict {})",
                    v.epoch,
                    v.voters.join(", "),
                    v.strict_prefixes
                        .iter()
                        .map(|p| format!("{:?}", show(p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if change.unconfirmed.is_empty() {
                    let _ = writeln!(out, "in force on every voter");
                } else {
                    let _ = writeln!(
                        out,
                        "not yet confirmed by {} (they take it with their next consensus message)",
                        change.unconfirmed.join(", ")
                    );
                }
            }
            Cmd::Consistency(None) => {
                let _ = writeln!(
                    out,
                    "Current consistency level is {}.",
                    level_name(self.level.get())
                );
            }
            Cmd::Consistency(Some(l)) => {
                self.level.set(l);
                let _ = writeln!(out, "Consistency level set to {}.", level_name(l));
            }
            Cmd::Get {
                key,
                verbose,
                consistency,
            } => match c.get_with(key, Some(self.level_for(consistency))).await? {
                None => {
                    let _ = writeln!(out, "(nil)");
                }
                Some(e) => {
                    let _ = writeln!(out, "{}", show(&e.value));
                    if verbose {
                        let _ = write!(out, "{}", version_text(&e.version));
                        if let Some(at) = e.expires_at_ms {
                            let ts = vergent_hlc::Timestamp::new(at, 0);
                            let _ =
                                write!(out, " expires={}", ts.to_string().trim_end_matches("+0"));
                        }
                        let _ = writeln!(out, " consistency={}", level_name(e.consistency));
                    }
                }
            },
            Cmd::Delete { key, consistency } => {
                let d = c
                    .delete_with(key, Some(self.level_for(consistency)))
                    .await?;
                let _ = writeln!(out, "OK hlc={}", d.version.hlc);
            }
            Cmd::Scan { prefix, limit } => {
                let page = c.scan(prefix, None, limit).await?;
                for e in &page.entries {
                    let _ = writeln!(out, "{}\t{}", show(&e.key), show(&e.value));
                }
                let _ = writeln!(
                    out,
                    "({} {}{})",
                    page.entries.len(),
                    if page.entries.len() == 1 {
                        "entry"
                    } else {
                        "entries"
                    },
                    if page.more {
                        ", more exist: raise LIMIT or narrow PREFIX"
                    } else {
                        ""
                    }
                );
            }
            Cmd::Watch { prefix } => {
                drop(out);
                self.watch(prefix).await?;
            }
            Cmd::Status => {
                let s = c.status().await?;
                let _ = writeln!(out, "node_id:      {}", s.node_id);
                let _ = writeln!(out, "version:      {}", s.version);
                let _ = writeln!(out, "address:      {}", s.advertise_addr);
                let _ = writeln!(
                    out,
                    "uptime:       {}",
                    humantime::format_duration(Duration::from_secs(s.uptime.as_secs()))
                );
                let _ = writeln!(out, "keys:         {}", s.key_count);
                let _ = writeln!(out, "hlc:          {}", s.hlc_now);
                let _ = writeln!(out, "fsync:        {}", s.fsync_policy);
                let _ = writeln!(out, "data_dir:     {}", s.data_dir);
                let peers = if s.peers.is_empty() {
                    "(none)".to_string()
                } else {
                    s.peers.join(", ")
                };
                let _ = writeln!(out, "peers:        {peers}");
                let _ = writeln!(out, "log:          {}..{}", s.log_first_seq, s.log_last_seq);
                for (peer, cursor, lag) in &s.replication {
                    let _ = writeln!(out, "replicated:   {peer} cursor={cursor} lag={lag}");
                }
                let _ = writeln!(
                    out,
                    "state:        {}{}",
                    s.state,
                    if s.catching_up {
                        " (catching up: answers no QUORUM/ALL reads until synced with enough voters)"
                    } else {
                        ""
                    }
                );
                let _ = writeln!(out, "voting:       {}", voting_text(&s));
                let _ = writeln!(
                    out,
                    "paxos state:  {} keys not yet collected",
                    s.paxos_records
                );
                let _ = writeln!(
                    out,
                    "consistency:  {} (this session)",
                    level_name(self.level.get())
                );
                let _ = writeln!(out, "purged:       {}", s.purged);
                if let Some((why, since)) = &s.purge_held_back {
                    let since = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_millis(*since),
                    );
                    let _ = writeln!(out, "purge:        held back since {since}: {why}");
                }
                if !s.fenced.is_empty() {
                    let _ = writeln!(
                        out,
                        "expired:      {} (refused until wiped)",
                        s.fenced.join(", ")
                    );
                }
                if s.refused_records + s.records_too_old_for_log + s.refused_peers > 0 {
                    let _ = writeln!(
                        out,
                        "refused:      records={} too_old_for_log={} peers={}",
                        s.refused_records, s.records_too_old_for_log, s.refused_peers
                    );
                }
                let workers: Vec<String> = s
                    .workers
                    .iter()
                    .map(|w| match w.state.as_str() {
                        "running" => w.name.clone(),
                        "failed" => format!("{} (FAILED: {})", w.name, w.error),
                        other => format!("{} ({other})", w.name),
                    })
                    .collect();
                let _ = writeln!(out, "workers:      {}", workers.join(", "));
                let m = &s.storage_memory;
                let _ = writeln!(
                    out,
                    "memory:       memtables {}, block cache {} of {}, table readers {}",
                    HumanBytes(m.memtables),
                    HumanBytes(m.block_cache),
                    HumanBytes(m.block_cache_capacity),
                    HumanBytes(m.table_readers)
                );
                for r in &s.repairs {
                    let last = if r.last_repair_ms == 0 {
                        "never".to_string()
                    } else {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_millis(r.last_repair_ms),
                        )
                        .to_string()
                    };
                    let error = if r.last_error.is_empty() {
                        String::new()
                    } else {
                        format!(" last_error={:?}", r.last_error)
                    };
                    let _ = writeln!(
                        out,
                        "repaired:     {} last={last} sessions={} differing_buckets={} keys_in={} keys_out={} bytes={}{error}",
                        r.peer_id,
                        r.sessions,
                        r.differing_buckets,
                        r.keys_received,
                        r.keys_sent,
                        r.bytes
                    );
                }
            }
            Cmd::Members => {
                let s = c.status().await?;
                let _ = writeln!(out, "voting configuration: {}", voting_text(&s));
                let voter = |id: &str| {
                    s.voting
                        .as_ref()
                        .is_some_and(|v| v.voters.iter().chain(&v.joining).any(|x| x == id))
                };
                let _ = writeln!(
                    out,
                    "{:<20} {:<22} {:<8} {:>11} {:<5}  last change",
                    "id", "address", "state", "incarnation", "voter"
                );
                for m in &s.members {
                    let since = if m.since_ms == 0 {
                        "-".to_string()
                    } else {
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + Duration::from_millis(m.since_ms),
                        )
                        .to_string()
                    };
                    let me = if m.node_id == s.node_id {
                        " (this node)"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "{:<20} {:<22} {:<8} {:>11} {:<5}  {since}{me}",
                        m.node_id,
                        m.addr,
                        m.state,
                        m.incarnation,
                        if voter(&m.node_id) { "yes" } else { "no" }
                    );
                }
            }
            Cmd::Help => {
                let _ = writeln!(out, "{HELP}");
            }
            Cmd::Exit | Cmd::Empty => {}
        }
        Ok(())
    }

    async fn watch(&self, prefix: String) -> Result<(), Error> {
        let mut stream = self.client.watch(prefix).await?;
        eprintln!("watching; Ctrl-C to stop");
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                ev = stream.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    let ev = ev?;
                    let source = if ev.local { "local" } else { "remote" };
                    let line = match &ev.value {
                        Some(v) => format!("PUT {} {} {} {source}", show(&ev.key), show(v), version_text(&ev.version)),
                        None => format!("DELETE {} {} {source}", show(&ev.key), version_text(&ev.version)),
                    };
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
    }
}

/// The voting configuration in one line: epoch, voters, a change in flight.
fn voting_text(s: &vergent_client::NodeStatus) -> String {
    match &s.voting {
        Some(v) => {
            let mut t = format!("epoch {}, voters {}", v.epoch, v.voters.join(", "));
            if !v.strict_prefixes.is_empty() {
                let strict: Vec<String> = v
                    .strict_prefixes
                    .iter()
                    .map(|p| format!("{:?}", show(p)))
                    .collect();
                t.push_str(&format!("; strict prefixes {}", strict.join(", ")));
            }
            if !v.joining.is_empty() {
                t.push_str(&format!(
                    "; changing to {} (both majorities needed)",
                    v.joining.join(", ")
                ));
            }
            t
        }
        None => format!("not formed yet: {}", s.voting_pending),
    }
}

/// One line for the user, with a hint where one helps.
fn describe(e: &Error) -> String {
    use vergent_client::ErrorCode;
    match e {
        Error::Server {
            error_code: Some(ErrorCode::UnsupportedConsistency),
            message,
            ..
        } => message.clone(),
        Error::Server {
            error_code: Some(ErrorCode::OutcomeUnknown),
            message,
            ..
        } => format!("{message} (OUTCOME_UNKNOWN: check with get --serial)"),
        Error::Server { code, message, .. } => format!("{message} ({code:?})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Cmd {
        parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn commands_parse_as_documented() {
        assert_eq!(
            ok("put foo bar"),
            Cmd::Put {
                key: "foo".into(),
                value: "bar".into(),
                ttl: None,
                consistency: None
            }
        );
        assert_eq!(
            ok(r#"put greeting "hello world""#),
            Cmd::Put {
                key: "greeting".into(),
                value: "hello world".into(),
                ttl: None,
                consistency: None
            }
        );
        assert_eq!(
            ok("put k v --ttl 30s"),
            Cmd::Put {
                key: "k".into(),
                value: "v".into(),
                ttl: Some(Duration::from_secs(30)),
                consistency: None
            }
        );
        assert_eq!(
            ok("get foo"),
            Cmd::Get {
                key: "foo".into(),
                verbose: false,
                consistency: None
            }
        );
        assert_eq!(
            ok("get -v foo"),
            Cmd::Get {
                key: "foo".into(),
                verbose: true,
                consistency: None
            }
        );
        assert_eq!(
            ok("getv foo"),
            Cmd::Get {
                key: "foo".into(),
                verbose: true,
                consistency: None
            }
        );
        assert_eq!(
            ok("DELETE foo"),
            Cmd::Delete {
                key: "foo".into(),
                consistency: None
            }
        );
        assert_eq!(
            ok("scan"),
            Cmd::Scan {
                prefix: "".into(),
                limit: 100
            }
        );
        assert_eq!(
            ok("scan user/ 5"),
            Cmd::Scan {
                prefix: "user/".into(),
                limit: 5
            }
        );
        assert_eq!(
            ok("watch app/"),
            Cmd::Watch {
                prefix: "app/".into()
            }
        );
        assert_eq!(ok("  "), Cmd::Empty);
        assert_eq!(ok("\\q"), Cmd::Exit);
        assert_eq!(ok("status"), Cmd::Status);
    }

    #[test]
    fn strong_commands_and_levels_parse_as_documented() {
        assert_eq!(
            ok("cas counter 1 2"),
            Cmd::Cas {
                key: "counter".into(),
                expect: CasExpect::Value("1".into()),
                new: Some("2".into())
            }
        );
        assert_eq!(
            ok("cas lock --absent me"),
            Cmd::Cas {
                key: "lock".into(),
                expect: CasExpect::Absent,
                new: Some("me".into())
            }
        );
        assert_eq!(
            ok("cas lock me --delete"),
            Cmd::Cas {
                key: "lock".into(),
                expect: CasExpect::Value("me".into()),
                new: None
            }
        );
        assert_eq!(
            ok("get --serial k"),
            Cmd::Get {
                key: "k".into(),
                verbose: false,
                consistency: Some(Consistency::Serial)
            }
        );
        assert_eq!(
            ok("get -v --consistency serial k"),
            Cmd::Get {
                key: "k".into(),
                verbose: true,
                consistency: Some(Consistency::Serial)
            }
        );
        assert_eq!(
            ok("put k v --consistency ALL"),
            Cmd::Put {
                key: "k".into(),
                value: "v".into(),
                ttl: None,
                consistency: Some(Consistency::All)
            }
        );
        assert_eq!(
            ok("delete k --serial"),
            Cmd::Delete {
                key: "k".into(),
                consistency: Some(Consistency::Serial)
            }
        );
        assert_eq!(ok("consistency"), Cmd::Consistency(None));
        assert_eq!(
            ok("member remove node-3"),
            Cmd::RemoveMember {
                id: "node-3".into()
            }
        );
        assert_eq!(
            ok("keyspace strict locks/"),
            Cmd::Strict {
                prefix: "locks/".into()
            }
        );
        assert_eq!(
            ok("CONSISTENCY quorum"),
            Cmd::Consistency(Some(Consistency::Quorum))
        );
        for (line, want) in [
            ("cas k 1", "usage: cas"),
            ("cas k --absent", "usage: cas"),
            ("cas k 1 2 3", "usage: cas"),
            ("consistency sometimes", "unknown consistency level"),
            ("get k --consistency", "usage: get"),
        ] {
            let err = parse(line).expect_err(line);
            assert!(err.contains(want), "{line:?} gave {err:?}");
        }
    }

    #[test]
    fn malformed_lines_get_one_line_errors() {
        for (line, want) in [
            ("put foo", "usage: put"),
            ("put a b c", "usage: put"),
            ("get", "usage: get"),
            ("put k \"unterminated", "unbalanced quotes"),
            ("frobnicate", "unknown command"),
            ("scan p notanumber", "invalid LIMIT"),
            ("put k v --ttl soon", "invalid --ttl"),
        ] {
            let err = parse(line).expect_err(line);
            assert!(err.contains(want), "{line:?} gave {err:?}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn binary_bytes_are_escaped_and_text_is_shown_as_is() {
        assert_eq!(show(b"hello world"), "hello world");
        assert_eq!(show("héllo".as_bytes()), "héllo");
        assert_eq!(show(&[0xff, b'a', 0]), "\\xffa\\x00");
    }
}
