//! Hybrid logical clock (Kulkarni et al. 2014) for Vergent: the 64-bit
//! [`Timestamp`] that orders every version, the [`Hlc`] that issues them, and
//! the [`Ceiling`] bookkeeping that keeps the clock monotonic across restarts.
//!
//! This crate is pure computation. It must not do I/O, read any clock (the
//! caller passes physical time in on every call, which keeps it
//! deterministic under test), or depend on tokio, prost, or rocksdb.
//!
//! ```
//! use vergent_hlc::{Ceiling, Hlc, HlcConfig, Timestamp};
//!
//! // On start: resume above the ceiling persisted before the last shutdown.
//! let persisted = Timestamp::new(1_795_440_472_000, 0);
//! let mut hlc = Hlc::with_floor(HlcConfig::default(), persisted);
//! let mut ceiling = Ceiling::new(persisted, 10_000);
//!
//! let ts = hlc.now(1_795_440_472_123);
//! assert!(ts > persisted);
//! if let Some(next) = ceiling.check(ts) {
//!     // Persist `next` durably here, before `ts` leaves the process.
//!     assert!(next > ts);
//! }
//! assert_eq!(ts.to_string().parse::<Timestamp>(), Ok(ts));
//! ```

mod ceiling;
mod clock;
mod timestamp;

pub use ceiling::Ceiling;
pub use clock::{ClockError, Hlc, HlcConfig};
pub use timestamp::{ParseError, Timestamp};
