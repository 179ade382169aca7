//! Vergent's per-key consensus core: single-decree CASPaxos over HLC ballots.
//!
//! This crate owns the protocol logic of strong per-key operations: the
//! [`Ballot`] order, the acceptor rules ([`handle_prepare`],
//! [`handle_accept`], [`handle_commit`]), the proposer's state machine for one
//! operation ([`Round`], with the 1-RTT [`ProposerCache`] and contention
//! [`Backoff`]), quorum counting over an epoch-versioned [`VotingConfig`]
//! (joint consensus included), the counting rules of eventual reads and
//! writes at `quorum` and `all` ([`levels`]), and the encoding of the per-key
//! [`AcceptorState`] a node persists.
//!
//! It is sans-IO, like `vergent-replication`: the node's driver feeds in
//! messages, the current time and the node's [`Hlc`](vergent_hlc::Hlc), and
//! carries out what comes back (persist, send, answer the client). It must
//! not depend on storage, the network, an async runtime or a clock read;
//! every random choice comes from a generator the caller seeds.
//!
//! Values are `Option<Vec<u8>>`, `None` being a tombstone. Chosen values
//! reach the ordinary last-writer-wins store through [`handle_commit`], with
//! a commit [`Version`](vergent_types::Version) above every version the round
//! saw (a write-back keeps the version of the record it re-proposes), so
//! higher chosen ballots never carry lower versions.

mod acceptor;
mod backoff;
mod ballot;
mod config;
mod error;
pub mod gc;
pub mod levels;
mod proposer;
mod state;

pub use acceptor::{
    Accept, AcceptReply, Commit, CommitEffect, Prepare, PrepareReply, Promise, handle_accept,
    handle_commit, handle_prepare,
};
pub use backoff::Backoff;
pub use ballot::Ballot;
pub use config::{QuorumTracker, VotingConfig};
pub use error::Error;
pub use proposer::{
    Cached, Expect, Message, Op, Outcome, ProposerCache, Round, RoundOutput, RoundRequest,
};
pub use state::{Accepted, AcceptorState, LwwRecord, Value};
