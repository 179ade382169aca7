//! The interactive shell and its non-interactive twins for pipes and `-e`.
//!
//! Lines are bytes: they are split into words by [`split`] (quotes keep
//! blanks; double quotes read `\xNN` escapes), parsed into a [`Cmd`], then
//! run against the node. Keys and values stay bytes to the API, and are shown
//! by [`show`] so that bytes and text that looks like their escapes never
//! print alike, or as JSON Lines ([`Format::Json`]), or for `get`, `scan` and
//! `members` as an aligned table ([`Format::Table`]). A failed command prints
//! one `error:` line (with its line number when piped) and never ends the
//! shell; piped, the exit code is 1 if any line failed; with `-e`, a `get` that
//! finds nothing also exits 1. The one-shot subcommands (`vergentctl get …`)
//! run their [`Cmd`] through [`Shell::run_one`], as `-e` does.
//!
//! The client may hold several endpoints and move to another when the node in
//! use cannot serve: the prompt shows the endpoint in use, and a note on
//! stderr says when a command moved it. In the terminal, Ctrl-C cancels the
//! request in flight (the future is dropped) and the shell goes on.

pub(crate) use crate::words::{quote, split};
use std::borrow::Cow;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::Duration;

use futures::StreamExt;
use indicatif::HumanBytes;
use rustyline::error::ReadlineError;
use serde_json::{Map, Value, json};
use std::cell::Cell;

use vergent_client::{Client, Consistency, Error, Expect, PutOptions};

use crate::exit;
use crate::table::Table;

/// Each command's help: the names it answers to (the first is its own), and
/// its lines of `help`.
const COMMANDS: &[(&[&str], &str)] = &[
    (
        &["put", "set"],
        "\
  put KEY VALUE [--ttl DURATION]   store a value (e.g. --ttl 30s); prints OK hlc=...
  put KEY --value-file FILE        ... the file's bytes
  put KEY --stdin                  ... all of stdin's bytes (-e mode only, like redis-cli -x:
                                   printf 'a\\nb' | vergentctl connect ... -e 'put k --stdin')",
    ),
    (
        &["get", "getv"],
        "\
  get KEY                          print the value, or (nil); with -e or piped input, a
                                   missing key makes the exit code 1 (later lines still run)
  get -v KEY | getv KEY            print the value with its HLC and origin node
  get --raw KEY                    print the value's bytes alone: no newline, no escaping
                                   (nothing on stdout when missing)
  get --serial KEY                 a linearizable read (by per-key consensus)",
    ),
    (
        &["delete", "del"],
        "  delete KEY                       delete a key; prints OK hlc=...",
    ),
    (
        &["cas"],
        "\
  cas KEY EXPECTED NEW             compare-and-set by per-key consensus: write NEW if KEY
                                   holds EXPECTED; prints OK hlc=... when it applied, else
                                   NOT APPLIED with the current value and version
  cas KEY --absent NEW             ... if KEY holds nothing (absent or deleted)
  cas KEY EXPECTED --delete        ... delete KEY if it holds EXPECTED",
    ),
    (
        &["member"],
        "\
  member remove ID                 remove voter ID (a dead node) by a joint configuration
                                   change; prints the voters before and after",
    ),
    (
        &["keyspace"],
        "\
  keyspace strict PREFIX           declare PREFIX strict: eventual (ONE) writes of keys under
                                   it are refused (STRONG_KEYSPACE); only SERIAL and cas write",
    ),
    (
        &["consistency"],
        "\
  consistency [one|serial|quorum|all]
                                   show or set the session's level for put/get/delete
                                   (put, get and delete also take --consistency LEVEL)",
    ),
    (
        &["format"],
        "\
  format [text|json|table]         show or set the output format (connect --format): json
                                   prints one object per result line (JSON Lines); keys and
                                   values are strings when UTF-8, else base64 under key_b64 /
                                   value_b64; a missing key is {\"key\":..,\"found\":false};
                                   trailers such as (2 entries) go to stderr.
                                   table prints get, scan and members as aligned columns under
                                   a header row (KEY VALUE; get -v adds HLC ORIGIN EXPIRES
                                   CONSISTENCY), values escaped as text shows them and never
                                   cut; a missing key is (nil) and the trailer follows the
                                   table on stdout, as in text; every other command (status,
                                   watch, put, delete, cas, ...) prints as text",
    ),
    (
        &["scan"],
        "  scan [PREFIX] [LIMIT]            list keys and values under PREFIX (default limit 100)",
    ),
    (
        &["watch"],
        "  watch [PREFIX]                   stream changes applied on this node (Ctrl-C stops)",
    ),
    (
        &["status"],
        "  status                           show the node's id, version, uptime, key count and replication",
    ),
    (
        &["members"],
        "  members                          show the cluster as this node sees it (gossip)",
    ),
    (
        &["endpoint"],
        "\
  endpoint                         show the endpoint in use (the prompt shows it too) and
                                   every endpoint this shell may fail over to",
    ),
    (
        &["help", "?"],
        "  help [COMMAND]                   this text, or one command's",
    ),
    (
        &["exit", "quit", "\\q"],
        "  exit | quit | \\q                 leave (Ctrl-D works too)",
    ),
];

/// How words are written, after the commands in `help`.
const HELP_WORDS: &str = r#"Words: blanks separate them; quote to keep blanks: put greeting "hello world".
  'single quotes' keep every byte as typed; "double quotes" read \xNN (any byte),
  \n, \r, \t, \\ and \"; outside quotes a backslash is an ordinary character.
  put k "a\x00b" stores 3 bytes.
