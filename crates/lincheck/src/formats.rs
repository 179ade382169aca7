//! Parsers for recorded histories: Jepsen's etcd register logs and
//! Porcupine's KV EDN logs (the formats of `tests/histories/README.md`).

use crate::history::{Event, EventKind, History, HistoryError};
use crate::models::{KvInput, KvOp, KvOutput, RegisterInput, RegisterOutput};

/// Why a history file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An event line is malformed.
    #[error("line {line}: {reason}")]
    Syntax {
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An event names an operation the format does not have.
    #[error("line {line}: unknown operation {f}")]
    UnknownFunction {
        /// The 1-based line number.
        line: usize,
        /// The operation as written.
        f: String,
    },
    /// An event's value is not what its operation takes.
    #[error("line {line}: bad value {value:?}")]
    BadValue {
        /// The 1-based line number.
        line: usize,
        /// The value as written.
        value: String,
    },
    /// The events do not form a history (e.g. a completion with no invoke).
    #[error("line {line}: {source}")]
    History {
        /// The 1-based line number of the offending event.
        line: usize,
        /// What is wrong with it.
        source: HistoryError,
    },
}

/// A history of the Jepsen etcd single-register workload.
pub type EtcdHistory = History<RegisterInput<i64>, RegisterOutput<i64>>;

/// A history of Porcupine's KV workload.
pub type KvHistory = History<KvInput, KvOutput>;

/// Reads a Jepsen etcd log; lines other than client events are skipped, and
/// each event's time is its position among the events.
///
/// `:fail :cas` is a completed compare that did not match; `:info` and an
/// invoke with no completion are unknown outcomes; any other `:fail` (a
/// timed-out read) certainly had no effect and is dropped.
pub fn parse_jepsen_etcd(text: &str) -> Result<EtcdHistory, ParseError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (at, raw) in text.lines().enumerate() {
        let line = at + 1;
        let Some(event) = etcd_event(raw, line, events.len() as u64)? else {
            continue;
        };
        events.push(event);
        lines.push(line);
    }
    History::from_events(events).map_err(|source| history_error(source, &lines))
}

type EtcdEvent = Event<RegisterInput<i64>, RegisterOutput<i64>>;

/// The event a Jepsen log line records, or `None` for any other line.
fn etcd_event(raw: &str, line: usize, time: u64) -> Result<Option<EtcdEvent>, ParseError> {
    let Some((_, rest)) = raw.split_once("jepsen.util - ") else {
        return Ok(None);
    };
    let mut tokens = rest.split_whitespace();
    // Nemesis events name `:nemesis` as the process: not client events.
    let Some(Ok(client)) = tokens.next().map(str::parse::<u64>) else {
        return Ok(None);
    };
    let Some(kind) = tokens
        .next()
        .filter(|k| matches!(*k, ":invoke" | ":ok" | ":fail" | ":info"))
    else {
        return Ok(None);
    };
    let f = tokens.next().ok_or(ParseError::Syntax {
        line,
        reason: "missing operation",
    })?;
    let value: Vec<&str> = tokens.collect();
    let value = value.join(" ");
    let bad = || ParseError::BadValue {
        line,
        value: value.clone(),
    };
    let kind = match (kind, f) {
        (":info", _) => EventKind::Info,
        (":invoke", ":read") => EventKind::Invoke(RegisterInput::Read),
        (":invoke", ":write") => {
            EventKind::Invoke(RegisterInput::Write(value.parse().map_err(|_| bad())?))
        }
        (":invoke", ":cas") => {
            let (expect, new) = cas_pair(&value).ok_or_else(bad)?;
            EventKind::Invoke(RegisterInput::Cas { expect, new })
        }
        (":ok", ":read") => EventKind::Ok(RegisterOutput::Read(match value.as_str() {
            "nil" => None,
            v => Some(v.parse().map_err(|_| bad())?),
        })),
        (":ok", ":write") => EventKind::Ok(RegisterOutput::Written),
        (":ok", ":cas") => EventKind::Ok(RegisterOutput::Cas(true)),
        (":fail", ":cas") => EventKind::Ok(RegisterOutput::Cas(false)),
        (":fail", ":read" | ":write") => EventKind::Fail,
        _ => {
            return Err(ParseError::UnknownFunction {
                line,
                f: f.to_string(),
            });
        }
    };
    Ok(Some(Event { client, time, kind }))
}

/// `[a b]` as written after `:cas`.
fn cas_pair(value: &str) -> Option<(i64, i64)> {
    let inner = value.strip_prefix('[')?.strip_suffix(']')?;
    let mut parts = inner.split_whitespace();
    let a = parts.next()?.parse().ok()?;
    let b = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((a, b))
}

