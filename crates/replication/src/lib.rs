//! Vergent's replication core: shipping a node's write log to one peer,
//! anti-entropy repair sessions ([`repair`]) that heal whatever the log
//! could not (a wiped or new node, a peer behind the truncated log), and the
//! tombstone purge rule ([`purge`]).
//!
//! Every node streams its own replication log (local writes, in commit order,
//! numbered from 1) to every peer. For each peer a [`Sender`] tracks the
//! durable cursor (the highest sequence number the peer acknowledged after
//! making it durable), what is in flight, and when to retransmit. It never
//! touches storage or the network: it asks the driver to read the log and to
//! transmit batches through [`Output`], and learns of acks, new writes and
//! peer liveness through `handle_*` calls with the current time.
//!
//! Guarantees, proven by the simulation tests with lossy, reordering links:
//! - every entry is delivered to a live peer, in order of first delivery at
//!   the receiver's cursor, and the cursor only moves forward;
//! - the cursor never passes an entry the peer has not acknowledged, so a
//!   restart of either side resumes from the persisted cursor without gaps.
//!
//! This crate must not depend on storage, tokio, protobuf or the clock: time is
//! an argument, entries are opaque to it beyond their sequence numbers, and
//! repair sees records only through [`repair::RepairRecord`].
// Unit tests anchor virtual time at an arbitrary real instant; the cores
// themselves never read a clock (enforced by this crate's clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod purge;
mod receiver;
pub mod repair;
mod sender;

pub use receiver::{Receiver, Verdict};
pub use sender::{Batch, Output, Sender, SenderConfig};