Values: printable UTF-8 text is shown as it is; anything else (bytes that are not
  UTF-8, control characters, an empty value, text starting with ") is shown
  double-quoted with those escapes, e.g. "\xff\xfe", which reads back as the same
  bytes. So the text foo\x41 shows as foo\x41, and the byte 0x41 after foo as fooA.
Piped input is read as bytes, line by line; a line that fails is reported as
  error: ... (line N), the next lines still run, and the exit code is 1 (3 if the
  node could not be reached)."#;

/// The full `help` text.
fn help_text() -> String {
    let mut text = String::from("Commands:\n");
    for (_, lines) in COMMANDS {
        text.push_str(lines);
        text.push('\n');
    }
    text.push_str(HELP_WORDS);
    text
}

/// The command named `name` (any case, aliases too), as its index in
/// [`COMMANDS`].
fn command(name: &str) -> Option<usize> {
    COMMANDS
        .iter()
        .position(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// The command name nearest to `word`, when it is at most 2 edits away (and
/// fewer edits than `word` has characters).
fn suggest(word: &str) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    COMMANDS
        .iter()
        .flat_map(|(names, _)| names.iter().copied())
        .map(|name| (edit_distance(&word, name), name))
        .filter(|&(d, _)| d <= 2 && d < word.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Words `complete` offers after each command (first name in [`COMMANDS`]).
const COMPLETIONS: &[(&str, &[&str])] = &[
    (
        "put",
        &[
            "--ttl",
            "--value-file",
            "--stdin",
            "--consistency",
            "--serial",
        ],
    ),
    ("get", &["-v", "--raw", "--serial", "--consistency"]),
    ("delete", &["--consistency", "--serial"]),
    ("cas", &["--absent", "--delete"]),
    ("member", &["remove"]),
    ("keyspace", &["strict"]),
    ("consistency", &["one", "quorum", "all", "serial"]),
    ("format", &["text", "json", "table"]),
];

/// Tab completion of the word before `pos` in `line`: a command name first,
/// then that command's flags (after `--consistency`, the levels; after
/// `help`, command names). Returns where the word starts and the candidates.
fn complete(line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let start = before.rfind([' ', '\t']).map_or(0, |i| i + 1);
    let word = &before[start..];
    let mut earlier = before[..start].split_whitespace();
    let names = || {
        COMMANDS
            .iter()
            .flat_map(|(names, _)| names.iter().copied())
            .filter(|n| n.chars().all(|c| c.is_ascii_alphabetic()))
    };
    let options: Vec<&str> = match earlier.next().map(str::to_ascii_lowercase) {
        None => names().collect(),
        Some(cmd) if cmd == "help" => names().collect(),
        Some(cmd) => {
            if before[..start].split_whitespace().last() == Some("--consistency") {
                vec!["one", "quorum", "all", "serial"]
            } else {
                let own = command(&cmd).map(|i| COMMANDS[i].0[0]);
                COMPLETIONS
                    .iter()
                    .find(|(name, _)| Some(*name) == own)
                    .map(|(_, words)| words.to_vec())
                    .unwrap_or_default()
            }
        }
    };
    let candidates = options
        .into_iter()
        .filter(|o| o.starts_with(word))
        .map(String::from)
        .collect();
    (start, candidates)
}

/// rustyline's hooks: completion only.
struct Completion;

impl rustyline::completion::Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}

impl rustyline::highlight::Highlighter for Completion {}

impl rustyline::validate::Validator for Completion {}

impl rustyline::Helper for Completion {}

/// Adds this shell's new history lines to the file, merged with what other
/// shells wrote there since it was loaded (under a file lock), rather than
/// overwriting the file with this shell's view.
fn save_history(history: &mut impl rustyline::history::History, path: &std::path::Path) {
    if let Err(e) = history.append(path) {
        eprintln!("warning: cannot save history to {}: {e}", path.display());
    }
}

/// The one-line error for an unknown command `word`.
fn unknown(what: &str, word: &[u8]) -> String {
    match std::str::from_utf8(word).ok().and_then(suggest) {
        Some(name) => format!("unknown {what} {}; did you mean {name}?", quote(word)),
        None => format!("unknown {what} {}; type help", quote(word)),
    }
}

/// A parsed shell command. Keys and values are bytes, as the API takes them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cmd {
    Put {
        key: Vec<u8>,
        value: ValueFrom,
        ttl: Option<Duration>,
        consistency: Option<Consistency>,
    },
    Get {
        key: Vec<u8>,
        verbose: bool,
        /// `--raw`: the value's bytes alone, no newline, no escaping.
        raw: bool,
        consistency: Option<Consistency>,
    },
    Delete {
        key: Vec<u8>,
        consistency: Option<Consistency>,
    },
    Cas {
        key: Vec<u8>,
        expect: CasExpect,
        /// `None`: delete.
        new: Option<Vec<u8>>,
    },
    /// Show (`None`) or set the session's consistency level.
    Consistency(Option<Consistency>),
    /// Show (`None`) or set the session's output format.
    Format(Option<Format>),
    /// `keyspace strict PREFIX`.
    Strict {
        prefix: Vec<u8>,
    },
    /// `member remove ID`.
    RemoveMember {
        id: String,
    },
    Scan {
        prefix: Vec<u8>,
        limit: u32,
    },
    Watch {
        prefix: Vec<u8>,
    },
    Status,
    Members,
    /// `endpoint`: the endpoint in use and the others.
    Endpoint,
    /// `help`, or `help COMMAND` (its index in [`COMMANDS`]).
    Help(Option<usize>),
    Exit,
    Empty,
}

/// Where `put` takes its value from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ValueFrom {
    /// The argument.
    Arg(Vec<u8>),
    /// `--value-file FILE`: the file's bytes.
    File(std::path::PathBuf),
    /// `--stdin`: all of stdin's bytes (redis-cli's `-x`); `-e` mode only,
    /// once per run.
    Stdin,
}

/// What a `cas` line requires of the key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CasExpect {
    /// `--absent`.
    Absent,
    /// This value.
    Value(Vec<u8>),
}

