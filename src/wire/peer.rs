//! Peer protocol: what two daemons say to each other over a link.
//!
//! A link is one TCP connection, opened by whichever side was given the
//! other's address ("phoning home") and used in both directions.
//!
//! ```text
//!  dialer                                  listener
//!    |-- Hello{proto, id, record, seen_as} -->|   both send Hello at once;
//!    |<-- Hello{proto, id, record, seen_as} --|   a major-version mismatch
//!    |                                        |   is answered with Refuse
//!    |-- Digest{id -> version, ...} --------->|   then each side sends the
//!    |<-- Digest ----------------------------|   announcements the other
//!    |<-- Na ... / Na ... ------------------->|   lacks or holds older
//!    |                                        |
//!    |-- Ping{s} ---------------------------->|   every heartbeat, dialer
//!    |<-- Pong{s} ----------------------------|   only: the echo gives RTT
//!    |                                        |
//!    |<-- Na / Change / Forget / Cmd / Resp ->|   floods and routed
//!    |                                        |   commands, any time
//!    |<-- Want{id} ---------------------------|   a Change whose base the
//!    |--- Na -------------------------------->|   receiver lacks: send it whole
//! ```
//!
//! Any frame counts as proof of life; a link silent for three heartbeat
//! intervals is dead.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::ctl::{Answer, Command};
pub use super::types::{Hop, NodeId, Version};

/// Major protocol version: peers with another major version are refused.
pub const PROTO_MAJOR: u16 = 1;
/// Minor protocol version: differences are tolerated, and a feature is
/// used on a link only when both ends speak the minor version that brought
/// it. 1: announcements may travel as changes ([`Delta`], [`PeerMsg::Change`],
/// [`PeerMsg::Want`]); a 1.0 peer gets them whole.
pub const PROTO_MINOR: u16 = 1;
/// The first minor version that takes [`PeerMsg::Change`].
pub const MINOR_DELTAS: u16 = 1;

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Hostname unless `--name` was given.
    pub name: String,
    /// Address of the interface holding the default route (or `-i IFACE`).
    pub internal_ip: Option<String>,
    /// Every interface address.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// `-p ADDR`, if given.
    pub public_ip: Option<String>,
    /// TCP port the node listens on for links.
    pub port: u16,
    /// `host`, `vm` or `container`.
    pub kind: String,
    /// `--tag k=v` pairs.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// daust version.
    pub version: String,
    /// Operating system.
    pub os: String,
    /// When this incarnation started, wall clock ms since the epoch.
    pub started_ms: u64,
    /// A deadend node never forwards anything for others.
    pub deadend: bool,
}

/// One live link as its node announces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The node at the other end.
    pub id: NodeId,
    /// Round-trip time of the link in microseconds, once measured.
    pub rtt_us: Option<u32>,
    /// The address the neighbour sees this node's connection come from.
    pub seen_as: Option<String>,
}

/// A node announcement (NA): the unit of the link-state database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Whose announcement this is.
    pub id: NodeId,
    /// Its version; the newest wins everywhere.
    pub version: Version,
    /// The node's record.
    pub record: NodeRecord,
    /// The node's live links.
    pub neighbors: Vec<Neighbor>,
    /// The node said goodbye (graceful stop).
    #[serde(default)]
    pub left: bool,
}

/// The change from one version of a node's announcement to the next: what
/// a hub sends when one of its thousand links comes or goes, instead of all
/// thousand. It applies only to the version it was made from (`base`);
/// a node holding another asks for the whole announcement ([`PeerMsg::Want`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Whose announcement.
    pub id: NodeId,
    /// The version it applies to.
    pub base: Version,
    /// The version it makes.
    pub version: Version,
    /// The node's record, if it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<NodeRecord>,
    /// Links added or changed (in id order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<Neighbor>,
    /// Links gone (in id order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<NodeId>,
    /// The node said goodbye.
    #[serde(default)]
    pub left: bool,
}

/// Opening message of a link, sent by both sides at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Major protocol version, see [`PROTO_MAJOR`].
    pub proto: u16,
    /// Minor protocol version.
    pub minor: u16,
    /// The sender's id.
    pub id: NodeId,
    /// The sender's heartbeat interval in ms, for its peer's log: each side
    /// judges a link's silence by its own heartbeat, and probes a peer that
    /// pings less often.
    pub hb_ms: u64,
    /// The sender's current announcement.
    pub na: Announcement,
    /// The address the sender sees the receiver's connection come from.
    pub seen_as: String,
}

/// Where a routed command goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dest {
    /// One node, hop by hop along next hops.
    Node(NodeId),
    /// Every node: flooded with dedup and a hop limit.
    All,
}

/// A command travelling through the overlay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    /// Message id, unique per origin across its restarts: each run counts
    /// up from a random start, since every node remembers the ids of the
    /// flooded commands it has seen.
    pub mid: u64,
    /// The node whose client asked.
    pub origin: NodeId,
    /// Where it goes.
    pub dest: Dest,
    /// Hops left before it is dropped.
    pub ttl: u8,
    /// Nodes it went through, the origin first.
    pub path: Vec<Hop>,
    /// What to run.
    pub cmd: Command,
}

/// An answer travelling back to the origin of a [`Routed`] command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutedReply {
    /// The command's message id.
    pub mid: u64,
    /// The origin, where the answer goes.
    pub to: NodeId,
    /// Hops left before it is dropped.
    pub ttl: u8,
    /// The path the command took to the answering node, that node last.
    pub path: Vec<Hop>,
    /// The answer.
    pub answer: Answer,
    /// Which part of a long answer this is (a `list` of a big table
    /// travels in parts, each far below the frame limit); none for an
    /// answer in one piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// One of the parts of a long answer: its body is a `list` holding some of
/// the nodes, and the origin joins the parts once all `of` are in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Which part, from 0.
    pub n: u32,
    /// How many parts there are.
    pub of: u32,
}

/// Every message on a peer link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerMsg {
    /// Handshake, see [`Hello`].
    Hello(Box<Hello>),
    /// Refusal of the handshake (version mismatch, ...); the link closes.
    Refuse {
        /// Why, for the other side's log.
        reason: String,
    },
    /// Heartbeat probe, sent by the dialling side.
    Ping {
        /// Sequence number, echoed in the pong.
        s: u32,
        /// The sender's last measured RTT in µs, so both ends know it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r: Option<u32>,
    },
    /// Heartbeat echo.
    Pong {
        /// The probe's sequence number.
        s: u32,
    },
    /// Part of the sender's table of versions, sent on link up.
    Digest {
        /// Node id and the version the sender holds.
        entries: Vec<(NodeId, Version)>,
        /// The last part: what was not listed, the sender lacks.
        done: bool,
    },
    /// A node announcement, flooded.
    Na(Arc<Announcement>),
    /// A change to a node announcement, flooded like one (only to peers of
    /// minor version [`MINOR_DELTAS`] or later).
    Change(Arc<Delta>),
    /// Send me your whole announcement of this node: a change arrived for
    /// a version I do not hold.
    Want {
        /// The node.
        id: NodeId,
    },
    /// Drop a node from every table, flooded.
    Forget {
        /// The node.
        id: NodeId,
        /// Versions up to this one are forgotten; newer ones return.
        version: Version,
    },
    /// A routed command.
    Cmd(Box<Routed>),
    /// An answer to a routed command.
    Resp(Box<RoutedReply>),
}
