//! Cluster membership for Vergent: SWIM failure detection and dissemination
//! with the Lifeguard refinements, as a sans-IO state machine.
//!
//! This crate owns who is in the cluster and in which state ([`State`]): the
//! probe schedule, indirect probes, suspicion and its timeout, incarnation
//! numbers and refutation, the piggyback queue, periodic push-pull full-state
//! exchange, joining through seed addresses and graceful leave.
//!
//! It must not depend on sockets, tokio, protobuf or the clock, and it never
//! reads OS randomness. Time arrives as a `now: Instant` argument on every
//! call, randomness comes from a seeded generator, and effects leave through
//! [`Membership::poll_output`]. A driver (in `vergent-node`) owns one
//! [`Membership`], feeds it messages and timeouts, and turns each
//! [`Output::Send`] into a datagram or stream on its transport; it converts
//! [`Message`] to and from its wire type at the edge.
//!
//! The driver loop, in the shape shared with the other cores:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use vergent_gossip::{Config, Membership, Output};
//! use vergent_types::NodeId;
//!
//! let now = Instant::now(); // The driver reads the clock; the core never does.
//! let id = NodeId::new("node-a").expect("valid id");
//! let mut m = Membership::new(Config::default(), id, "10.0.0.1:7000".into(), 0, 42, now);
//! m.join(now, &["10.0.0.2:7000".to_string()]);
//! while let Some(out) = m.poll_output() {
//!     match out {
//!         Output::Send { to, msg } => { /* encode `msg`, send it to `to` */ let _ = (to, msg); }
//!         Output::Event(event) => { /* update routing, log */ let _ = event; }
//!     }
//! }
//! // Sleep until `m.poll_timeout()` or until a message arrives, then call
//! // `m.handle_timeout(now)` or `m.handle_message(now, from_addr, msg)`.
//! let next = m.poll_timeout().expect("probes are scheduled");
//! assert!(next <= now + Duration::from_secs(1));
//! ```
//!
//! The protocol, the member states, the incarnation rules and the timing
//! parameters are explained in `docs/gossip.md` at the workspace root.
// Unit tests anchor virtual time at an arbitrary real instant; the cores
// themselves never read a clock (enforced by this crate's clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod broadcast;
mod config;
mod member;
mod membership;
mod message;
mod suspicion;
mod timer;

#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};
pub use member::{Member, State};
pub use membership::{MAX_FORMER, Membership};
pub use message::{Body, Event, Message, Output, Sender, Update};
pub use vergent_types::NodeId;