/// Parses a level name as cqlsh's `CONSISTENCY` takes it (any case).
fn level(name: &[u8]) -> Result<Consistency, String> {
    match name.to_ascii_lowercase().as_slice() {
        b"one" => Ok(Consistency::One),
        b"quorum" => Ok(Consistency::Quorum),
        b"all" => Ok(Consistency::All),
        b"serial" => Ok(Consistency::Serial),
        _ => Err(format!(
            "unknown consistency level {}: one, quorum, all or serial",
            quote(name)
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
    args: Vec<Vec<u8>>,
    usage: &str,
) -> Result<(Vec<Vec<u8>>, Option<Consistency>), String> {
    let (mut rest, mut consistency) = (Vec::new(), None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_slice() {
            b"--consistency" => {
                let l = it.next().ok_or(format!("usage: {usage}"))?;
                consistency = Some(level(&l)?);
            }
            b"--serial" => consistency = Some(Consistency::Serial),
            _ => rest.push(a),
        }
    }
    Ok((rest, consistency))
}

/// A word as text, for command names, flags and node ids.
fn utf8(word: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(word).map_err(|_| format!("{} is not UTF-8 text", quote(word)))
}

/// Parses one input line.
pub(crate) fn parse(line: &[u8]) -> Result<Cmd, String> {
    // psql's quit.
    if line.trim_ascii() == b"\\q" {
        return Ok(Cmd::Exit);
    }
    let mut it = split(line)?.into_iter();
    let Some(cmd) = it.next() else {
        return Ok(Cmd::Empty);
    };
    let args: Vec<Vec<u8>> = it.collect();
    let arity = |n: usize, usage: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    };
    let name = cmd.to_ascii_lowercase();
    match name.as_slice() {
        b"put" | b"set" => {
            let usage = "put KEY (VALUE | --value-file FILE | --stdin) [--ttl DURATION] \
                         [--consistency LEVEL]";
            let (args, consistency) = take_level(args, usage)?;
            let (mut pos, mut ttl, mut from) = (Vec::new(), None, None);
            let mut it = args.into_iter();
            while let Some(a) = it.next() {
                match a.as_slice() {
                    b"--ttl" => {
                        let d = it.next().ok_or(format!("usage: {usage}"))?;
                        let d = utf8(&d)?;
                        ttl = Some(
                            humantime::parse_duration(d)
                                .map_err(|e| format!("invalid --ttl {d:?}: {e}"))?,
                        );
                    }
                    b"--value-file" | b"--stdin" if from.is_some() => {
                        return Err("put: give one of VALUE, --value-file or --stdin".into());
                    }
                    b"--value-file" => {
                        let f = it.next().ok_or(format!("usage: {usage}"))?;
                        from = Some(ValueFrom::File(utf8(&f)?.into()));
                    }
                    b"--stdin" => from = Some(ValueFrom::Stdin),
                    _ => pos.push(a),
                }
            }
            let (key, value) = match (from, <[Vec<u8>; 2]>::try_from(pos)) {
                (None, Ok([key, value])) => (key, ValueFrom::Arg(value)),
                (Some(from), Err(pos)) if pos.len() == 1 => {
                    (pos.into_iter().next().unwrap_or_default(), from)
                }
                (Some(_), Ok(_)) => {
                    return Err("put: give one of VALUE, --value-file or --stdin".into());
                }
                _ => return Err(format!("usage: {usage}")),
            };
            Ok(Cmd::Put {
                key,
                value,
                ttl,
                consistency,
            })
        }
        b"get" | b"getv" => {
            let usage = "get [-v | --raw] [--serial | --consistency LEVEL] KEY";
            let (args, consistency) = take_level(args, usage)?;
            let mut verbose = name == b"getv";
            let mut raw = false;
            let mut keys = Vec::new();
            for a in args {
                match a.as_slice() {
                    b"-v" => verbose = true,
                    b"--raw" => raw = true,
                    _ => keys.push(a),
                }
            }
            if raw && verbose {
                return Err("get: --raw prints the value alone; it does not go with -v".into());
            }
            let [key]: [Vec<u8>; 1] = keys.try_into().map_err(|_| format!("usage: {usage}"))?;
            Ok(Cmd::Get {
                key,
                verbose,
                raw,
                consistency,
            })
        }
        b"delete" | b"del" => {
            let usage = "delete KEY [--consistency LEVEL]";
            let (args, consistency) = take_level(args, usage)?;
            let [key]: [Vec<u8>; 1] = args.try_into().map_err(|_| format!("usage: {usage}"))?;
            Ok(Cmd::Delete { key, consistency })
        }
        b"cas" => {
            let absent = args.iter().any(|a| a == b"--absent");
            let delete = args.iter().any(|a| a == b"--delete");
            let pos: Vec<Vec<u8>> = args
                .into_iter()
                .filter(|a| a != b"--absent" && a != b"--delete")
                .collect();
            cas(pos, absent, delete)
        }
        b"member" => match args.as_slice() {
            [sub, id] if sub == b"remove" => Ok(Cmd::RemoveMember {
                id: utf8(id)?.to_string(),
            }),
            _ => Err("usage: member remove ID".into()),
        },
        b"keyspace" => match <[Vec<u8>; 2]>::try_from(args) {
            Ok([sub, prefix]) if sub == b"strict" => Ok(Cmd::Strict { prefix }),
            _ => Err("usage: keyspace strict PREFIX".into()),
        },
        b"consistency" => match args.as_slice() {
            [] => Ok(Cmd::Consistency(None)),
            [l] => Ok(Cmd::Consistency(Some(level(l)?))),
            _ => Err("usage: consistency [one|serial|quorum|all]".into()),
        },
        b"format" => match args.as_slice() {
            [] => Ok(Cmd::Format(None)),
            [f] if f.eq_ignore_ascii_case(b"text") => Ok(Cmd::Format(Some(Format::Text))),
            [f] if f.eq_ignore_ascii_case(b"json") => Ok(Cmd::Format(Some(Format::Json))),
            [f] if f.eq_ignore_ascii_case(b"table") => Ok(Cmd::Format(Some(Format::Table))),
            _ => Err("usage: format [text|json|table]".into()),
        },
        b"scan" => {
            let usage = "scan [PREFIX] [LIMIT]";
            if args.len() > 2 {
                return Err(format!("usage: {usage}"));
            }
            let limit = match args.get(1) {
                Some(l) => std::str::from_utf8(l)
                    .ok()
                    .and_then(|l| l.parse().ok())
                    .ok_or_else(|| format!("invalid LIMIT {}: expected a number", quote(l)))?,
                None => 100,
            };
            Ok(Cmd::Scan {
                prefix: args.into_iter().next().unwrap_or_default(),
                limit,
            })
        }
        b"watch" => {
            if args.len() > 1 {
                return Err("usage: watch [PREFIX]".into());
            }
            Ok(Cmd::Watch {
                prefix: args.into_iter().next().unwrap_or_default(),
            })
        }
        b"status" => {
            arity(0, "status")?;
            Ok(Cmd::Status)
        }
        b"members" => {
            arity(0, "members")?;
            Ok(Cmd::Members)
        }
        b"endpoint" => {
            arity(0, "endpoint")?;
            Ok(Cmd::Endpoint)
        }
        b"help" | b"?" => match args.as_slice() {
            [] => Ok(Cmd::Help(None)),
            [name] => std::str::from_utf8(name)
                .ok()
                .and_then(command)
                .map(|i| Cmd::Help(Some(i)))
                .ok_or_else(|| unknown("command", name)),
            _ => Err("usage: help [COMMAND]".into()),
        },
        b"exit" | b"quit" => Ok(Cmd::Exit),
        _ => Err(unknown("command", &cmd)),
    }
}

/// A `cas` from its words other than `--absent` and `--delete` (the key
/// first) and those two flags: `KEY EXPECTED NEW`, `KEY --absent NEW`,
/// `KEY EXPECTED --delete` or `KEY --absent --delete`.
pub(crate) fn cas(words: Vec<Vec<u8>>, absent: bool, delete: bool) -> Result<Cmd, String> {
    const USAGE: &str =
        "usage: cas KEY EXPECTED NEW | cas KEY --absent NEW | cas KEY EXPECTED --delete";
    let mut words = words.into_iter();
    let (Some(key), rest) = (words.next(), words.collect::<Vec<_>>()) else {
        return Err(USAGE.into());
    };
    let (expect, new) = match (absent, delete, <[Vec<u8>; 2]>::try_from(rest)) {
        (false, false, Ok([expected, new])) => (CasExpect::Value(expected), Some(new)),
        (true, false, Err(rest)) | (false, true, Err(rest)) if rest.len() == 1 => {
            let word = rest.into_iter().next().unwrap_or_default();
            if absent {
                (CasExpect::Absent, Some(word))
            } else {
                (CasExpect::Value(word), None)
            }
        }
        (true, true, Err(rest)) if rest.is_empty() => (CasExpect::Absent, None),
        _ => return Err(USAGE.into()),
    };
    Ok(Cmd::Cas { key, expect, new })
}

/// Shows bytes to a reader: as they are when they are printable UTF-8 text,
/// else [`quote`]d, the form [`split`] reads back.
///
/// The two forms never meet: text shown as it is never starts with `"`, and
/// is neither empty nor `(nil)`; everything else is quoted. So the text
/// `foo\x41` shows as `foo\x41` while `foo` and the byte 0x41 show as
/// `fooA`; the byte 0xff shows as `"\xff"`, and the text `"\xff"` as
/// `"\"\\xff\""`.
pub(crate) fn show(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s)
            if !s.is_empty()
                && !s.starts_with('"')
                && s != "(nil)"
                && !s.chars().any(char::is_control) =>
        {
            Cow::Borrowed(s)
        }
        _ => Cow::Owned(quote(bytes)),
    }
}

fn version_text(v: &vergent_client::Version) -> String {
    format!("hlc={} origin={}", v.hlc, v.origin)
}

/// How results are printed (`--format`, or `format` in the shell).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// For people: `(nil)`, aligned tables, trailers such as `(2 entries)`.
    #[default]
    Text,
    /// JSON Lines: one object per result line on stdout; trailers go to
    /// stderr.
    Json,
    /// Aligned columns under a header row for get, scan and members; the
    /// other commands print as text.
    Table,
}

impl Format {
    /// The name `--format` and `format` take.
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Table => "table",
        }
    }
}

/// A `get` result as a one-row table: KEY and VALUE, and with `-v` what
/// the text's second line shows (HLC, ORIGIN, EXPIRES, CONSISTENCY).
fn get_table(e: &vergent_client::Entry, verbose: bool) -> Table {
    if !verbose {
        let mut t = Table::new(&["KEY", "VALUE"]);
        t.row([show(&e.key), show(&e.value)]);
        return t;
    }
    let mut t = Table::new(&["KEY", "VALUE", "HLC", "ORIGIN", "EXPIRES", "CONSISTENCY"]);
    let expires = e.expires_at_ms.map_or_else(
        || "-".to_string(),
        |at| {
            vergent_hlc::Timestamp::new(at, 0)
                .to_string()
                .trim_end_matches("+0")
                .to_string()
        },
    );
    t.row([
        show(&e.key).into_owned(),
        show(&e.value).into_owned(),
        e.version.hlc.to_string(),
        e.version.origin.to_string(),
        expires,
        level_name(e.consistency).to_string(),
    ]);
    t
}

/// A `scan` page as a table: KEY and VALUE, as the text's two columns.
fn scan_table(entries: &[vergent_client::Entry]) -> Table {
    let mut t = Table::new(&["KEY", "VALUE"]);
    for e in entries {
        t.row([show(&e.key), show(&e.value)]);
    }
    t
}

