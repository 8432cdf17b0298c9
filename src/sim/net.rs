//! The simulated network's conditions and its traffic counters.

use std::collections::BTreeMap;

use crate::wire::peer::PeerMsg;

/// Network conditions of a simulation.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// One-way delay of every frame, µs.
    pub delay_us: u64,
    /// Extra random delay, up to this many µs.
    pub jitter_us: u64,
    /// Probability that a frame needs a retransmission.
    pub loss: f64,
    /// What a retransmission costs, µs.
    pub rto_us: u64,
    /// Count the bytes of every frame (costs a JSON encoding per frame).
    pub count_bytes: bool,
    /// Keep every node's membership news ([`Sim::news`]); costs memory in
    /// proportion to N² as a network forms.
    pub keep_news: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            delay_us: 1000,
            jitter_us: 0,
            loss: 0.0,
            rto_us: 200_000,
            count_bytes: false,
            keep_news: false,
        }
    }
}

/// Traffic counters, network-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (frame bodies plus length prefix), if counted.
    pub bytes: u64,
    /// Frames by message type.
    pub by_type: BTreeMap<&'static str, u64>,
    /// Bytes by message type, if counted.
    pub bytes_by_type: BTreeMap<&'static str, u64>,
    /// Bytes sent by each node (by index), if counted.
    pub bytes_from: Vec<u64>,
    /// Bytes sent to each node (by index), if counted.
    pub bytes_to: Vec<u64>,
}

impl Counters {
    /// Counts `bytes` sent from node `from` to node `to`.
    pub(super) fn count(&mut self, from: usize, to: usize, kind: &'static str, bytes: u64) {
        self.bytes += bytes;
        *self.bytes_by_type.entry(kind).or_default() += bytes;
        for (v, i) in [(&mut self.bytes_from, from), (&mut self.bytes_to, to)] {
            if v.len() <= i {
                v.resize(i + 1, 0);
            }
            v[i] += bytes;
        }
    }

    /// Bytes sent by node `i` so far.
    pub fn sent_by(&self, i: usize) -> u64 {
        self.bytes_from.get(i).copied().unwrap_or(0)
    }

    /// Bytes sent to node `i` so far.
    pub fn sent_to(&self, i: usize) -> u64 {
        self.bytes_to.get(i).copied().unwrap_or(0)
    }
}

/// A message's type, for [`Counters::by_type`].
pub(super) fn msg_type(m: &PeerMsg) -> &'static str {
    match m {
        PeerMsg::Hello(_) => "hello",
        PeerMsg::Refuse { .. } => "refuse",
        PeerMsg::Ping { .. } => "ping",
        PeerMsg::Pong { .. } => "pong",
        PeerMsg::Digest { .. } => "digest",
        PeerMsg::Na(_) => "na",
        PeerMsg::Change(_) => "change",
        PeerMsg::Want { .. } => "want",
        PeerMsg::Forget { .. } => "forget",
        PeerMsg::Cmd(_) => "cmd",
        PeerMsg::Resp(_) => "resp",
    }
}
