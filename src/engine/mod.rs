//! Engine: the whole protocol as one pure state machine.
//!
//! The engine never touches sockets, files, the async runtime or the clock. The daemon
//! (or a simulation) feeds it inputs, each a method taking the current time:
//! [`Engine::link_up`], [`Engine::frame`], [`Engine::link_down`],
//! [`Engine::dial_failed`], [`Engine::request`], [`Engine::tick`]. After each
//! input the caller drains [`Engine::take_actions`] and carries them out in
//! order, and sleeps until [`Engine::next_wakeup`] at the latest.
//!
//! What it does: handshakes, heartbeats with RTT, node announcements with
//! `(incarnation, seq)` versions flooded with dedup, digest sync on link up,
//! reachability and next hops from the agreed graph, statuses with last-seen
//! times, forgetting, redialling with backoff, and routing commands to one
//! node or flooding them to all.

mod announce;
mod commands;
pub mod config;
pub mod delta;
mod dials;
mod forget;
mod gather;
pub mod idmap;
pub mod limits;
mod links;
mod news;
mod pace;
mod persist;
pub mod rng;
mod run;
mod snapshot;
mod sync;
pub mod table;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::wire::ctl::{Reply, Status};
use crate::wire::peer::{NodeId, NodeRecord, PeerMsg, Version};

pub use config::Config;
pub use dials::DialFailure;
use idmap::IdMap;
use rng::Rng;

use commands::first_mid;
pub use links::LinkInfo;
pub use snapshot::{SnapNode, Snapshot};
use table::Table;

/// The daemon's handle for one TCP connection.
pub type LinkId = u64;
/// The daemon's handle for one control-socket request.
pub type Token = u64;

/// The current time, as the engine sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Now {
    /// Monotonic time in µs (any origin): timers and RTTs.
    pub mono_us: u64,
    /// Wall clock in ms since the epoch: last-seen times and incarnations.
    pub wall_ms: u64,
}

impl Now {
    fn ms(self) -> u64 {
        self.mono_us / 1000
    }
}

/// Something the engine wants done, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a message on a link; a link whose queue is full is too slow
    /// and is reported down ([`Engine::link_down`]).
    Send {
        /// Where: a link the engine knows as up.
        link: LinkId,
        /// What, in order after the messages sent on it before.
        msg: PeerMsg,
    },
    /// Close a link; the engine has already forgotten it.
    Close {
        /// Which; frames already queued on it still leave.
        link: LinkId,
        /// Why, for the log.
        reason: String,
    },
    /// Open a TCP connection to `addr` and report [`Engine::link_up`] with
    /// `dialled: Some(addr)` or [`Engine::dial_failed`].
    Dial {
        /// `host:port` or `gateway[:port]`.
        addr: String,
    },
    /// Send a frame to a control client; `Done` and `Error` are the last.
    Reply {
        /// The request it answers (the caller's handle from
        /// [`Engine::request`]).
        token: Token,
        /// The frame to send on.
        reply: Reply,
    },
    /// Write [`Engine::snapshot`] to the state dir.
    Persist,
    /// Membership news for `daust events` and hooks (see [`news`]).
    News(Box<crate::wire::ctl::Event>),
    /// A node's entry changed (announcement, status or place in the tree).
    NodeChanged(NodeId),
    /// A node was dropped from the table.
    NodeRemoved(NodeId),
    /// Flush every link and exit: the node has left.
    Exit,
}