/// `members` as a table: the columns of the text (incarnation aligned
/// right), `(this node)` after the last change as there.
fn members_table(s: &vergent_client::NodeStatus) -> Table {
    let mut t = Table::new(&[
        "ID",
        "ADDRESS",
        "STATE",
        "INCARNATION",
        "VOTER",
        "LAST CHANGE",
    ])
    .right(3);
    for m in &s.members {
        let mut since = since_text(m.since_ms);
        if m.node_id == s.node_id {
            since.push_str(" (this node)");
        }
        t.row([
            m.node_id.clone(),
            m.addr.clone(),
            m.state.clone(),
            m.incarnation.to_string(),
            if is_voter(s, &m.node_id) { "yes" } else { "no" }.to_string(),
            since,
        ]);
    }
    t
}

/// Whether `id` votes in `s`'s configuration, or joins it.
fn is_voter(s: &vergent_client::NodeStatus, id: &str) -> bool {
    s.voting
        .as_ref()
        .is_some_and(|v| v.voters.iter().chain(&v.joining).any(|x| x == id))
}

/// A member's last state change, as `members` shows it (`-`: none seen
/// since the node started).
fn since_text(since_ms: u64) -> String {
    if since_ms == 0 {
        "-".to_string()
    } else {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(since_ms))
            .to_string()
    }
}

/// Writes one JSON Lines object.
fn emit(out: &mut impl Write, v: &Value) {
    let _ = writeln!(out, "{v}");
}

/// Sets `name` to `bytes` as a JSON string when they are UTF-8, else sets
/// `name_b64` to their standard base64: exactly one of the two is present,
/// and its name says how to read it.
fn bytes_field(o: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => o.insert(name.into(), s.into()),
        Err(_) => o.insert(format!("{name}_b64"), base64(bytes).into()),
    };
}

/// Standard base64 (RFC 4648 section 4, padded), for bytes in JSON.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `hlc` and `origin` of a version.
fn version_fields(o: &mut Map<String, Value>, v: &vergent_client::Version) {
    o.insert("hlc".into(), v.hlc.to_string().into());
    o.insert("origin".into(), v.origin.to_string().into());
}

/// A `get` or `scan` result.
fn entry_json(e: &vergent_client::Entry) -> Value {
    let mut o = Map::new();
    bytes_field(&mut o, "key", &e.key);
    o.insert("found".into(), true.into());
    bytes_field(&mut o, "value", &e.value);
    version_fields(&mut o, &e.version);
    o.insert("expires_at_ms".into(), e.expires_at_ms.into());
    o.insert("consistency".into(), level_name(e.consistency).into());
    o.into()
}

/// A voting configuration; strict prefixes as objects with `prefix` or
/// `prefix_b64`.
fn voting_json(v: &vergent_client::VotingConfig) -> Value {
    let strict: Vec<Value> = v
        .strict_prefixes
        .iter()
        .map(|p| {
            let mut o = Map::new();
            bytes_field(&mut o, "prefix", p);
            o.into()
        })
        .collect();
    json!({
        "epoch": v.epoch,
        "voters": v.voters,
        "joining": v.joining,
        "strict_prefixes": strict,
    })
}

/// `status` as one object: what the text shows, in base units (ms, bytes).
fn status_json(s: &vergent_client::NodeStatus, session: Consistency) -> Value {
    let m = &s.storage_memory;
    json!({
        "node_id": s.node_id,
        "version": s.version,
        "address": s.advertise_addr,
        "uptime_ms": u64::try_from(s.uptime.as_millis()).unwrap_or(u64::MAX),
        "keys": s.key_count,
        "hlc": s.hlc_now.to_string(),
        "fsync": s.fsync_policy,
        "data_dir": s.data_dir,
        "peers": s.peers,
        "log_first_seq": s.log_first_seq,
        "log_last_seq": s.log_last_seq,
        "replication": s.replication.iter().map(|(peer, cursor, lag)| {
            json!({"peer": peer, "cursor": cursor, "lag": lag})
        }).collect::<Vec<_>>(),
        "state": s.state,
        "catching_up": s.catching_up,
        "voting": s.voting.as_ref().map(voting_json),
        "voting_pending": s.voting_pending,
        "paxos_records": s.paxos_records,
        "consistency": level_name(session),
        "purged": s.purged,
        "purge_held_back": s.purge_held_back.as_ref().map(|(why, since_ms)| {
            json!({"reason": why, "since_ms": since_ms})
        }),
        "fenced": s.fenced,
        "refused": {
            "records": s.refused_records,
            "too_old_for_log": s.records_too_old_for_log,
            "peers": s.refused_peers,
        },
        "workers": s.workers.iter().map(|w| {
            json!({"name": w.name, "state": w.state, "error": w.error})
        }).collect::<Vec<_>>(),
        "memory": {
            "memtables_bytes": m.memtables,
            "block_cache_bytes": m.block_cache,
            "block_cache_capacity_bytes": m.block_cache_capacity,
            "table_readers_bytes": m.table_readers,
        },
        "repairs": s.repairs.iter().map(|r| json!({
            "peer_id": r.peer_id,
            "last_repair_ms": r.last_repair_ms,
            "sessions": r.sessions,
            "differing_buckets": r.differing_buckets,
            "keys_received": r.keys_received,
            "keys_sent": r.keys_sent,
            "bytes": r.bytes,
            "last_error": r.last_error,
        })).collect::<Vec<_>>(),
    })
}

/// `members`: one object per member as this node sees it.
fn members_json(s: &vergent_client::NodeStatus) -> Vec<Value> {
    let voter = |id: &str| {
        s.voting
            .as_ref()
            .is_some_and(|v| v.voters.iter().chain(&v.joining).any(|x| x == id))
    };
    s.members
        .iter()
        .map(|m| {
            json!({
                "node_id": m.node_id,
                "addr": m.addr,
                "state": m.state,
                "incarnation": m.incarnation,
                "voter": voter(&m.node_id),
                "since_ms": m.since_ms,
                "this_node": m.node_id == s.node_id,
            })
        })
        .collect()
}

/// How a line that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ran {
    /// It ran.
    Done,
    /// A `get` found no value: an answer, but exit code 1 in `-e` mode.
    Missing,
    /// `exit`, `quit` or `\\q`.
    Exit,
}

/// Why a line failed.
enum Failed {
    /// The shell could not do it (a file it could not read, say).
    Local(String),
    /// The node refused it, or could not be reached.
    Client(Error),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Self::Client(e)
    }
}

/// Where the commands come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A terminal, with line editing.
    Interactive,
    /// Lines from a pipe or file on stdin.
    Piped,
    /// `-e` arguments; stdin is free for `put --stdin`.
    Execute,
}

/// The shell: a client, a runtime to drive it, and a prompt.
pub(crate) struct Shell {
    client: Client,
    runtime: tokio::runtime::Runtime,
    /// The session's level for put/get/delete (`consistency LEVEL`).
    level: Cell<Consistency>,
    mode: Cell<Mode>,
    /// How results are printed.
    format: Cell<Format>,
    /// A `put --stdin` consumed stdin.
    stdin_read: Cell<bool>,
}

