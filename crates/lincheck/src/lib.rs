//! A linearizability checker for recorded client histories: Wing & Gong's
//! search (1993) with Lowe's memoization (2017), checking each key on its own
//! (P-compositionality, Herlihy & Wing 1990).
//!
//! This crate owns the [`Model`] trait (a sequential specification), the
//! models Vergent's tests need ([`Register`], [`KvString`], [`VergentKv`]),
//! the [`History`] of operations (built directly or from Jepsen-style
//! [`Event`]s), the checker ([`check`], [`check_by_key`]) and the parsers for
//! the Jepsen etcd and Porcupine KV history formats ([`formats`]).
//!
//! It is pure computation: it must not depend on any other Vergent crate or
//! on any async or I/O crate, must not read a clock and must not draw OS
//! randomness, so a verdict depends on the history alone.
//!
//! ```
//! use vergent_lincheck::{
//!     check, CheckOptions, History, Operation, Register, RegisterInput, RegisterOutput, Verdict,
//! };
//!
//! // Client 0 writes 1 over [0, 10]; client 1 reads nil over [20, 30]: stale.
//! let history = History::from_ops(vec![
//!     Operation::returned(0, 0, 10, RegisterInput::Write(1), RegisterOutput::Written),
//!     Operation::returned(1, 20, 30, RegisterInput::Read, RegisterOutput::Read(None)),
//! ])
//! .expect("valid history");
//! let verdict = check(&Register::<i64>::new(), &history, &CheckOptions::default());
//! assert!(matches!(verdict, Verdict::NotLinearizable(_)));
//! ```

mod check;
pub mod formats;
mod history;
mod model;
mod models;

pub use check::{CheckOptions, Counterexample, OpSummary, Verdict, check, check_by_key};
pub use history::{Event, EventKind, History, HistoryError, Operation};
pub use model::Model;
pub use models::{
    Expect, KvInput, KvOp, KvOutput, KvString, Register, RegisterInput, RegisterOutput, VergentKv,
    VergentKvInput, VergentKvOutput, VergentOp,
};
