//! Domain messages between members, and the outputs the core hands to its
//! driver. These are not protobuf types: the driver converts them at the edge.

use vergent_types::NodeId;

use crate::member::{Member, State};

/// One protocol message. Every message says who sent it (which doubles as an
/// `Alive` claim about the sender) and carries piggybacked updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender's identity, advertised address and current incarnation.
    pub from: Sender,
    /// What the message asks or answers.
    pub body: Body,
    /// Membership news piggybacked on the message, most urgent first.
    pub updates: Vec<Update>,
}

/// The sender of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// The sender's node id.
    pub id: NodeId,
    /// The address the sender advertises; replies go there.
    pub addr: String,
    /// The sender's incarnation when it sent the message.
    pub incarnation: u64,
}

/// The request or answer a [`Message`] carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Direct probe: the receiver answers `Ack { seq }` if it is `target`.
    Ping {
        /// Probe sequence number chosen by the sender, echoed in the ack.
        seq: u64,
        /// The node the sender means to probe; another node at that address
        /// ignores the ping.
        target: NodeId,
    },
    /// Answer to a `Ping` (or a relayed answer to a `PingReq`).
    Ack {
        /// The sequence number of the ping or ping request answered.
        seq: u64,
    },
    /// Lifeguard: an indirect prober's answer that it got no ack from the target
    /// in time. It proves the path to the requester works, so a missing nack
    /// counts against the requester's own health.
    Nack {
        /// The sequence number of the ping request answered.
        seq: u64,
    },
    /// Indirect probe: "ping `target` for me and relay its ack".
    PingReq {
        /// The requester's probe sequence number, echoed in the ack or nack.
        seq: u64,
        /// The node to probe.
        target: NodeId,
        /// Where the target lives, as the requester knows it.
        target_addr: String,
    },
    /// Full-state exchange: the sender's whole member list (itself included).
    /// A request (`is_reply == false`) is answered with the receiver's list.
    PushPull {
        /// Every member the sender knows, in any state.
        members: Vec<Member>,
        /// Whether this answers a push-pull request.
        is_reply: bool,
    },
    /// Carries only piggybacked updates (gossip rounds and leave announcements).
    Gossip,
}

/// One piece of membership news: a claim about a member's state at an
/// incarnation, as disseminated by piggybacking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The member the claim is about.
    pub id: NodeId,
    /// The member's advertised address.
    pub addr: String,
    /// The member's incarnation the claim refers to.
    pub incarnation: u64,
    /// The claimed state.
    pub state: State,
    /// Who made the claim: the member itself for `Alive` and `Left`, the
    /// suspecting node for `Suspect` (distinct senders confirm a suspicion),
    /// the node whose suspicion timed out for `Dead`.
    pub from: NodeId,
}

/// An effect for the driver to carry out, in the order returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` to the member at address `to`, best effort: the protocol
    /// tolerates loss, duplication and reordering.
    Send {
        /// The destination's advertised address (`host:port`).
        to: String,
        /// The message to send.
        msg: Message,
    },
    /// Something changed in the membership view; the driver updates whatever
    /// depends on it (routing, anti-entropy peers, metrics, logs).
    Event(Event),
}

/// A change in this node's view of another member. Events are never emitted
/// about the local node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member was seen alive (or suspect) for the first time.
    Joined(Member),
    /// A suspect, dead or left member is alive again with a higher incarnation.
    Alive(Member),
    /// A member became suspect.
    Suspect(Member),
    /// A member was declared dead.
    Dead(Member),
    /// A member left gracefully.
    Left(Member),
    /// A live member now advertises another address (higher incarnation).
    AddrChanged {
        /// The member with its new address.
        member: Member,
        /// The address it had before.
        old_addr: String,
    },
    /// Two processes claim the same node id from different addresses. The one
    /// with the higher incarnation is kept; the other is ignored. Emitted once
    /// per `(id, rejected address)` pair.
    Conflict {
        /// The member as kept.
        kept: Member,
        /// The address of the claim that lost.
        rejected_addr: String,
        /// The incarnation of the claim that lost.
        rejected_incarnation: u64,
    },
}
