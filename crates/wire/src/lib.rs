//! Vergent's wire format: protobuf messages and gRPC service stubs.
//!
//! The code is generated from the `.proto` files in `proto/` at build time by
//! protox (pure Rust), so a fresh machine needs no system `protoc`.
//! [`convert`] holds the only conversions between wire types and the domain
//! types of `vergent-types`/`vergent-hlc`; no other crate hand-maps them.
//!
//! This crate holds no domain logic and must not depend on storage, TLS,
//! networking beyond tonic's generated stubs, or any server internals.

pub mod convert;

/// The client API (`vergent.api.v1`).
pub mod api {
    /// Version 1 of the client API.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, unused_qualifications, clippy::all)]
        tonic::include_proto!("vergent.api.v1");
    }
}

/// The peer protocol (`vergent.peer.v1`), carried over QUIC between nodes.
pub mod peer {
    /// Version 1 of the peer protocol.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, unused_qualifications, clippy::all)]
        tonic::include_proto!("vergent.peer.v1");
    }
}

/// The encoded `FileDescriptorSet` of every proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vergent_descriptor.bin"));

/// Response metadata key that carries the [`api::v1::ErrorCode`] name of a failed call.
pub const ERROR_CODE_METADATA: &str = "vergent-error-code";

/// Response metadata key of a refusal that may be retried later: the
/// milliseconds to wait first (a rate-limited request).
pub const RETRY_AFTER_METADATA: &str = "vergent-retry-after-ms";