/// The protocol state machine of one node.
pub struct Engine {
    cfg: Config,
    me: NodeId,
    record: NodeRecord,
    version: Version,
    left: bool,
    started: Now,
    table: Table,
    links: BTreeMap<LinkId, links::Link>,
    dials: BTreeMap<String, dials::Dial>,
    pending: HashMap<u64, gather::Pending>,
    parked: Vec<commands::Parked>,
    /// The id of our next command. Peers remember `(origin, id)` of the
    /// flooded commands they have seen, across our restarts: counting from
    /// 1 again would make them drop our first commands as repeats. It
    /// starts at a random point instead (see [`first_mid`]).
    next_mid: u64,
    seen: HashSet<(NodeId, u64)>,
    seen_order: VecDeque<(NodeId, u64)>,
    forgotten: forget::Tombstones,
    /// Forgets received for nodes alive here: applied if they turn out
    /// unreachable at that version.
    contested: IdMap<Version>,
    rng: Rng,
    announce_at: Option<u64>,
    /// When we last announced, ms (for the leading-edge debounce).
    announced_ms: u64,
    /// When routes were last recomputed, ms.
    routed_ms: u64,
    /// Recompute routes at this time, ms (debounced after a change).
    routes_at: Option<u64>,
    persist_at: Option<u64>,
    /// When the snapshot was last asked for, ms.
    persisted_ms: u64,
    /// The time the next snapshot waits after the last one, ms: doubles
    /// while changes keep coming, back to the shortest after a quiet spell.
    persist_gap_ms: u64,
    refresh_at: u64,
    housekeep_at: u64,
    stopping: Option<run::Stopping>,
    actions: Vec<Action>,
    now: Now,
    /// The earliest of the links' deadlines, once looked up, until
    /// something could bring one forward (see [`Engine::enter`]).
    links_due: std::cell::Cell<Option<u64>>,
    /// Messages passed to every link (for metrics).
    floods: u64,
    /// What membership news was told.
    news: news::News,
    /// Each node's announcements taken in at a pace.
    pace: pace::Pace,
    /// Nodes dropped to make room in a full table (see
    /// [`limits::EVICT_RATE`]).
    evictions: limits::Bucket,
    /// Nodes whose whole announcement was asked for (see [`delta`]).
    wanted: IdMap<delta::Wanted>,
    /// The version of our own announcement last flooded: a change is made
    /// only from it.
    flooded_own: Option<Version>,
}

impl Engine {
    /// A node with identity `me` describing itself by `record`, starting at
    /// `now`, with the `snapshot` of its last run if any. `seed` feeds the
    /// redial jitter.
    pub fn new(
        cfg: Config,
        me: NodeId,
        mut record: NodeRecord,
        now: Now,
        seed: u64,
        snapshot: Option<Snapshot>,
    ) -> Self {
        record.deadend = cfg.deadend;
        let snap = snapshot.unwrap_or_default();
        let inc = now.wall_ms.max(snap.incarnation.saturating_add(1));
        let hash_key = cfg.hash_key;
        let mut table = Table::new(hash_key);
        let mut parents = Vec::new();
        let mut forgotten = forget::Tombstones::new(hash_key);
        let made: IdMap<u64> = {
            let mut m = idmap::new_map(hash_key);
            m.extend(snap.forgotten_ms.iter().copied());
            m
        };
        for (id, v) in snap.forgotten.iter().take(limits::MAX_NODES) {
            // From an older snapshot without times: from now.
            let at = made.get(id).copied().unwrap_or(now.wall_ms);
            forgotten.insert(*id, *v, at);
        }
        // News starts from what the snapshot said (each entry's `told`);
        // nodes it held get a grace to come back before their loss is news.
        let after_restart = snap.nodes.iter().any(|n| n.na.id != me);
        let grace_until = now.ms() + 3 * cfg.heartbeat_ms() + 1000;
        let news = news::News::new(hash_key, after_restart, grace_until);
        for n in snap.nodes {
            if n.na.id == me || forgotten.get(&n.na.id).is_some_and(|v| *v >= n.na.version) {
                continue;
            }
            let last = if n.status == Status::Alive {
                snap.saved_ms
            } else {
                n.last_seen_ms
            };
            let id = n.na.id;
            table.offer(n.na, last);
            table.set_last_seen(&id, last);
            table.mark_known(&id);
            table.set_told(&id, Some(n.status));
            parents.push((id, n.parent));
        }
        let mut rng = Rng::new(seed);
        let next_mid = first_mid(&mut rng, inc);
        let mut e = Engine {
            refresh_at: now.ms() + cfg.refresh_ms(),
            housekeep_at: now.ms() + 10_000,
            cfg,
            me,
            record,
            version: Version { inc, seq: 0 },
            left: false,
            started: now,
            table,
            links: BTreeMap::new(),
            dials: BTreeMap::new(),
            pending: HashMap::new(),
            parked: Vec::new(),
            next_mid,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            forgotten,
            contested: idmap::new_map(hash_key),
            rng,
            announce_at: None,
            announced_ms: 0,
            routed_ms: 0,
            routes_at: Some(0),
            persist_at: None,
            persisted_ms: 0,
            persist_gap_ms: persist::PERSIST_GAP_MS,
            stopping: None,
            actions: Vec::new(),
            now,
            links_due: std::cell::Cell::new(None),
            floods: 0,
            news,
            pace: pace::Pace::new(hash_key),
            evictions: limits::Bucket::default(),
            wanted: idmap::new_map(hash_key),
            flooded_own: None,
        };
        let na = e.own_na();
        e.table.offer(Arc::new(na), now.wall_ms);
        for (id, parent) in parents {
            e.table.set_parent(&id, parent);
        }
        for p in snap.peers {
            e.add_dial(&p, true);
        }
        e.refresh_routes();
        e
    }

