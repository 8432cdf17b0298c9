//! Engine configuration: every knob with its unit, default and why.

/// Tunables of the protocol. Durations are in milliseconds.
#[derive(Clone, Debug)]
pub struct Config {
    /// Heartbeat interval on every link, ms. A link silent for three
    /// intervals (of the slower side) is dead. Default 1000; down to 100 is
    /// sane on a LAN, each halving doubles the idle traffic.
    pub heartbeat_ms: u64,
    /// Unreachable or left nodes are dropped from the table after this long,
    /// ms; 0 keeps them forever. Default 7 days.
    pub forget_after_ms: u64,
    /// Never forward anything for others (a leaf, e.g. a container).
    pub deadend: bool,
    /// Whether peer links are authenticated; reported by `info`.
    pub authenticated: bool,
    /// Fingerprints of the cluster keys, the initiating one first; reported
    /// by `keys`.
    pub key_ids: Vec<String>,
    /// Debounce before re-announcing after a new link or a record change,
    /// ms: batches bursts (several links coming up at once) into one flood.
    /// A lost link is announced at once. Default 20.
    pub announce_debounce_ms: u64,
    /// Debounce before recomputing routes after the graph changed, ms: a
    /// flood of announcements costs one recomputation. Default 5.
    pub route_debounce_ms: u64,
    /// Safety-net re-announcement, ms, as OSPF does. Default 30 minutes.
    pub refresh_ms: u64,
    /// Debounce before writing the snapshot after a change, ms. Default 250:
    /// a burst of changes is one write, and little is lost to a crash.
    pub persist_debounce_ms: u64,
    /// A link that has not completed its handshake in this long is closed, ms.
    pub handshake_timeout_ms: u64,
    /// First redial delay after a failure, ms; doubles up to `redial_max_ms`.
    pub redial_min_ms: u64,
    /// Longest redial delay, ms.
    pub redial_max_ms: u64,
    /// Hop limit of routed and flooded commands.
    pub max_hops: u8,
    /// Entries in the cache of flooded commands already seen.
    pub seen_cache: usize,
    /// How long a node stopped by `all stop` keeps relaying answers for the
    /// nodes behind it before it exits, ms.
    pub stop_linger_ms: u64,
    /// Key of the hash maps keyed by node id: random in a daemon, so that
    /// a peer cannot choose ids that collide; 0 in a simulation, which
    /// must replay exactly.
    pub hash_key: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_ms: 1000,
            forget_after_ms: 7 * 24 * 3600 * 1000,
            deadend: false,
            authenticated: false,
            key_ids: Vec::new(),
            announce_debounce_ms: 20,
            route_debounce_ms: 5,
            refresh_ms: 30 * 60 * 1000,
            persist_debounce_ms: 250,
            handshake_timeout_ms: 5000,
            redial_min_ms: 1000,
            redial_max_ms: 30_000,
            max_hops: 32,
            seen_cache: 4096,
            stop_linger_ms: 3000,
            hash_key: 0,
        }
    }
}

impl Config {
    /// Checks the values once at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_ms < 50 {
            return Err(format!(
                "heartbeat {} ms: must be at least 50 ms",
                self.heartbeat_ms
            ));
        }
        if self.redial_min_ms == 0 || self.redial_max_ms < self.redial_min_ms {
            return Err("redial delays: need 0 < min <= max".into());
        }
        if self.max_hops == 0 {
            return Err("max hops: must be at least 1".into());
        }
        Ok(())
    }
}
