//! Node-to-node replication over QUIC: each node ships its own write log to
//! every peer (one outbound task per peer address) and applies what peers
//! ship to it (one task per inbound stream).
//!
//! The protocol logic (cursors, pipelining, retransmission, contiguous apply)
//! lives in the sans-IO `vergent-replication` core; this module only moves its
//! outputs between the store and the transport.

mod convert;
mod inbound;
mod outbound;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use vergent_transport::{Incoming, Transport};

use crate::node::Shared;

/// Meta key of the durable cursor of what `peer` has of our log.
fn sent_cursor_key(peer: &str) -> String {
    format!("repl/sent/{peer}")
}

/// Meta key of how much of `origin`'s log is durable here.
fn received_cursor_key(origin: &str) -> String {
    format!("repl/received/{origin}")
}

fn read_cursor(shared: &Shared, key: &str) -> u64 {
    shared
        .store
        .get_meta(key)
        .ok()
        .flatten()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Starts replication: outbound to every peer, inbound from any node.
pub(crate) fn start(
    shared: Arc<Shared>,
    transport: Transport,
    mut incoming: mpsc::Receiver<Incoming>,
    peers: Vec<SocketAddr>,
    head: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    for peer in peers {
        tokio::spawn(outbound::run(
            shared.clone(),
            transport.clone(),
            peer,
            head.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => break,
                item = incoming.recv() => item,
            };
            match item {
                None => break,
                Some(Incoming::Stream {
                    peer,
                    writer,
                    reader,
                }) => {
                    tokio::spawn(inbound::serve(
                        shared.clone(),
                        peer,
                        writer,
                        reader,
                        shutdown.clone(),
                    ));
                }
                Some(Incoming::Datagram { peer, .. }) => {
                    // Gossip rides on datagrams in a later release.
                    warn!(peer = %peer.addr, "ignoring a datagram: gossip is not enabled in this build");
                }
            }
        }
        transport.shutdown().await;
    });
}