    /// How many messages this node has flooded (its own and forwarded).
    pub fn floods(&self) -> u64 {
        self.floods
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.version.inc
    }

    /// The node table, for views and tests.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Whether the node has said goodbye and is on its way out.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_some()
    }

    /// The cluster keys changed (rotation).
    pub fn set_key_ids(&mut self, ids: Vec<String>) {
        self.cfg.authenticated = !ids.is_empty();
        self.cfg.key_ids = ids;
    }

    /// One node as the table shows it now.
    pub fn view(&self, id: &NodeId) -> Option<crate::wire::ctl::NodeView> {
        self.table
            .get(id)
            .map(|e| self.table.view(e, self.now.wall_ms))
    }

    /// The whole table, this node first, then by name.
    pub fn views(&self) -> Vec<crate::wire::ctl::NodeView> {
        self.table.views(self.me, self.now.wall_ms)
    }

    /// Whether actions are waiting to be taken.
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// Takes the actions produced so far.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Moves the actions to the end of `out`, keeping a small vector's
    /// room (a simulation calls this once per frame; a flood's is freed).
    pub fn drain_actions(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
        if self.actions.capacity() > 16 {
            self.actions = Vec::new();
        }
    }

    /// Dials `addr` now and keeps redialling it whenever its link is lost
    /// (`-k`, `join`, addresses from the snapshot).
    pub fn keep_dialling(&mut self, now: Now, addr: &str) {
        self.enter(now);
        self.add_dial(addr, true);
        self.tick(now);
    }

    /// Time passes: heartbeats, timeouts, redials, debounced announcements,
    /// deadlines. Call it at [`Engine::next_wakeup`] at the latest.
    pub fn tick(&mut self, now: Now) {
        self.enter(now);
        let ms = now.ms();
        self.link_timers(ms);
        self.dial_timers(ms);
        if self.announce_at.is_some_and(|t| ms >= t) || ms >= self.refresh_at {
            self.announce();
        }
        if self.routes_at.is_some_and(|t| ms >= t) {
            self.refresh_routes();
        }
        self.pending_timers(ms);
        self.news_grace(ms);
        self.pace_timers(ms);
        self.wanted_timers(ms);
        if ms >= self.housekeep_at {
            self.housekeep_at = ms + 10_000;
            self.forget_old();
            if self.forgotten.expire(now.wall_ms) > 0 {
                self.schedule_persist();
            }
        }
        if self.persist_at.is_some_and(|t| ms >= t) {
            self.persist();
        }
        self.check_stop();
    }

    /// The monotonic time in µs by which [`Engine::tick`] must run next.
    pub fn next_wakeup(&self) -> u64 {
        let mut t = self.refresh_at.min(self.housekeep_at);
        let mut consider = |x: Option<u64>| {
            if let Some(x) = x {
                t = t.min(x);
            }
        };
        consider(self.announce_at);
        consider(self.persist_at);
        consider(self.routes_at);
        consider(self.news.grace_until());
        consider(self.pace.due());
        consider(self.wanted_due());
        consider(Some(self.links_wake()));
        for d in self.dials.values() {
            consider(d.due());
        }
        for p in self.pending.values() {
            consider(Some(p.deadline_ms));
        }
        consider(
            self.stopping
                .as_ref()
                .filter(|s| !s.exited)
                .map(|s| s.deadline_ms),
        );
        t.saturating_mul(1000)
    }

    /// Every entry point starts here: the time, and the links' deadlines
    /// to be looked up again (whatever comes may bring one forward; only
    /// a ping cannot, see [`Engine::frame`]).
    fn enter(&mut self, now: Now) {
        self.now = now;
        self.links_due.set(None);
    }

    /// The daemon is shutting down (SIGTERM): announce `left` and exit.
    pub fn shutdown(&mut self, now: Now) {
        self.enter(now);
        self.begin_stop(None, false);
        self.check_stop();
    }

    /// The graph changed: recompute routes after the debounce, or sooner
    /// when something needs them.
    fn dirty_routes(&mut self) {
        if self.routes_at.is_none() {
            let at = self.routed_ms + self.cfg.route_debounce_ms();
            self.routes_at = Some(at.max(self.now.ms()));
        }
    }

    /// Recomputes routes if anything changed, and reports status changes.
    fn refresh_routes(&mut self) {
        if self.routes_at.take().is_none() {
            return;
        }
        self.routed_ms = self.now.ms();
        let peers: Vec<(NodeId, Option<u32>)> = self
            .links
            .values()
            .filter(|l| l.active)
            .filter_map(|l| Some((l.peer?, l.rtt_us)))
            .collect();
        let (changes, moved) = self.table.recompute(self.me, &peers, self.now.wall_ms);
        let back: Vec<NodeId> = changes
            .iter()
            .filter(|c| c.to == Status::Alive && c.id != self.me)
            .map(|c| c.id)
            .collect();
        self.redial_now(&back);
        for c in changes {
            // Looked up only for a line written: N² changes as a network forms.
            let name = || self.table.get(&c.id).map_or("", |e| &e.na.record.name);
            if c.id != self.me && c.first {
                tracing::info!(node = %name(), id = %c.id.short(), "new node, {}", c.to.as_str());
            } else if c.id != self.me
                && (c.from == Status::Alive || c.to == Status::Alive || c.to == Status::Left)
            {
                tracing::info!(node = %name(), id = %c.id.short(), "{} -> {}", c.from.as_str(), c.to.as_str());
            }
            self.news_status(c.id, c.to);
            self.actions.push(Action::NodeChanged(c.id));
            self.schedule_persist();
        }
        for id in moved {
            self.actions.push(Action::NodeChanged(id));
        }
        let settled: Vec<(NodeId, Version)> = self
            .contested
            .iter()
            .filter_map(|(id, v)| {
                let e = self.table.get(id)?;
                (e.status != Status::Alive && e.na.version <= *v).then_some((*id, *v))
            })
            .collect();
        for (id, v) in settled {
            tracing::info!(node = %id.short(), "forgotten: it was forgotten elsewhere and is not alive here either");
            self.forget(id, v, None);
        }
        self.contested
            .retain(|id, v| self.table.get(id).is_some_and(|e| e.na.version <= *v));
        self.check_stop();
    }
}

#[cfg(test)]
mod tests;