impl Shell {
    pub(crate) fn new(client: Client, runtime: tokio::runtime::Runtime, format: Format) -> Self {
        Self {
            client,
            runtime,
            level: Cell::new(Consistency::One),
            mode: Cell::new(Mode::Interactive),
            format: Cell::new(format),
            stdin_read: Cell::new(false),
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

    /// Runs the `-e` commands in order; stops at the first failure. A `get`
    /// that finds nothing is no failure, but makes the exit code 1.
    pub(crate) fn run_commands(&self, commands: &[Vec<u8>]) -> u8 {
        self.mode.set(Mode::Execute);
        let mut status = 0;
        for line in commands {
            match self.run_line(line, None) {
                Ok(Ran::Done) => {}
                Ok(Ran::Missing) => status = exit::ERROR,
                Ok(Ran::Exit) => break,
                Err(code) => return code,
            }
        }
        status
    }

    /// Reads commands from the terminal (with line editing and history) or,
    /// when stdin is not a terminal, line by line from stdin.
    pub(crate) fn run(&self) -> u8 {
        if std::io::stdin().is_terminal() {
            self.run_interactive()
        } else {
            self.run_piped(std::io::stdin().lock())
        }
    }

    /// Runs every line of `input`, read as bytes: lines end at `\n`, a `\r`
    /// before it is dropped. A line that cannot be parsed or run is reported
    /// with its number and the next one runs; the exit code is then the
    /// worst of them (a `get` that found nothing counts as 1).
    fn run_piped(&self, input: impl BufRead) -> u8 {
        self.mode.set(Mode::Piped);
        let mut status = 0;
        for (i, line) in input.split(b'\n').enumerate() {
            let mut line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: cannot read line {} of stdin: {e}", i + 1);
                    return status.max(exit::ERROR);
                }
            };
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            match self.run_line(&line, Some(i + 1)) {
                Ok(Ran::Done) => {}
                // As with -e: the script goes on, the exit code says a get
                // found nothing.
                Ok(Ran::Missing) => status = status.max(exit::ERROR),
                Ok(Ran::Exit) => break,
                Err(code) => status = status.max(code),
            }
        }
        status
    }

    fn run_interactive(&self) -> u8 {
        let mut editor = match rustyline::Editor::<Completion, _>::new() {
            Ok(mut e) => {
                e.set_helper(Some(Completion));
                e
            }
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
        // Install the SIGINT handler now, once: from here on Ctrl-C between
        // requests does nothing (rustyline reads it as a key at the prompt),
        // and during one it cancels that request (`run_cmd`).
        self.runtime.block_on(async {
            let _ = futures::FutureExt::now_or_never(tokio::signal::ctrl_c());
        });
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
                    if let Ok(Ran::Exit) = self.run_line(line.as_bytes(), None) {
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
            save_history(editor.history_mut(), h);
        }
        0
    }

    /// Runs one command given as `vergentctl` arguments (`vergentctl get
    /// KEY`), exactly as `-e` runs it: same output, same exit code.
    pub(crate) fn run_one(&self, cmd: Cmd) -> u8 {
        self.mode.set(Mode::Execute);
        match self.run_cmd(cmd, None) {
            Ok(Ran::Done | Ran::Exit) => 0,
            Ok(Ran::Missing) => exit::ERROR,
            Err(code) => code,
        }
    }

    /// Runs one line (number `at` of piped input); `Err` holds the exit code
    /// of a line that failed, after its one `error:` line on stderr.
    fn run_line(&self, line: &[u8], at: Option<usize>) -> Result<Ran, u8> {
        match parse(line) {
            Ok(cmd) => self.run_cmd(cmd, at),
            Err(e) => {
                eprintln!("error: {e}{}", line_note(at));
                Err(exit::ERROR)
            }
        }
    }

    /// Runs a parsed command, as [`Self::run_line`] does. In the terminal,
    /// Ctrl-C cancels the request in flight (`watch` stops on it by itself):
    /// it prints `(cancelled)` and the shell goes on. When the command moved
    /// the client to another endpoint, a note on stderr says so.
    fn run_cmd(&self, cmd: Cmd, at: Option<usize>) -> Result<Ran, u8> {
        if cmd == Cmd::Exit {
            return Ok(Ran::Exit);
        }
        let before = self.client.endpoint();
        let cancellable = self.mode.get() == Mode::Interactive && !matches!(cmd, Cmd::Watch { .. });
        let result = if cancellable {
            self.runtime
                .block_on(unless_cancelled(self.execute(cmd), ctrl_c()))
        } else {
            Some(self.runtime.block_on(self.execute(cmd)))
        };
        let _ = std::io::stdout().flush();
        let now = self.client.endpoint();
        if now != before {
            eprintln!("(now on {now}: {before} could not serve)");
        }
        let (message, code) = match result {
            None => {
                eprintln!("(cancelled)");
                return Err(exit::ERROR);
            }
            Some(Ok(ran)) => return Ok(ran),
            Some(Err(Failed::Local(message))) => (message, exit::ERROR),
            Some(Err(Failed::Client(e))) if e.is_connection() => (describe(&e), exit::CONNECT),
            Some(Err(Failed::Client(e))) => (describe(&e), exit::ERROR),
        };
        eprintln!("error: {message}{}", line_note(at));
        Err(code)
    }

    /// `put`'s value: the argument, a file's bytes or stdin's.
    fn read_value(&self, from: ValueFrom) -> Result<Vec<u8>, Failed> {
        let local = |m: String| Failed::Local(m);
        match from {
            ValueFrom::Arg(v) => Ok(v),
            ValueFrom::File(path) => std::fs::read(&path)
                .map_err(|e| local(format!("cannot read --value-file {}: {e}", path.display()))),
            ValueFrom::Stdin => {
                if self.mode.get() != Mode::Execute {
                    return Err(local(
                        "put --stdin works with -e only: here stdin holds the commands".into(),
                    ));
                }
                if self.stdin_read.replace(true) {
                    return Err(local(
                        "stdin was already read by an earlier put --stdin".into(),
                    ));
                }
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    return Err(local(
                        "put --stdin: stdin is a terminal; pipe or redirect the value in".into(),
                    ));
                }
                let mut value = Vec::new();
                stdin
                    .lock()
                    .read_to_end(&mut value)
                    .map_err(|e| local(format!("cannot read stdin: {e}")))?;
                Ok(value)
            }
        }
    }

