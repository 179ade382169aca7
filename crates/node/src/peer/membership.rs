//! Drives the SWIM membership core: feeds it gossip from peers and timer
//! ticks, sends what it asks for, and turns its events into replication
//! targets (a member that joins or comes back gets a sender; a dead one's
//! sender stops until it is alive again).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vergent_gossip::{Config, Event, Member, Membership, Message, Output, State};
use vergent_transport::Transport;
use vergent_wire::peer::v1::frame::Body as FrameBody;

use super::PeerCtx;
use super::convert::encode;
use super::gossip_convert::to_wire;
use crate::clock::wall_ms;

/// Datagrams above this go on a stream instead (QUIC datagrams must fit in
/// one packet).
const MAX_DATAGRAM: usize = 1100;
/// How long a graceful leave may take to announce itself.
const LEAVE_FLUSH: Duration = Duration::from_secs(1);

pub(crate) use crate::status::MemberInfo;

async fn resolve(addr: &str) -> Option<SocketAddr> {
    if let Ok(a) = addr.parse() {
        return Some(a);
    }
    tokio::net::lookup_host(addr).await.ok()?.next()
}

/// Sends one gossip message, best effort (the protocol tolerates loss).
fn send(transport: &Transport, to: String, msg: &Message) -> JoinHandle<()> {
    let wire = to_wire(msg);
    let transport = transport.clone();
    tokio::spawn(async move {
        let Some(addr) = resolve(&to).await else {
            debug!(%to, "cannot resolve gossip target");
            return;
        };
        let bytes = wire.encode_to_vec();
        let result = if bytes.len() <= MAX_DATAGRAM {
            transport.send_datagram(addr, Bytes::from(bytes)).await
        } else {
            match transport.open_stream(addr).await {
                Ok((mut w, _r)) => {
                    let r = w.send(&encode(FrameBody::Gossip(wire))).await;
                    let _ = w.finish();
                    r
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            debug!(%to, error = %e, "gossip send failed");
        }
    })
}

struct Targets {
    ctx: Arc<PeerCtx>,
    transport: Transport,
    head: watch::Receiver<u64>,
    shutdown: CancellationToken,
    running: HashMap<String, (SocketAddr, AbortHandle)>,
}

impl Targets {
    async fn start(&mut self, member: &Member) {
        let Some(addr) = resolve(&member.addr).await else {
            warn!(peer_id = %member.id, addr = %member.addr, "cannot resolve member address");
            return;
        };
        if let Some((old, task)) = self.running.get(member.id.as_str()) {
            if *old == addr && !task.is_finished() {
                return;
            }
            task.abort();
        }
        let task = self.ctx.workers.spawn(
            format!("replication-sender:{}", member.id),
            super::outbound::run(
                self.ctx.clone(),
                self.transport.clone(),
                addr,
                self.head.clone(),
                self.shutdown.clone(),
            ),
        );
        self.running.insert(member.id.to_string(), (addr, task));
    }

    fn stop(&mut self, id: &str) {
        if let Some((_, task)) = self.running.remove(id) {
            task.abort();
        }
    }
}

pub(super) async fn run(
    ctx: Arc<PeerCtx>,
    transport: Transport,
    mut inbox: mpsc::Receiver<(String, Message)>,
    seeds: Vec<String>,
    head: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    let now = Instant::now();
    let seed = rand::random::<u64>();
    let mut m = Membership::new(
        Config::default(),
        ctx.identity.node_id.clone(),
        ctx.identity.advertise.to_string(),
        0,
        seed,
        now,
    );
    // Members known from earlier runs are knocked on like seeds, so a
    // partition heals even when it outlived gossip's memory and a restart.
    for (_, e) in ctx.roster.entries() {
        if !e.addr.is_empty() {
            m.remember_address(&e.addr);
        }
    }
    m.join(now, &seeds);
    let mut targets = Targets {
        ctx: ctx.clone(),
        transport: transport.clone(),
        head,
        shutdown: shutdown.clone(),
        running: HashMap::new(),
    };
    let mut since: HashMap<String, u64> = HashMap::new();
    loop {
        while let Some(out) = m.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    send(&transport, to, &msg);
                }
                Output::Event(event) => {
                    on_event(&mut targets, &event).await;
                    if let Some(id) = event_member_id(&event) {
                        since.insert(id, wall_ms());
                    }
                }
            }
        }
        publish(&ctx, &m, &since);
        let deadline = m
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = inbox.recv() => match msg {
                Some((from, msg)) => m.handle_message(Instant::now(), &from, msg),
                None => break,
            },
            () = tokio::time::sleep_until(deadline) => m.handle_timeout(Instant::now()),
        }
    }
    // Graceful leave: tell the others, and give the messages a moment to go.
    m.leave(Instant::now());
    let mut sends = Vec::new();
    while let Some(out) = m.poll_output() {
        if let Output::Send { to, msg } = out {
            sends.push(send(&transport, to, &msg));
        }
    }
    let _ = tokio::time::timeout(LEAVE_FLUSH, futures::future::join_all(sends)).await;
    for (_, (_, task)) in targets.running.drain() {
        task.abort();
    }
}

