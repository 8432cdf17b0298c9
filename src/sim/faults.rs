//! The faults a simulation injects: crashes, freezes, partitions, stalled
//! paths, clocks set off, lost snapshots, and hostile nodes (frames forged
//! in a node's name, and a node that answers what it receives as a test
//! says).

use super::{end_in, Sim};
use crate::engine::Action;
use crate::wire::peer::PeerMsg;

/// What a hostile node sends back for a frame it receives, on the same
/// link (beside whatever its engine does).
pub type Tap = Box<dyn FnMut(&PeerMsg) -> Vec<PeerMsg>>;

impl Sim {
    /// Kills node `i`: the process dies and its sockets close.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].snapshot = self.nodes[i].engine.take().map(|e| e.snapshot());
        self.nodes[i].frozen = false;
        self.close_all(i);
    }

    /// Freezes node `i` (SIGSTOP): it neither sends nor answers, but its
    /// sockets stay open.
    pub fn freeze(&mut self, i: usize) {
        self.nodes[i].frozen = true;
    }

    /// Cuts every path between the two groups.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                self.cut.insert((*x, *y));
                self.cut.insert((*y, *x));
            }
        }
    }

    /// Holds every frame from `a` to `b` until `us` of simulated time from
    /// now, as TCP does behind a segment lost again and again; `b` sees
    /// the packets sent meanwhile arrive out of order.
    pub fn stall(&mut self, a: usize, b: usize, us: u64) {
        self.stalled.insert((a, b), self.now_us + us);
    }

    /// Sets every frame's one-way delay from now on, µs (a machine under
    /// load, then at rest).
    pub fn set_delay(&mut self, us: u64) {
        self.net.delay_us = us;
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Sets node `i`'s wall clock `skew_ms` off true time (negative: set
    /// back). It takes effect at once, as `date -s` would.
    pub fn set_clock_skew(&mut self, i: usize, skew_ms: i64) {
        self.nodes[i].skew_ms = skew_ms;
    }

    /// Delivers `msg` to node `to` as if node `from` sent it on their
    /// link (a forgery: `from`'s engine never made it). False if there is
    /// no open link between them.
    pub fn inject(&mut self, from: usize, to: usize, msg: PeerMsg) -> bool {
        let link = self.ends.iter().enumerate().find_map(|(k, e)| {
            let e = e.as_ref()?;
            (e.node == from && e.open && e.peer.0 == to).then_some(k as u64)
        });
        let Some(link) = link else {
            return false;
        };
        self.act(from, Action::Send { link, msg });
        true
    }

    /// Makes node `i` hostile: every frame it receives is also shown to
    /// `tap`, and what `tap` returns is sent back on the same link.
    pub fn tap(&mut self, i: usize, tap: Tap) {
        self.taps.insert(i, tap);
    }

    /// The frames a hostile node sends back for one it received.
    pub(super) fn tapped(&mut self, node: usize, link: u64, msg: &PeerMsg) {
        let Some(tap) = self.taps.get_mut(&node) else {
            return;
        };
        let out = tap(msg);
        if !end_in(&self.ends, node, link).is_some_and(|e| e.open) {
            return;
        }
        for msg in out {
            self.act(node, Action::Send { link, msg });
        }
    }

    /// Loses node `i`'s snapshot (a state dir restored without it, or
    /// wiped but for the identity): its next start knows nothing.
    pub fn lose_snapshot(&mut self, i: usize) {
        self.nodes[i].snapshot = None;
    }
}
