//! The recorded history of a run: one [`Event`] per invocation and one per
//! completion, written as JSON lines, plus the replicas' final state.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// A version as the API returns it: hybrid-logical-clock stamp, then origin
/// node. Ordered like the server's versions (last writer wins by this order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The HLC timestamp as its 64-bit encoding (48-bit ms, 16-bit logical).
    pub hlc: u64,
    /// The node that stamped the write.
    pub origin: String,
}

impl Stamp {
    /// The physical part of the stamp, in ms since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        vergent_hlc::Timestamp::from_u64(self.hlc).physical_ms()
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            vergent_hlc::Timestamp::from_u64(self.hlc),
            self.origin
        )
    }
}

/// Whether an event starts an operation or tells how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The client sent the request.
    Invoke,
    /// The node acknowledged it.
    Ok,
    /// It certainly did not take effect (refused before anything was written).
    Fail,
    /// Unknown: a timeout or a lost connection; it may or may not have taken effect.
    Info,
}

/// The operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Write a value.
    Put,
    /// Read a key.
    Get,
    /// Delete a key.
    Delete,
}

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client (logical process) that issued the operation; one operation
    /// in flight per process, so an invoke is completed by that process's next event.
    pub process: u32,
    /// Invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub outcome: Outcome,
    /// Put, get or delete.
    pub f: Op,
    /// The node the client sent it to.
    pub node: String,
    /// The key.
    pub key: String,
    /// Put: the value written. Get (ok): the value read, `None` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Ok put/delete: the version written. Ok get: the version read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Stamp>,
    /// Wall-clock time of the event at the client, ms since the Unix epoch.
    pub wall_ms: u64,
    /// Fail/info: the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The consistency level asked for, when above `one`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

/// A consistency level above `one` an eventual operation asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A majority of the voters.
    Quorum,
    /// Every voter.
    All,
}

impl Event {
    /// Whether this event is an acknowledged write (put or delete).
    pub fn is_acked_write(&self) -> bool {
        self.outcome == Outcome::Ok && matches!(self.f, Op::Put | Op::Delete)
    }
}

/// Writes events as JSON lines.
pub fn write_jsonl(events: &[Event], out: &mut impl Write) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads JSON lines written by [`write_jsonl`].
pub fn read_jsonl(input: impl BufRead) -> std::io::Result<Vec<Event>> {
    let mut out = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("history line {}: {e}", n + 1),
            )
        })?;
        out.push(event);
    }
    Ok(out)
}

/// A record as a replica holds it: a value or a tombstone, with its version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    /// The value, `None` for a tombstone.
    pub value: Option<String>,
    /// The version that wrote it.
    pub version: Stamp,
}

/// One replica's whole state: key → record.
pub type ReplicaState = BTreeMap<String, Record>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_round_trip() {
        let events = vec![
            Event {
                process: 1,
                outcome: Outcome::Invoke,
                f: Op::Put,
                node: "n1".into(),
                key: "k1".into(),
                value: Some("v-1-1".into()),
                version: None,
                wall_ms: 1_000,
                error: None,
                level: Some(Level::Quorum),
            },
            Event {
                process: 1,
                outcome: Outcome::Ok,
                f: Op::Put,
                node: "n1".into(),
                key: "k1".into(),
                value: Some("v-1-1".into()),
                version: Some(Stamp {
                    hlc: 5 << 16,
                    origin: "n1".into(),
                }),
                wall_ms: 1_002,
                error: None,
                level: None,
            },
        ];
        let mut buf = Vec::new();
        write_jsonl(&events, &mut buf).expect("write");
        let text = String::from_utf8(buf.clone()).expect("utf8");
        assert!(text.contains(r#""type":"invoke""#), "{text}");
        assert_eq!(read_jsonl(buf.as_slice()).expect("read"), events);
    }

    #[test]
    fn a_malformed_history_line_is_reported_with_its_number() {
        let err = read_jsonl("\n{\"process\":1}\n".as_bytes()).expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn stamps_order_by_clock_then_origin() {
        let s = |hlc, o: &str| Stamp {
            hlc,
            origin: o.into(),
        };
        assert!(s(1, "z") < s(2, "a"));
        assert!(s(2, "a") < s(2, "b"));
    }
}
