//! What happened in a run, as the invariants read it: writes stamped and
//! acknowledged, purges, strong operations invoked and answered, and the
//! faults injected.

use vergent_consensus::{Op, Value};
use vergent_hlc::Timestamp;
use vergent_types::Version;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A node's clock issued `hlc` for a local write (`store` tells a wiped
    /// node's stores apart).
    Stamped {
        /// The node.
        node: usize,
        /// Its store at the time.
        store: u64,
        /// The timestamp issued.
        hlc: Timestamp,
    },
    /// A client write was acknowledged (it was durable on its node).
    Acked {
        /// The write.
        id: u64,
        /// Its key.
        key: Vec<u8>,
        /// Its version.
        version: Version,
        /// A delete rather than a put.
        deleted: bool,
    },
    /// A node purged a tombstone.
    Purged {
        /// The node.
        node: usize,
        /// The key.
        key: Vec<u8>,
        /// The tombstone's version.
        version: Version,
    },
    /// A client invoked a strong operation through `node`.
    StrongInvoked {
        /// The operation, unique in the run.
        id: u64,
        /// The node proposing it.
        node: usize,
        /// Its key.
        key: Vec<u8>,
        /// What it asks.
        op: Op,
        /// Virtual time of the call, µs since the start.
        at_us: u64,
    },
    /// A strong operation was answered. One invoked and never answered
    /// (its node crashed, or the run ended) has an unknown outcome.
    StrongReturned {
        /// The operation.
        id: u64,
        /// Virtual time of the answer, µs since the start.
        at_us: u64,
        /// The answer.
        result: StrongResult,
        /// Prepares the proposer sent for it, its own acceptor included.
        prepares: u32,
        /// Accepts the proposer sent for it, its own acceptor included.
        accepts: u32,
    },
    /// A fault, for the replay log.
    Fault(String),
}

/// What a client was told about a strong operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrongResult {
    /// A read returned this value (`None`: absent).
    Read(Value),
    /// A write or CAS took effect (`true`) or its condition did not hold.
    Applied(bool),
    /// Certainly not applied (unavailable, contention until the deadline).
    Failed,
    /// May or may not have been applied.
    Unknown,
}

/// Everything that happened, in order.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The events.
    pub events: Vec<Event>,
}

impl History {
    /// Records `e`.
    pub fn push(&mut self, e: Event) {
        self.events.push(e);
    }
}