fn event_member_id(e: &Event) -> Option<String> {
    match e {
        Event::Joined(m)
        | Event::Alive(m)
        | Event::Suspect(m)
        | Event::Dead(m)
        | Event::Left(m) => Some(m.id.to_string()),
        Event::AddrChanged { member, .. } => Some(member.id.to_string()),
        Event::Conflict { .. } => None,
    }
}

async fn on_event(targets: &mut Targets, event: &Event) {
    match event {
        Event::Joined(m) => {
            info!(peer_id = %m.id, addr = %m.addr, incarnation = m.incarnation, "member joined");
            targets.start(m).await;
            targets.ctx.repair.trigger.notify_one();
        }
        Event::Alive(m) => {
            info!(peer_id = %m.id, addr = %m.addr, incarnation = m.incarnation, "member alive again");
            targets.start(m).await;
            targets.ctx.repair.trigger.notify_one();
        }
        Event::AddrChanged { member, old_addr } => {
            info!(peer_id = %member.id, addr = %member.addr, %old_addr, "member address changed");
            targets.start(member).await;
        }
        Event::Suspect(m) => {
            info!(peer_id = %m.id, incarnation = m.incarnation, "member suspect");
        }
        Event::Dead(m) => {
            warn!(peer_id = %m.id, incarnation = m.incarnation, "member dead; pausing replication to it");
            targets.stop(m.id.as_str());
        }
        Event::Left(m) => {
            info!(peer_id = %m.id, "member left; pausing replication to it");
            // A graceful shutdown is also a leave, and the node usually comes
            // back: its cursor keeps holding the log (up to --max-log-lag) so
            // it catches up from where it was.
            targets.stop(m.id.as_str());
        }
        Event::Conflict {
            kept,
            rejected_addr,
            rejected_incarnation,
        } => {
            warn!(
                peer_id = %kept.id,
                kept_addr = %kept.addr,
                %rejected_addr,
                rejected_incarnation,
                "two processes claim the same node id; give each node its own --node-id"
            );
        }
    }
}

/// Publishes the membership view for `status`, and adds every member to the
/// roster (a member first heard of as dead or left gets no event, but must
/// count for the purge rule all the same).
fn publish(ctx: &PeerCtx, m: &Membership, since: &HashMap<String, u64>) {
    for mem in m.members() {
        if mem.id != ctx.identity.node_id {
            ctx.roster.learn(
                &ctx.store,
                mem.id.as_str(),
                Some(&mem.addr),
                None,
                mem.state == State::Alive,
            );
        }
    }
    let view: Vec<MemberInfo> = m
        .members()
        .map(|mem| MemberInfo {
            id: mem.id.to_string(),
            addr: mem.addr.clone(),
            state: mem.state,
            incarnation: mem.incarnation,
            since_ms: since.get(mem.id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    ctx.members.send_replace(Arc::new(view));
}