    async fn execute(&self, cmd: Cmd) -> Result<Ran, Failed> {
        let c = &self.client;
        let json = self.format.get() == Format::Json;
        // Only get, scan and members have a table form; the rest print as
        // text under it.
        let table = self.format.get() == Format::Table;
        let mut out = std::io::stdout().lock();
        match cmd {
            Cmd::Put {
                key,
                value,
                ttl,
                consistency,
            } => {
                let value = self.read_value(value)?;
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
                if json {
                    emit(&mut out, &json!({"ok": true, "hlc": v.hlc.to_string()}));
                } else {
                    let _ = writeln!(out, "OK hlc={}", v.hlc);
                }
            }
            Cmd::Cas { key, expect, new } => {
                let expect = match expect {
                    CasExpect::Absent => Expect::Absent,
                    CasExpect::Value(v) => Expect::Value(v),
                };
                let r = c.compare_and_set(key, expect, new).await?;
                // Neither outcome is an error: a CAS that finds something
                // else is an answer, and exits 0 in -e and pipe mode too.
                if json {
                    let mut o = Map::new();
                    o.insert("applied".into(), r.applied.into());
                    if !r.applied {
                        o.insert("found".into(), r.value.is_some().into());
                    }
                    if let Some(value) = r.value.as_deref().filter(|_| !r.applied) {
                        bytes_field(&mut o, "value", value);
                    }
                    if let Some(v) = &r.version {
                        version_fields(&mut o, v);
                    }
                    emit(&mut out, &o.into());
                    return Ok(Ran::Done);
                }
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
                if json {
                    emit(
                        &mut out,
                        &json!({
                            "ok": true,
                            "removed": id,
                            "voters_before": before.map(|b| b.voters),
                            "voting": voting_json(v),
                            "unconfirmed": change.unconfirmed,
                        }),
                    );
                    return Ok(Ran::Done);
                }
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
                if json {
                    let mut o = Map::new();
                    o.insert("ok".into(), true.into());
                    bytes_field(&mut o, "prefix", &prefix);
                    o.insert("voting".into(), voting_json(v));
                    o.insert("unconfirmed".into(), change.unconfirmed.into());
                    emit(&mut out, &o.into());
                    return Ok(Ran::Done);
                }
                let _ = writeln!(
                    out,
                    "OK strict prefix {}: configuration epoch {} (voters {}; strict {})",
                    quote(&prefix),
                    v.epoch,
                    v.voters.join(", "),
                    v.strict_prefixes
                        .iter()
                        .map(|p| quote(p))
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
            Cmd::Format(f) => {
                if let Some(f) = f {
                    self.format.set(f);
                }
                let name = self.format.get().name();
                if self.format.get() == Format::Json {
                    emit(&mut out, &json!({ "format": name }));
                } else {
                    let _ = writeln!(out, "Output format is {name}.");
                }
            }
            Cmd::Consistency(l) if json => {
                if let Some(l) = l {
                    self.level.set(l);
                }
                emit(
                    &mut out,
                    &json!({"consistency": level_name(self.level.get())}),
                );
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
                raw,
                consistency,
            } => match c
                .get_with(&key[..], Some(self.level_for(consistency)))
                .await?
            {
                None => {
                    if raw {
                        // Nothing on stdout: the value's bytes are all it gets.
                        eprintln!("(nil)");
                    } else if json {
                        let mut o = Map::new();
                        bytes_field(&mut o, "key", &key);
                        o.insert("found".into(), false.into());
                        emit(&mut out, &o.into());
                    } else {
                        let _ = writeln!(out, "(nil)");
                    }
                    return Ok(Ran::Missing);
                }
                Some(e) if raw => {
                    let _ = out.write_all(&e.value);
                    let _ = out.flush();
                }
                Some(e) if json => emit(&mut out, &entry_json(&e)),
                Some(e) if table => {
                    let _ = write!(out, "{}", get_table(&e, verbose).render());
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
                if json {
                    emit(
                        &mut out,
                        &json!({"ok": true, "hlc": d.version.hlc.to_string(), "existed": d.existed}),
                    );
                } else {
                    let _ = writeln!(out, "OK hlc={}", d.version.hlc);
                }
            }
            Cmd::Scan { prefix, limit } => {
                let page = c.scan(prefix, None, limit).await?;
                if table {
                    let _ = write!(out, "{}", scan_table(&page.entries).render());
                } else {
                    for e in &page.entries {
                        if json {
                            emit(&mut out, &entry_json(e));
                        } else {
                            let _ = writeln!(out, "{}\t{}", show(&e.key), show(&e.value));
                        }
                    }
                }
                let trailer = format!(
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
                // In JSON, stdout holds the entries alone.
                if json {
                    let _ = out.flush();
                    eprintln!("{trailer}");
                } else {
                    let _ = writeln!(out, "{trailer}");
                }
            }
            Cmd::Watch { prefix } => {
                drop(out);
                self.watch(prefix).await?;
            }
            Cmd::Status if json => {
                let s = c.status().await?;
                emit(&mut out, &status_json(&s, self.level.get()));
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
            Cmd::Members if json => {
                let s = c.status().await?;
                for m in members_json(&s) {
                    emit(&mut out, &m);
                }
            }
            Cmd::Members if table => {
                let s = c.status().await?;
                let _ = writeln!(out, "voting configuration: {}", voting_text(&s));
                let _ = write!(out, "{}", members_table(&s).render());
            }
            Cmd::Members => {
                let s = c.status().await?;
                let _ = writeln!(out, "voting configuration: {}", voting_text(&s));
                let _ = writeln!(
                    out,
                    "{:<20} {:<22} {:<8} {:>11} {:<5}  last change",
                    "id", "address", "state", "incarnation", "voter"
                );
                for m in &s.members {
                    let since = since_text(m.since_ms);
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
                        if is_voter(&s, &m.node_id) {
                            "yes"
                        } else {
                            "no"
                        }
                    );
                }
            }
            Cmd::Endpoint => {
                let (now, all) = (c.endpoint(), c.endpoints());
                if json {
                    emit(&mut out, &json!({"endpoint": now, "endpoints": all}));
                } else {
                    let _ = writeln!(out, "in use:    {now}");
                    let _ = writeln!(out, "endpoints: {}", all.join(", "));
                }
            }
            Cmd::Help(None) => {
                let _ = writeln!(out, "{}", help_text());
            }
            Cmd::Help(Some(i)) => {
                let _ = writeln!(out, "{}", COMMANDS[i].1);
            }
            Cmd::Exit | Cmd::Empty => {}
        }
        Ok(Ran::Done)
    }

    async fn watch(&self, prefix: Vec<u8>) -> Result<(), Error> {
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
                    let line = if self.format.get() == Format::Json {
                        let mut o = Map::new();
                        o.insert("op".into(), if ev.value.is_some() { "put" } else { "delete" }.into());
                        bytes_field(&mut o, "key", &ev.key);
                        if let Some(v) = &ev.value {
                            bytes_field(&mut o, "value", v);
                        }
                        version_fields(&mut o, &ev.version);
                        o.insert("source".into(), source.into());
                        Value::from(o).to_string()
                    } else { match &ev.value {
                        Some(v) => format!("PUT {} {} {} {source}", show(&ev.key), show(v), version_text(&ev.version)),
                        None => format!("DELETE {} {} {source}", show(&ev.key), version_text(&ev.version)),
                    }};
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
    }
}

/// ` (line N)` for line `at` of piped input; nothing otherwise.
fn line_note(at: Option<usize>) -> String {
    at.map(|n| format!(" (line {n})")).unwrap_or_default()
}

/// Completes on Ctrl-C (SIGINT); never, when its handler cannot be
/// installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `work`'s output, or `None` when `cancel` completes first; `work` is then
/// dropped, which abandons its request.
async fn unless_cancelled<T>(
    work: impl Future<Output = T>,
    cancel: impl Future<Output = ()>,
) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        () = cancel => None,
    }
}

/// The voting configuration in one line: epoch, voters, a change in flight.
fn voting_text(s: &vergent_client::NodeStatus) -> String {
    match &s.voting {
        Some(v) => {
            let mut t = format!("epoch {}, voters {}", v.epoch, v.voters.join(", "));
            if !v.strict_prefixes.is_empty() {
                let strict: Vec<String> = v.strict_prefixes.iter().map(|p| quote(p)).collect();
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
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn commands_parse_as_documented() {
        assert_eq!(
            ok("put foo bar"),
            Cmd::Put {
                key: "foo".into(),
                value: ValueFrom::Arg("bar".into()),
                ttl: None,
                consistency: None
            }
        );
        assert_eq!(
            ok(r#"put greeting "hello world""#),
            Cmd::Put {
                key: "greeting".into(),
                value: ValueFrom::Arg("hello world".into()),
                ttl: None,
                consistency: None
            }
        );
        assert_eq!(
            ok("put k v --ttl 30s"),
            Cmd::Put {
                key: "k".into(),
                value: ValueFrom::Arg("v".into()),
                ttl: Some(Duration::from_secs(30)),
                consistency: None
            }
        );
        assert_eq!(
            ok("get foo"),
            Cmd::Get {
                key: "foo".into(),
                verbose: false,
                raw: false,
                consistency: None
            }
        );
        assert_eq!(
            ok("get -v foo"),
            Cmd::Get {
                key: "foo".into(),
                verbose: true,
                raw: false,
                consistency: None
            }
        );
        assert_eq!(
            ok("getv foo"),
            Cmd::Get {
                key: "foo".into(),
                verbose: true,
                raw: false,
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
                raw: false,
                consistency: Some(Consistency::Serial)
            }
        );
        assert_eq!(
            ok("get -v --consistency serial k"),
            Cmd::Get {
                key: "k".into(),
                verbose: true,
                raw: false,
                consistency: Some(Consistency::Serial)
            }
        );
        assert_eq!(
            ok("put k v --consistency ALL"),
            Cmd::Put {
                key: "k".into(),
                value: ValueFrom::Arg("v".into()),
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
            let err = parse(line.as_bytes()).expect_err(line);
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
            let err = parse(line.as_bytes()).expect_err(line);
            assert!(err.contains(want), "{line:?} gave {err:?}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn put_takes_its_value_from_an_argument_a_file_or_stdin() {
        let put = |value| Cmd::Put {
            key: b"k".to_vec(),
            value,
            ttl: None,
            consistency: None,
        };
        assert_eq!(
            ok("put k --value-file /tmp/v.bin"),
            put(ValueFrom::File("/tmp/v.bin".into()))
        );
        assert_eq!(ok("put k --stdin"), put(ValueFrom::Stdin));
        assert_eq!(ok(r#"put k "\x00""#), put(ValueFrom::Arg(vec![0])));
        for line in [
            "put k v --stdin",
            "put k --stdin --value-file f",
            "put k v --value-file f",
        ] {
            let err = parse(line.as_bytes()).expect_err(line);
            assert!(
                err.contains("one of VALUE, --value-file or --stdin"),
                "{line:?} gave {err:?}"
            );
        }
        for line in ["put k --value-file", "put --stdin", "put k"] {
            let err = parse(line.as_bytes()).expect_err(line);
            assert!(err.starts_with("usage: put"), "{line:?} gave {err:?}");
        }
    }

    #[test]
    fn json_bytes_are_a_string_when_utf8_and_base64_otherwise() {
        for (bytes, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (b"\xff\xfe", "//4="),
            (b"\xfb\xff\xbf", "+/+/"),
        ] {
            assert_eq!(base64(bytes), want, "{bytes:?}");
        }
        let mut o = Map::new();
        bytes_field(&mut o, "key", "héllo\n".as_bytes());
        bytes_field(&mut o, "value", b"\xff\xfe");
        assert_eq!(
            Value::from(o).to_string(),
            r#"{"key":"héllo\n","value_b64":"//4="}"#
        );
        assert_eq!(ok("format json"), Cmd::Format(Some(Format::Json)));
        assert_eq!(ok("FORMAT Text"), Cmd::Format(Some(Format::Text)));
        assert_eq!(ok("format"), Cmd::Format(None));
    }

    /// An entry as a read returns it, written by `origin` at `hlc` ms.
    fn entry(key: &[u8], value: &[u8], hlc: u64, origin: &str) -> vergent_client::Entry {
        vergent_client::Entry {
            key: key.to_vec(),
            value: value.to_vec(),
            version: vergent_client::Version::new(
                vergent_hlc::Timestamp::new(hlc, 0),
                origin.parse().expect("node id"),
            ),
            expires_at_ms: None,
            consistency: Consistency::One,
        }
    }

    #[test]
    fn format_table_parses_and_scan_get_and_members_render_as_tables() {
        assert_eq!(ok("format TABLE"), Cmd::Format(Some(Format::Table)));
        let err = parse(b"format csv").expect_err("csv");
        assert_eq!(err, "usage: format [text|json|table]");
        assert_eq!(Format::Table.name(), "table");

        let page = [
            entry(b"app/a", b"hello world", 1, "node-a"),
            entry(b"app/b", b"\xff\x00two\n", 2, "node-a"),
        ];
        assert_eq!(
            scan_table(&page).render(),
            r#"KEY    VALUE
-----  ---------------
app/a  hello world
app/b  "\xff\x00two\n"
"#
        );
        assert_eq!(scan_table(&[]).render(), "KEY  VALUE\n---  -----\n");

        let e = &page[0];
        assert_eq!(
            get_table(e, false).render(),
            "KEY    VALUE\n-----  -----------\napp/a  hello world\n"
        );
        let verbose = get_table(e, true).render();
        let lines: Vec<&str> = verbose.lines().collect();
        assert_eq!(lines.len(), 3, "{verbose}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["KEY", "VALUE", "HLC", "ORIGIN", "EXPIRES", "CONSISTENCY"]
        );
        // Each cell starts where its header does.
        let hlc = e.version.hlc.to_string();
        let at = |line: &str, what: &str| line.find(what).expect(what);
        assert_eq!(at(lines[2], &hlc), at(lines[0], "HLC"), "{verbose}");
        assert_eq!(at(lines[2], "node-a"), at(lines[0], "ORIGIN"), "{verbose}");
        assert_eq!(
            at(lines[2], " - "),
            at(lines[0], "EXPIRES") - 1,
            "{verbose}"
        );
        assert!(lines[2].ends_with("ONE"), "{verbose}");
    }

    /// A node's status with nothing in it but its id.
    fn status_for_tests() -> vergent_client::NodeStatus {
        vergent_client::NodeStatus {
            node_id: "node-a".into(),
            version: String::new(),
            uptime: Duration::ZERO,
            key_count: 0,
            hlc_now: vergent_hlc::Timestamp::new(0, 0),
            fsync_policy: String::new(),
            peers: Vec::new(),
            advertise_addr: String::new(),
            data_dir: String::new(),
            log_first_seq: 0,
            log_last_seq: 0,
            replication: Vec::new(),
            members: Vec::new(),
            state: String::new(),
            repairs: Vec::new(),
            purged: 0,
            storage_memory: vergent_client::StorageMemory::default(),
            purge_held_back: None,
            refused_records: 0,
            records_too_old_for_log: 0,
            refused_peers: 0,
            roster: Vec::new(),
            fenced: Vec::new(),
            workers: Vec::new(),
            voting: None,
            voting_pending: String::new(),
            paxos_records: 0,
            catching_up: false,
        }
    }

    #[test]
    fn members_table_shows_the_columns_of_the_text_aligned_to_the_longest_cell() {
        let member = |id: &str, addr: &str, incarnation| vergent_client::MemberStatus {
            node_id: id.into(),
            addr: addr.into(),
            state: "alive".into(),
            incarnation,
            since_ms: 0,
        };
        let status = vergent_client::NodeStatus {
            node_id: "node-a".into(),
            members: vec![
                member("node-a", "127.0.0.1:2001", 3),
                member("a-node-id-longer-than-twenty", "10.0.0.2:2001", 12),
            ],
            voting: Some(vergent_client::VotingConfig {
                epoch: 1,
                voters: vec!["node-a".into()],
                ..Default::default()
            }),
            ..status_for_tests()
        };
        assert_eq!(
            members_table(&status).render(),
            "\
ID                            ADDRESS         STATE  INCARNATION  VOTER  LAST CHANGE
----------------------------  --------------  -----  -----------  -----  -------------
node-a                        127.0.0.1:2001  alive            3  yes    - (this node)
a-node-id-longer-than-twenty  10.0.0.2:2001   alive           12  no     -
"
        );
    }

    #[test]
    fn a_near_miss_of_a_command_gets_a_suggestion_and_help_takes_a_command() {
        for (line, want) in [
            ("gte k", r#"unknown command "gte"; did you mean get?"#),
            (
                "delte k",
                r#"unknown command "delte"; did you mean delete?"#,
            ),
            ("SATUS", r#"unknown command "SATUS"; did you mean status?"#),
            (
                "memebrs",
                r#"unknown command "memebrs"; did you mean members?"#,
            ),
            ("frobnicate", r#"unknown command "frobnicate"; type help"#),
            ("x", r#"unknown command "x"; type help"#),
            ("help gett", r#"unknown command "gett"; did you mean get?"#),
        ] {
            assert_eq!(parse(line.as_bytes()), Err(want.to_string()), "{line:?}");
        }
        assert_eq!(ok("help"), Cmd::Help(None));
        let Cmd::Help(Some(i)) = ok("help GETV") else {
            panic!("help GETV")
        };
        assert!(COMMANDS[i].1.contains("get --raw KEY"));
        assert!(!COMMANDS[i].1.contains("put KEY"));
        // Every command's usage is in the full text, and every name parses.
        let all = help_text();
        for (names, lines) in COMMANDS {
            assert!(all.contains(lines));
            for name in *names {
                assert!(
                    !matches!(parse(name.as_bytes()), Err(e) if e.starts_with("unknown")),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn a_cancelled_request_is_dropped_at_once_and_one_that_is_not_finishes() {
        struct Dropped<'a>(&'a Cell<bool>);
        impl Drop for Dropped<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dropped = Cell::new(false);
        // The request owns the guard from the start: select! may poll
        // either branch first, so it may never have run.
        let guard = Dropped(&dropped);
        let request = async move {
            let _guard = guard;
            std::future::pending::<u8>().await
        };
        assert_eq!(rt.block_on(unless_cancelled(request, async {})), None);
        assert!(dropped.get(), "the cancelled request was not dropped");
        let done = rt.block_on(unless_cancelled(async { 7 }, std::future::pending()));
        assert_eq!(done, Some(7));
    }

    #[test]
    fn cas_takes_its_words_in_any_of_the_four_forms() {
        assert_eq!(
            ok("cas lock --absent --delete"),
            Cmd::Cas {
                key: "lock".into(),
                expect: CasExpect::Absent,
                new: None
            }
        );
        assert_eq!(ok("endpoint"), Cmd::Endpoint);
        for line in ["cas", "cas k --absent NEW --delete", "cas k 1 2 --delete"] {
            let err = parse(line.as_bytes()).expect_err(line);
            assert!(err.starts_with("usage: cas"), "{line:?} gave {err:?}");
        }
    }

    #[test]
    fn tab_completes_commands_then_their_flags() {
        let done = |line: &str| {
            let (start, words) = complete(line, line.len());
            (start, words.join(" "))
        };
        assert_eq!(done("ge"), (0, "get getv".into()));
        assert_eq!(done("st"), (0, "status".into()));
        assert_eq!(done("get --r"), (4, "--raw".into()));
        assert_eq!(done("put k --v"), (6, "--value-file".into()));
        assert_eq!(done("get --consistency q"), (18, "quorum".into()));
        assert_eq!(done("format "), (7, "text json table".into()));
        assert_eq!(done("help sc"), (5, "scan".into()));
        assert_eq!(done("status "), (7, String::new()));
    }

    #[test]
    fn two_shells_saving_history_keep_both_shells_lines() {
        use rustyline::history::{FileHistory, History};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history");
        std::fs::write(&path, "#V2\nput old 0\n").expect("write history");
        let (mut a, mut b) = (FileHistory::new(), FileHistory::new());
        for (h, line) in [(&mut a, "put a 1"), (&mut b, "put b 2")] {
            h.load(&path).expect("load");
            h.add(line).expect("add");
        }
        save_history(&mut a, &path);
        save_history(&mut b, &path);
        let mut merged = FileHistory::new();
        merged.load(&path).expect("load");
        let lines: Vec<&String> = merged.iter().collect();
        assert_eq!(lines, ["put old 0", "put a 1", "put b 2"]);
    }

    /// The words of `line`, each shown as [`quote`] shows it.
    fn words(line: &[u8]) -> Vec<String> {
        split(line)
            .unwrap_or_else(|e| panic!("{}: {e}", quote(line)))
            .iter()
            .map(|w| quote(w))
            .collect()
    }

    #[test]
    fn words_split_on_blanks_quotes_keep_them_and_any_byte_is_a_word_byte() {
        for (line, want) in [
            (&b"put k v"[..], &[r#""put""#, r#""k""#, r#""v""#][..]),
            (b"  put\tk   v  ", &[r#""put""#, r#""k""#, r#""v""#]),
            (b"put 'a b' \"c d\"", &[r#""put""#, r#""a b""#, r#""c d""#]),
            (b"put k \"\"", &[r#""put""#, r#""k""#, r#""""#]),
            (b"a\"b c\"'d'", &[r#""ab cd""#]),
            (
                b"put bin \xff\xfe",
                &[r#""put""#, r#""bin""#, r#""\xff\xfe""#],
            ),
            // Outside quotes a backslash is an ordinary byte.
            (br"put k foo\x41", &[r#""put""#, r#""k""#, r#""foo\\x41""#]),
            (
                br"put k 'a\x41\n'",
                &[r#""put""#, r#""k""#, r#""a\\x41\\n""#],
            ),
            (b"", &[]),
        ] {
            assert_eq!(words(line), want, "{}", quote(line));
        }
    }

    #[test]
    fn double_quotes_read_escapes_for_any_byte() {
        for (line, want) in [
            (&br#""a\x00b""#[..], &b"a\x00b"[..]),
            (br#""\xff\xFE""#, b"\xff\xfe"),
            (br#""\x41""#, b"A"),
            (br#""\\x41""#, br"\x41"),
            (br#""say \"hi\"""#, br#"say "hi""#),
            (br#""\n\r\t\\""#, b"\n\r\t\\"),
            (br#""it's""#, b"it's"),
        ] {
            assert_eq!(
                split(line).expect("splits"),
                vec![want.to_vec()],
                "{}",
                quote(line)
            );
        }
        for (line, want) in [
            (&br#"put k "\x4""#[..], "\\x takes two hex digits"),
            (br#"put k "\xzz""#, "\\x takes two hex digits"),
            (br#"put k "\q""#, r#"unknown escape "\\q" in double quotes"#),
            (br#"put k "a\"#, "unbalanced quotes"),
            (b"put k 'a", "unbalanced quotes"),
        ] {
            let err = split(line).expect_err(&quote(line));
            assert!(err.contains(want), "{} gave {err:?}", quote(line));
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn printable_text_is_shown_as_is_and_anything_else_quoted_and_escaped() {
        for (bytes, want) in [
            (&b"hello world"[..], "hello world"),
            ("héllo".as_bytes(), "héllo"),
            // The text `foo\x41` and the bytes `foo` 0x41 differ on screen.
            (br"foo\x41", r"foo\x41"),
            (b"foo\x41", "fooA"),
            (b"\xff\xfe", r#""\xff\xfe""#),
            (&[0xff, b'a', 0], r#""\xffa\x00""#),
            (b"a\tb", r#""a\tb""#),
            (b"line\n", r#""line\n""#),
            ("é\u{7f}".as_bytes(), r#""é\x7f""#),
            (b"", r#""""#),
            (b"(nil)", r#""(nil)""#),
            // Text that looks like a quoted display is quoted itself.
            (br#""\xff""#, r#""\"\\xff\"""#),
            (br"back\slash", r"back\slash"),
        ] {
            assert_eq!(show(bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn a_quoted_display_reads_back_as_the_same_bytes() {
        let mut cases: Vec<Vec<u8>> = vec![
            "héllo wörld".into(),
            br#"say "hi" \ bye"#.to_vec(),
            "\u{85}\u{202e}".into(),
        ];
        for a in 0..=255u8 {
            cases.push(vec![a]);
            for b in 0..=255u8 {
                cases.push(vec![a, b]);
            }
        }
        for bytes in cases {
            let shown = quote(&bytes);
            assert_eq!(
                split(shown.as_bytes()).expect("a display splits"),
                vec![bytes.clone()],
                "{shown}"
            );
            let shown = show(&bytes);
            if shown.starts_with('"') {
                assert_eq!(split(shown.as_bytes()).expect("splits"), vec![bytes]);
            } else {
                assert_eq!(shown.as_bytes(), bytes);
            }
        }
    }
}
