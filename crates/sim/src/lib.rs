//! Vergent's deterministic multi-node simulation: several nodes' production
//! cores (gossip, replication sender and receiver, repair initiator and
//! responder, the purge rule, the HLC) in one process, over an in-memory
//! store with the storage engine's LWW and digest semantics, on a network
//! of composable faults, in virtual time.
//!
//! A run is a function of its seed ([`World::new`]): the network, the
//! schedule and every node's random choices draw from `ChaCha8Rng`, whose
//! stream does not change across `rand` versions, so a failing seed
//! replays. The invariants ([`invariants`]) are pure functions of the
//! history and the final state, one per file, each with a test showing it
//! can fail.
//!
//! Strong operations: every node also hosts the `vergent-consensus`
//! acceptor (its per-key state kept in the node's store, durable before
//! each reply) and a proposer driver with the production driver's policy
//! ([`node`]'s `strong` module), over the same faulty network. Clients'
//! reads, writes and CASes on a few keys are recorded with their call and
//! answer times in virtual time ([`Event::StrongInvoked`],
//! [`Event::StrongReturned`]; never answered or "unknown": may or may not
//! have applied), and [`invariants::linearizable`] checks each key's
//! history with `vergent-lincheck`.
//!
//! Owns only test machinery: it must not depend on tokio, quinn, tonic or
//! RocksDB, nor read a clock (its `clippy.toml` bans it); nothing shipped
//! depends on it.

pub mod history;
pub mod invariants;
pub mod net;
pub mod node;
pub mod store;
pub mod world;

pub use history::{Event, History, LevelResult, StrongResult};
pub use net::{Class, Filter, Network};
pub use node::{Msg, NodeConfig, SimNode};
pub use store::{MemStore, Rec};
pub use world::{World, WorldConfig};
