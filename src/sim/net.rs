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
        PeerMsg::Forget { .. } => "forget",
        PeerMsg::Cmd(_) => "cmd",
        PeerMsg::Resp(_) => "resp",
    }
}
