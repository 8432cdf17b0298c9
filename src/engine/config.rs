//! Engine configuration: every knob with its unit, default and why.

use std::num::NonZeroU8;
use std::time::Duration;

/// Tunables of the protocol. [`Config::default`] is the setting for any
/// network of hosts, VMs and containers; the daemon changes only what its
/// flags say (heartbeat, forget-after, deadend, keys).
#[derive(Clone, Debug)]
pub struct Config {
    /// Heartbeat interval on every link. A link silent for three intervals
    /// (of the slower side) is dead. Default 1 s; down to 100 ms is sane on
    /// a LAN, each halving doubles the idle traffic. At least 50 ms.
    pub heartbeat: Duration,
    /// Unreachable or left nodes are dropped from the table after this
    /// long; `None` keeps them forever. Default 7 days.
    pub forget_after: Option<Duration>,
    /// Never forward anything for others (a leaf, e.g. a container).
    pub deadend: bool,
    /// Whether peer links are authenticated; reported by `info`.
    pub authenticated: bool,
    /// Fingerprints of the cluster keys, the initiating one first; reported
    /// by `keys`.
    pub key_ids: Vec<String>,
    /// Debounce before re-announcing after a new link or a record change:
    /// batches bursts (several links coming up at once) into one flood.
    /// The first change after a quiet spell goes out at once. Default 20 ms.
    pub announce_debounce: Duration,
    /// Debounce before recomputing routes after the graph changed: a flood
    /// of announcements costs one recomputation. Default 5 ms.
    pub route_debounce: Duration,
    /// Safety-net re-announcement, as OSPF does. Default 30 minutes.
    pub refresh: Duration,
    /// Debounce before writing the snapshot after a change. Default
    /// 250 ms: a burst of changes is one write, and little is lost to a
    /// crash.
    pub persist_debounce: Duration,
    /// A link that has not completed its handshake in this long is closed.
    /// Default 5 s.
    pub handshake_timeout: Duration,
    /// First redial delay after a failure; doubles up to `redial_max`.
    /// Default 1 s.
    pub redial_min: Duration,
    /// Longest redial delay. Default 30 s.
    pub redial_max: Duration,
    /// Hop limit of routed and flooded commands. Default 32.
    pub max_hops: NonZeroU8,
    /// Entries in the cache of flooded commands already seen. Default 4,096.
    pub seen_cache: usize,
    /// How long a node stopped by `all stop` keeps relaying answers for the
    /// nodes behind it before it exits. Default 3 s.
    pub stop_linger: Duration,
    /// Key of the hash maps keyed by node id: random in a daemon, so that
    /// a peer cannot choose ids that collide; 0 in a simulation, which
    /// must replay exactly.
    pub hash_key: u64,
    /// The peer protocol's minor version this node speaks
    /// ([`crate::wire::peer::PROTO_MINOR`]); a simulation sets an older
    /// one to stand for a daemon of the previous release (a rolling
    /// upgrade), or to compare the network with and without a feature.
    pub minor: u16,
    /// Whether to make membership news ([`super::Action::News`]). Each
    /// is a copy of the node's view and path; a simulation that keeps
    /// none turns them off (N² of them as a network forms).
    pub news: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat: Duration::from_secs(1),
            forget_after: Some(Duration::from_secs(7 * 24 * 3600)),
            deadend: false,
            authenticated: false,
            key_ids: Vec::new(),
            announce_debounce: Duration::from_millis(20),
            route_debounce: Duration::from_millis(5),
            refresh: Duration::from_secs(30 * 60),
            persist_debounce: Duration::from_millis(250),
            handshake_timeout: Duration::from_secs(5),
            redial_min: Duration::from_secs(1),
            redial_max: Duration::from_secs(30),
            max_hops: NonZeroU8::new(32).unwrap_or(NonZeroU8::MIN),
            seen_cache: 4096,
            stop_linger: Duration::from_secs(3),
            hash_key: 0,
            minor: crate::wire::peer::PROTO_MINOR,
            news: true,
        }
    }
}

/// Milliseconds, the engine's unit of time (saturating).
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Config {
    /// Checks the values once at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat < Duration::from_millis(50) {
            return Err(format!(
                "heartbeat {} ms: must be at least 50 ms",
                self.heartbeat_ms()
            ));
        }
        if self.redial_min.is_zero() || self.redial_max < self.redial_min {
            return Err("redial delays: need 0 < min <= max".into());
        }
        Ok(())
    }

    pub(crate) fn heartbeat_ms(&self) -> u64 {
        ms(self.heartbeat)
    }

    /// 0 for never.
    pub(crate) fn forget_after_ms(&self) -> u64 {
        self.forget_after.map_or(0, ms)
    }

    pub(crate) fn announce_debounce_ms(&self) -> u64 {
        ms(self.announce_debounce)
    }

    pub(crate) fn route_debounce_ms(&self) -> u64 {
        ms(self.route_debounce)
    }

    pub(crate) fn refresh_ms(&self) -> u64 {
        ms(self.refresh)
    }

    pub(crate) fn persist_debounce_ms(&self) -> u64 {
        ms(self.persist_debounce)
    }

    pub(crate) fn handshake_timeout_ms(&self) -> u64 {
        ms(self.handshake_timeout)
    }

    pub(crate) fn redial_min_ms(&self) -> u64 {
        ms(self.redial_min)
    }

    pub(crate) fn redial_max_ms(&self) -> u64 {
        ms(self.redial_max)
    }

    pub(crate) fn stop_linger_ms(&self) -> u64 {
        ms(self.stop_linger)
    }
}