/// Reads a Porcupine KV log of EDN maps, one event per line; lines that are
/// not maps are skipped, and each event's time is its position among the
/// events. Check it with [`check_by_key`](crate::check_by_key) keyed on
/// [`KvInput::key`].
pub fn parse_porcupine_kv(text: &str) -> Result<KvHistory, ParseError> {
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (at, raw) in text.lines().enumerate() {
        let line = at + 1;
        let raw = raw.trim();
        if !raw.starts_with('{') {
            continue;
        }
        let fields = edn_map(raw).map_err(|reason| ParseError::Syntax { line, reason })?;
        events.push(kv_event(&fields, line, events.len() as u64)?);
        lines.push(line);
    }
    History::from_events(events).map_err(|source| history_error(source, &lines))
}

fn kv_event(
    fields: &[(String, Edn)],
    line: usize,
    time: u64,
) -> Result<Event<KvInput, KvOutput>, ParseError> {
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let missing = |reason| ParseError::Syntax { line, reason };
    let client = match field("process") {
        Some(Edn::Int(p)) => u64::try_from(*p).map_err(|_| missing("negative :process"))?,
        _ => return Err(missing("missing integer :process")),
    };
    let Some(Edn::Keyword(kind)) = field("type") else {
        return Err(missing("missing keyword :type"));
    };
    let Some(Edn::Keyword(f)) = field("f") else {
        return Err(missing("missing keyword :f"));
    };
    let Some(Edn::Str(key)) = field("key") else {
        return Err(missing("missing string :key"));
    };
    // A missing key reads as the empty string, so `nil` is the same.
    let value = match field("value") {
        Some(Edn::Str(v)) => Some(v.clone()),
        Some(Edn::Nil) | None => None,
        Some(other) => {
            return Err(ParseError::BadValue {
                line,
                value: format!("{other:?}"),
            });
        }
    };
    let needs_value = || {
        value.clone().ok_or(ParseError::BadValue {
            line,
            value: "nil".to_string(),
        })
    };
    let op = match f.as_str() {
        "get" => KvOp::Get,
        "put" => KvOp::Put(needs_value()?),
        "append" => KvOp::Append(needs_value()?),
        _ => {
            return Err(ParseError::UnknownFunction {
                line,
                f: format!(":{f}"),
            });
        }
    };
    let kind = match kind.as_str() {
        "invoke" => EventKind::Invoke(KvInput {
            key: key.clone(),
            op,
        }),
        "ok" => EventKind::Ok(match op {
            KvOp::Get => KvOutput::Get(value.unwrap_or_default()),
            KvOp::Put(_) | KvOp::Append(_) => KvOutput::Done,
        }),
        "fail" => EventKind::Fail,
        "info" => EventKind::Info,
        _ => return Err(missing("unknown :type")),
    };
    Ok(Event { client, time, kind })
}

fn history_error(source: HistoryError, lines: &[usize]) -> ParseError {
    let event = match source {
        HistoryError::InvokeInFlight { event, .. }
        | HistoryError::CompletionWithoutInvoke { event, .. }
        | HistoryError::TimeWentBackwards { event, .. } => Some(event),
        HistoryError::ReturnBeforeCall { .. } | HistoryError::HalfReturned { .. } => None,
    };
    let line = event.and_then(|e| lines.get(e)).copied().unwrap_or(0);
    ParseError::History { line, source }
}

/// The EDN values the KV logs use.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Edn {
    Keyword(String),
    Str(String),
    Int(i64),
    Nil,
}

/// The keyword-keyed entries of a one-line EDN map, in order.
fn edn_map(text: &str) -> Result<Vec<(String, Edn)>, &'static str> {
    let mut chars = text.chars().peekable();
    if chars.next() != Some('{') {
        return Err("expected `{`");
    }
    let mut out = Vec::new();
    loop {
        // Commas are whitespace in EDN.
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        match chars.peek() {
            Some('}') => {
                chars.next();
                break;
            }
            None => return Err("unterminated map"),
            Some(_) => {}
        }
        let Edn::Keyword(key) = edn_value(&mut chars)? else {
            return Err("map key is not a keyword");
        };
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        out.push((key, edn_value(&mut chars)?));
    }
    if chars.any(|c| !c.is_whitespace()) {
        return Err("text after the map");
    }
    Ok(out)
}

