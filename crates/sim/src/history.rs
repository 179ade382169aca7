//! What happened in a run, as the invariants read it: writes stamped and
//! acknowledged, purges, and the faults injected.

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
    /// A fault, for the replay log.
    Fault(String),
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
