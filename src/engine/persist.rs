//! When the snapshot is saved: soon after a change, seldom in a burst.
//!
//! Why: a save costs the whole table to build and compare, and while 500
//! daemons formed a network, saving once a second was still a quarter of
//! their CPU (four times a second left them too busy to keep their links'
//! heartbeats). A crash loses at most the gap's changes, which the network
//! hands back at the next link.

use super::{Action, Engine};

/// The shortest time between two snapshots, ms, and the longest it grows
/// to while changes keep coming (see [`Engine::schedule_persist`]).
pub(super) const PERSIST_GAP_MS: u64 = 1000;
const PERSIST_GAP_MAX_MS: u64 = 8000;

impl Engine {
    /// Asks for a save when it is due (see the module doc): after the
    /// debounce, and no sooner than the gap after the last save.
    pub(super) fn schedule_persist(&mut self) {
        if self.persist_at.is_none() {
            // After a quiet spell, the debounce; in a burst (a network
            // forming, a hub's containers starting at once), a gap after
            // the last save that doubles while the changes keep coming, up
            // to 8 s.
            let since = self.now.ms().saturating_sub(self.persisted_ms);
            self.persist_gap_ms = if since >= 2 * self.persist_gap_ms {
                PERSIST_GAP_MS
            } else {
                (2 * self.persist_gap_ms).min(PERSIST_GAP_MAX_MS)
            };
            let at = (self.now.ms() + self.cfg.persist_debounce_ms())
                .max(self.persisted_ms + self.persist_gap_ms);
            self.persist_at = Some(at);
        }
    }

    /// Asks for the snapshot to be written now.
    pub(super) fn persist(&mut self) {
        self.persist_at = None;
        self.persisted_ms = self.now.ms();
        self.actions.push(Action::Persist);
    }
}
