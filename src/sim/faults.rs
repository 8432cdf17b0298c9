//! The faults a simulation injects: crashes, freezes, partitions, stalled
//! paths, clocks set off, lost snapshots.

use super::Sim;

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

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Sets node `i`'s wall clock `skew_ms` off true time (negative: set
    /// back). It takes effect at once, as `date -s` would.
    pub fn set_clock_skew(&mut self, i: usize, skew_ms: i64) {
        self.nodes[i].skew_ms = skew_ms;
    }

    /// Loses node `i`'s snapshot (a state dir restored without it, or
    /// wiped but for the identity): its next start knows nothing.
    pub fn lose_snapshot(&mut self, i: usize) {
        self.nodes[i].snapshot = None;
    }
}