fn edn_value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Edn, &'static str> {
    let atom = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let mut s = String::new();
        while let Some(c) =
            chars.next_if(|c| !c.is_whitespace() && !matches!(c, ',' | '}' | '{' | '"'))
        {
            s.push(c);
        }
        s
    };
    match chars.peek() {
        Some('"') => {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => return Ok(Edn::Str(s)),
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some(c @ ('"' | '\\')) => s.push(c),
                        _ => return Err("bad escape in string"),
                    },
                    Some(c) => s.push(c),
                    None => return Err("unterminated string"),
                }
            }
        }
        Some(':') => {
            chars.next();
            let name = atom(chars);
            if name.is_empty() {
                return Err("empty keyword");
            }
            Ok(Edn::Keyword(name))
        }
        Some(_) => {
            let word = atom(chars);
            if word == "nil" {
                return Ok(Edn::Nil);
            }
            word.parse().map(Edn::Int).map_err(|_| "unsupported value")
        }
        None => Err("missing value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_lines_that_are_not_client_events_are_skipped() {
        let text = "INFO  jepsen.core - Running test\n\
                    INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                    \n\
                    INFO  jepsen.util - 3\t:invoke\t:write\t4\n\
                    INFO  jepsen.util - 3\t:ok\t:write\t4\n";
        let h = parse_jepsen_etcd(text).expect("parses");
        assert_eq!(h.len(), 1);
        assert_eq!(h.ops()[0].input, RegisterInput::Write(4));
        assert_eq!(h.ops()[0].ret, Some(1));
    }

    #[test]
    fn etcd_failed_cas_is_a_completed_compare_and_info_is_pending() {
        let text = "INFO  jepsen.util - 0\t:invoke\t:cas\t[4 1]\n\
                    INFO  jepsen.util - 1\t:invoke\t:write\t2\n\
                    INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 0\t:fail\t:cas\t[4 1]\n\
                    INFO  jepsen.util - 1\t:info\t:write\t:timed-out\n\
                    INFO  jepsen.util - 2\t:fail\t:read\t:timed-out\n";
        let h = parse_jepsen_etcd(text).expect("parses");
        assert_eq!(h.len(), 2, "the timed-out read is dropped");
        assert_eq!(h.ops()[0].output, Some(RegisterOutput::Cas(false)));
        assert_eq!(h.ops()[1].ret, None);
    }

    #[test]
    fn etcd_malformed_events_are_typed_errors_with_their_line() {
        let bad_value = "INFO  jepsen.util - 0\t:invoke\t:write\tx\n";
        assert!(matches!(
            parse_jepsen_etcd(bad_value),
            Err(ParseError::BadValue { line: 1, .. })
        ));
        let bad_cas = "\nINFO  jepsen.util - 0\t:invoke\t:cas\t[4]\n";
        assert!(matches!(
            parse_jepsen_etcd(bad_cas),
            Err(ParseError::BadValue { line: 2, .. })
        ));
        let unknown = "INFO  jepsen.util - 0\t:invoke\t:incr\t1\n";
        assert!(matches!(
            parse_jepsen_etcd(unknown),
            Err(ParseError::UnknownFunction { line: 1, .. })
        ));
        let orphan = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                      INFO  jepsen.util - 1\t:ok\t:read\t3\n";
        assert!(matches!(
            parse_jepsen_etcd(orphan),
            Err(ParseError::History {
                line: 2,
                source: HistoryError::CompletionWithoutInvoke { client: 1, .. }
            })
        ));
    }

    #[test]
    fn kv_maps_parse_with_nil_as_the_empty_string() {
        let text = "{:process 0, :type :invoke, :f :append, :key \"4\", :value \"x 0 1 y\"}\n\
                    {:process 0, :type :ok, :f :append, :key \"4\", :value \"x 0 1 y\"}\n\
                    {:process 3, :type :invoke, :f :get, :key \"4\", :value nil}\n\
                    {:process 3, :type :ok, :f :get, :key \"4\", :value nil}\n";
        let h = parse_porcupine_kv(text).expect("parses");
        assert_eq!(h.len(), 2);
        assert_eq!(
            h.ops()[0].input,
            KvInput {
                key: "4".into(),
                op: KvOp::Append("x 0 1 y".into())
            }
        );
        assert_eq!(h.ops()[1].output, Some(KvOutput::Get(String::new())));
    }

    #[test]
    fn kv_malformed_maps_are_typed_errors() {
        for text in [
            "{:process 0, :type :invoke, :f :get, :key \"4\"",
            "{:process 0, :type :invoke, :f :get, :key \"4, :value nil}",
            "{:process -1, :type :invoke, :f :get, :key \"4\", :value nil}",
            "{:process 0, :type :invoke, :f :get, :value nil}",
            "{:process 0, :type :invoke, :f :get, :key \"4\", :value [1]}",
        ] {
            assert!(
                matches!(
                    parse_porcupine_kv(text),
                    Err(ParseError::Syntax { line: 1, .. })
                ),
                "{text}"
            );
        }
        assert!(matches!(
            parse_porcupine_kv("{:process 0, :type :invoke, :f :cas, :key \"4\", :value nil}"),
            Err(ParseError::UnknownFunction { line: 1, .. })
        ));
        assert!(matches!(
            parse_porcupine_kv("{:process 0, :type :invoke, :f :put, :key \"4\", :value nil}"),
            Err(ParseError::BadValue { line: 1, .. })
        ));
    }
}
