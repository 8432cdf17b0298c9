//! Dials: the addresses this node keeps dialling (`-k`, `join`, the
//! snapshot's peers, `remote ADDR`), when to dial them next (backoff with
//! jitter, 1 s doubling to 30 s; about a second while the machine refuses,
//! its daemon away; at once when the node behind it is heard of alive
//! again), and what a failed attempt means.

use super::{Action, Engine, LinkId, Now};
use crate::wire::peer::NodeId;

/// The state of one address this node keeps dialling.
#[derive(Debug)]
pub struct Dial {
    /// Redial it forever (`-k`, `join`, snapshot); else one attempt.
    pub persistent: bool,
    /// Where it stands.
    pub state: DialState,
    /// Current backoff, ms.
    pub backoff_ms: u64,
    /// The node found at this address last time.
    pub peer: Option<NodeId>,
    /// Whether a link to it ever came up.
    pub ever_up: bool,
}

/// Where a [`Dial`] stands.
#[derive(Debug, PartialEq, Eq)]
pub enum DialState {
    /// Dial at this time, ms.
    Due(u64),
    /// A connection attempt is under way.
    Dialling,
    /// Its link is up.
    Up(LinkId),
    /// The node behind it is linked another way (it dialled us).
    Covered,
}

impl Dial {
    /// When it must be dialled, if waiting.
    pub fn due(&self) -> Option<u64> {
        match self.state {
            DialState::Due(t) => Some(t),
            _ => None,
        }
    }
}

/// Why a dial failed, as far as it matters for when to try again.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DialFailure {
    /// The machine answered and refused the connection: it is up, only its
    /// daemon is away (restarting, upgrading). Tried again soon, without
    /// backing off, so links come back within a second of its return.
    Refused,
    /// This machine has no route to the address (no route, or a blackhole
    /// route: a cut, an interface down): the failure is local, and trying
    /// again costs no traffic. Tried again soon, so a link is back within
    /// a second of its route, whatever the backoff was.
    NoRoute,
    /// No answer, a name that does not resolve, a failed handshake:
    /// backed off, doubling.
    Other,
}

/// Normalises a dial address: a bare host gets the default port.
pub fn dial_addr(addr: &str) -> String {
    let (host, port) = super::table::split_addr(addr);
    match port {
        Some(_) => addr.to_string(),
        None if host.contains(':') => format!("[{host}]:{}", crate::DEFAULT_PORT),
        None => format!("{host}:{}", crate::DEFAULT_PORT),
    }
}

impl Engine {
    /// A connection attempt to `addr` failed, for `err` (for the log and a
    /// waiting `remote ADDR`), of kind `kind`.
    pub fn dial_failed(&mut self, now: Now, addr: &str, err: &str, kind: DialFailure) {
        self.enter(now);
        let Some(d) = self.dials.get_mut(addr) else {
            return;
        };
        if d.state != DialState::Dialling {
            return;
        }
        tracing::debug!(%addr, "dial failed: {err}");
        if !d.persistent && !d.ever_up {
            self.dials.remove(addr);
        } else {
            let delay = match kind {
                DialFailure::Refused | DialFailure::NoRoute => self.soon(addr),
                DialFailure::Other => self.backoff(addr),
            };
            if let Some(d) = self.dials.get_mut(addr) {
                d.state = DialState::Due(now.ms() + delay);
            }
        }
        self.dial_resolved(addr, Err(format!("can't connect to {addr}: {err}")));
    }

    /// Nodes heard of alive again (through another path): the addresses
    /// we are backing off from that led to them are dialled at once, not
    /// when the backoff runs out. Evidence beats waiting.
    pub(super) fn redial_now(&mut self, alive: &[NodeId]) {
        if alive.is_empty() || self.stopping.is_some() {
            return;
        }
        let ms = self.now.ms();
        for (addr, d) in self.dials.iter_mut() {
            let waiting = d.due().is_some_and(|t| t > ms);
            if waiting && d.peer.is_some_and(|p| alive.contains(&p)) {
                tracing::debug!(%addr, "its node is alive again elsewhere: redialling now");
                d.state = DialState::Due(ms);
            }
        }
    }

    /// Dials whose time has come.
    pub(super) fn dial_timers(&mut self, ms: u64) {
        if self.stopping.is_some() {
            return;
        }
        for (addr, d) in self.dials.iter_mut() {
            if d.due().is_some_and(|t| ms >= t) {
                d.state = DialState::Dialling;
                self.actions.push(Action::Dial { addr: addr.clone() });
            }
        }
    }

    /// Starts dialling `addr` unless it is already dialled.
    pub(super) fn add_dial(&mut self, addr: &str, persistent: bool) -> String {
        let addr = dial_addr(addr);
        let ms = self.now.ms();
        let min = self.cfg.redial_min_ms();
        let d = self.dials.entry(addr.clone()).or_insert(Dial {
            persistent,
            state: DialState::Due(ms),
            backoff_ms: min,
            peer: None,
            ever_up: false,
        });
        d.persistent |= persistent;
        addr
    }

    /// The delay after a refused connection: the shortest one, with
    /// jitter, and the backoff starts over (the machine is up; its daemon
    /// will be back soon).
    fn soon(&mut self, addr: &str) -> u64 {
        let min = self.cfg.redial_min_ms();
        if let Some(d) = self.dials.get_mut(addr) {
            d.backoff_ms = min;
        }
        self.backoff(addr)
    }

    /// The next redial delay for `addr`, with ±25 % jitter; doubles it.
    fn backoff(&mut self, addr: &str) -> u64 {
        let max = self.cfg.redial_max_ms();
        let jitter = self.rng.unit();
        let Some(d) = self.dials.get_mut(addr) else {
            return max;
        };
        let base = d.backoff_ms;
        d.backoff_ms = (base * 2).min(max);
        ((base as f64) * (0.75 + 0.5 * jitter)) as u64
    }
}
