//! Vergent's fault-injection verification suite (Jepsen-style): a seeded
//! nemesis schedule, a recorded client history, and checkers that decide from
//! the history and the replicas' final state whether the database kept its
//! promises (no lost acknowledged write, convergence, no resurrection, no
//! clock poisoning).
//!
//! The library part (history, schedule, checkers) is pure and unit-tested
//! with crafted histories; the `vergent-chaos` binary drives real `vergentd`
//! processes and is started by `cargo xtask chaos`, which owns the network
//! namespace. This crate talks to nodes only through `vergent-client`: it must
//! not depend on the server crates (node, storage, transport), so it tests
//! the product as users see it.

pub mod check;
pub mod history;
pub mod proxy;
pub mod schedule;
pub mod strong;
