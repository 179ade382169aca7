//! What happened in a run, as the invariants read it: writes stamped and
//! acknowledged, purges, strong operations invoked and answered, reads and
//! writes at `QUORUM`/`ALL` with how many voters held each acknowledged
//! write, and the faults injected.

use vergent_consensus::levels::Level;
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
    /// A write at a level was answered (`version`: what it was stamped
    /// with; `None` when refused before anything was written).
    LevelWrite {
        /// The write, unique among level writes of the run.
        id: u64,
        /// Its key.
        key: Vec<u8>,
        /// Its version.
        version: Option<Version>,
        /// The level asked for.
        level: Level,
        /// The answer.
        result: LevelResult,
        /// Virtual time of the call, µs since the start.
        invoked_us: u64,
        /// Virtual time of the answer, µs since the start.
        at_us: u64,
    },
    /// The world's count, at the moment a level write was acknowledged, of
    /// the nodes whose *durable* store held it (or something newer).
    LevelHeld {
        /// The write.
        id: u64,
        /// Nodes holding it durably.
        holders: usize,
        /// Other nodes wiped while the write was in flight: a copy lost to a
        /// wipe concurrent with the write is not a loss the level covers.
        wiped_during: usize,
        /// Voters in the world.
        voters: usize,
        /// The level it was acknowledged at.
        level: Level,
    },
    /// A read at a level was answered.
    LevelRead {
        /// The read, unique among level reads of the run.
        id: u64,
        /// Its key.
        key: Vec<u8>,
        /// The version it returned (`None`: no voter held the key).
        version: Option<Version>,
        /// The level asked for.
        level: Level,
        /// The answer.
        result: LevelResult,
        /// Virtual time of the call, µs since the start.
        invoked_us: u64,
        /// Virtual time of the answer, µs since the start.
        at_us: u64,
    },
    /// A fault, for the replay log.
    Fault(String),
}

/// What a client was told about a read or write at a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelResult {
    /// Done at the level.
    Ok,
    /// Refused before anything was sent or written.
    Unavailable,
    /// The deadline passed: a write may or may not be at the level; a read
    /// returned nothing.
    Unknown,
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
