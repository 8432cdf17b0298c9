//! The node types both protocols speak of: a node's id, the version of
//! its announcement, and a hop of a routed command. They live apart so
//! that the peer protocol (`peer`) and the control protocol (`ctl`) can
//! both use them without using each other both ways.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A node's identity: 128 random bits, shown as 32 hex digits.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub u128);

impl NodeId {
    /// The first 8 hex digits, for places where space is short.
    pub fn short(&self) -> String {
        format!("{:08x}", (self.0 >> 96) as u32)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl FromStr for NodeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() != 32 {
            return Err(format!("node id {s:?}: want 32 hex digits"));
        }
        u128::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|_| format!("node id {s:?}: not hex"))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The version of a node's announcement: newer wins.
///
/// `inc` (incarnation) changes at every start of the daemon, so a restarted
/// node supersedes what it said before; `seq` counts announcements within
/// one incarnation.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version {
    /// Incarnation: start time in ms, bumped past any value seen for this id.
    pub inc: u64,
    /// Sequence number within the incarnation.
    pub seq: u64,
}

/// One step of a routed command: who carried it and at what link RTT.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// The node.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// RTT in µs of the link this node passed the message on over.
    pub rtt_us: Option<u32>,
}
