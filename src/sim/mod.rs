//! Deterministic simulation: many engines wired through an in-memory network
//! with delay, loss and partitions, driven by simulated time and a seeded
//! RNG. The same seed gives the same run, frame for frame.
//!
//! Links behave like TCP: frames on one direction of a link arrive in order;
//! "loss" costs a retransmission delay, not the frame. A partition drops
//! everything between the two sides, so links die by heartbeat timeout as
//! they would on a real network. A crashed process closes its sockets (the
//! peers see the link drop); a frozen one goes silent.
//!
//! Why this file is long: the event loop and the carrying out of every
//! engine action are one loop over one queue. The faults it injects are in
//! `faults`, links (dialling, their ends, closing) in `links`, the
//! network's conditions and counters in `net`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::engine::rng::Rng;
use crate::engine::{Action, Config, DialFailure, Engine, LinkId, LinkInfo, Now, Snapshot};
use crate::wire::ctl::{Reply, Run, Status};
use crate::wire::peer::{NodeId, NodeRecord, PeerMsg};

mod faults;
mod links;
mod net;

pub use faults::Tap;
use links::{end_in, end_mut_in, End};
use net::msg_type;
pub use net::{Counters, NetConfig};

enum Scheduled {
    Deliver {
        node: usize,
        link: LinkId,
        msg: PeerMsg,
    },
    /// A stalled frame's packets reached `node` out of order.
    Packets {
        node: usize,
        link: LinkId,
    },
    LinkUp {
        node: usize,
        link: LinkId,
        info: LinkInfo,
    },
    LinkDown {
        node: usize,
        link: LinkId,
    },
    DialFailed {
        node: usize,
        addr: String,
        kind: DialFailure,
    },
    Wake {
        node: usize,
    },
}

impl Scheduled {
    /// The node it happens to.
    fn node(&self) -> usize {
        match self {
            Scheduled::Deliver { node, .. }
            | Scheduled::LinkUp { node, .. }
            | Scheduled::LinkDown { node, .. }
            | Scheduled::DialFailed { node, .. }
            | Scheduled::Packets { node, .. }
            | Scheduled::Wake { node } => *node,
        }
    }
}

struct Node {
    engine: Option<Engine>,
    id: NodeId,
    addr: String,
    cfg: Config,
    record: NodeRecord,
    keynodes: Vec<String>,
    snapshot: Option<Snapshot>,
    wake_at: u64,
    frozen: bool,
    /// How far this node's wall clock is off, ms (a clock set back is
    /// negative).
    skew_ms: i64,
    /// Its membership news so far, with [`NetConfig::keep_news`].
    news: Vec<crate::wire::ctl::Event>,
}

/// An in-memory network of engines.
pub struct Sim {
    now_us: u64,
    rng: Rng,
    net: NetConfig,
    nodes: Vec<Node>,
    by_addr: HashMap<String, usize>,
    /// Both ends of every link, by link id (ids are never reused).
    ends: Vec<Option<End>>,
    next_link: LinkId,
    /// Events by due time, each time's in the order they were queued
    /// (most frames are due exactly one delay from now, so there are few
    /// distinct times and runs stay cheap at millions of frames).
    queue: BTreeMap<u64, VecDeque<Scheduled>>,
    cut: HashSet<(usize, usize)>,
    /// Lossy paths: frames from a to b are held until the time given (a
    /// segment TCP keeps retransmitting), while b sees packets arrive.
    stalled: HashMap<(usize, usize), u64>,
    replies: HashMap<(usize, u64), Vec<Reply>>,
    next_token: u64,
    /// Hostile nodes' answers to what they receive (see [`Sim::tap`]).
    taps: HashMap<usize, faults::Tap>,
    /// Traffic so far.
    pub counters: Counters,
    /// The actions being carried out, one vector reused for all.
    actions: Vec<Action>,
    /// The time whose events were last put in node order.
    sorted_at: Option<u64>,
}

const WALL_BASE_MS: u64 = 1_700_000_000_000;

impl Sim {
    /// An empty network.
    pub fn new(seed: u64, net: NetConfig) -> Self {
        Sim {
            now_us: 1_000_000,
            rng: Rng::new(seed),
            net,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            ends: Vec::new(),
            next_link: 1,
            queue: BTreeMap::new(),
            cut: HashSet::new(),
            stalled: HashMap::new(),
            replies: HashMap::new(),
            next_token: 1,
            taps: HashMap::new(),
            counters: Counters::default(),
            actions: Vec::new(),
            sorted_at: None,
        }
    }

    /// Simulated time, µs.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The time as node `i` sees it: its wall clock may be off.
    fn now(&self, i: usize) -> Now {
        let wall = WALL_BASE_MS + self.now_us / 1000;
        Now {
            mono_us: self.now_us,
            wall_ms: wall.saturating_add_signed(self.nodes[i].skew_ms),
        }
    }

    /// Node `i`'s wall clock, ms since the epoch.
    pub fn wall_ms(&self, i: usize) -> u64 {
        self.now(i).wall_ms
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> String {
        self.nodes[i].addr.clone()
    }

    /// The id of node `i`.
    pub fn id(&self, i: usize) -> NodeId {
        self.nodes[i].id
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The engine of node `i`, if it runs.
    pub fn engine(&self, i: usize) -> Option<&Engine> {
        self.nodes[i].engine.as_ref()
    }

    /// Whether node `i` runs (and is not frozen).
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].engine.is_some() && !self.nodes[i].frozen
    }

    /// Adds and starts a node that dials `keynodes` (node indexes).
    pub fn add_node(&mut self, cfg: Config, keynodes: &[usize]) -> usize {
        let i = self.nodes.len();
        let addr = format!("sim-{i}:4040");
        let id = NodeId(((self.rng.next_u64() as u128) << 64) | self.rng.next_u64() as u128);
        let record = NodeRecord {
            name: format!("n{i:05}"),
            internal_ip: Some(format!("sim-{i}")),
            addrs: Vec::new(),
            public_ip: None,
            port: 4040,
            kind: "host".into(),
            tags: Default::default(),
            version: crate::VERSION.into(),
            os: "sim".into(),
            started_ms: 0,
            deadend: cfg.deadend,
        };
        let keynodes = keynodes
            .iter()
            .map(|k| self.nodes[*k].addr.clone())
            .collect();
        self.by_addr.insert(addr.clone(), i);
        self.nodes.push(Node {
            engine: None,
            id,
            addr,
            cfg,
            record,
            keynodes,
            snapshot: None,
            wake_at: u64::MAX,
            frozen: false,
            skew_ms: 0,
            news: Vec::new(),
        });
        self.start(i);
        i
    }

    /// Starts (or restarts) node `i` from its last snapshot.
    pub fn start(&mut self, i: usize) {
        let now = self.now(i);
        let n = &mut self.nodes[i];
        let mut record = n.record.clone();
        record.started_ms = now.wall_ms;
        let seed = self.rng.next_u64();
        let mut cfg = n.cfg.clone();
        cfg.news &= self.net.keep_news;
        let mut e = Engine::new(cfg, n.id, record, now, seed, n.snapshot.clone());
        for k in n.keynodes.clone() {
            e.keep_dialling(now, &k);
        }
        n.engine = Some(e);
        n.frozen = false;
        n.wake_at = u64::MAX;
        self.after_input(i);
    }

    /// Sends a control request to node `i`; read the answer with
    /// [`Sim::replies`].
    pub fn request(&mut self, i: usize, req: Run) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let now = self.now(i);
        if let Some(e) = self.nodes[i].engine.as_mut() {
            e.request(now, token, req);
        }
        self.after_input(i);
        token
    }

    /// The membership news node `i` told so far (across its restarts), with
    /// [`NetConfig::keep_news`].
    pub fn news(&self, i: usize) -> &[crate::wire::ctl::Event] {
        &self.nodes[i].news
    }

    /// The reply frames node `i` sent for `token` so far.
    pub fn replies(&self, i: usize, token: u64) -> &[Reply] {
        self.replies.get(&(i, token)).map_or(&[], |v| v.as_slice())
    }

    /// Runs the network for `us` microseconds of simulated time.
    pub fn run_for(&mut self, us: u64) {
        let end = self.now_us + us;
        self.run_until(|_| false, end);
    }

    /// Runs until `done` holds (checked after each event) or `limit_us` of
    /// simulated time passed. Returns the simulated time it took, or None.
    pub fn run_until_true(&mut self, limit_us: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.now_us;
        if done(self) {
            return Some(0);
        }
        let end = self.now_us + limit_us;
        self.run_until(done, end).then(|| self.now_us - start)
    }

    /// Runs events up to `end`. `done` is checked whenever simulated time
    /// is about to move on, at most once per simulated millisecond: often
    /// enough to time what happens, rarely enough to stay cheap.
    fn run_until(&mut self, done: impl Fn(&Sim) -> bool, end: u64) -> bool {
        let mut checked_ms = self.now_us / 1000;
        while let Some(&t) = self.queue.keys().next() {
            if t > end {
                break;
            }
            if t / 1000 > checked_ms {
                checked_ms = t / 1000;
                if done(self) {
                    return true;
                }
            }
            let Some(mut due) = self.queue.first_entry() else {
                break;
            };
            if self.sorted_at != Some(t) {
                // One node's events of one moment together (each node's
                // in the order they were queued): a flood reaches a node
                // on many links at once, and taken in a row its table
                // stays in the cache. At 10,000 nodes it was evicted
                // between any two of its frames.
                self.sorted_at = Some(t);
                due.get_mut().make_contiguous().sort_by_key(Scheduled::node);
            }
            let ev = due.get_mut().pop_front();
            if due.get().is_empty() {
                due.remove();
            }
            self.now_us = self.now_us.max(t);
            if let Some(ev) = ev {
                self.handle(ev);
            }
        }
        if done(self) {
            return true;
        }
        self.now_us = self.now_us.max(end);
        false
    }

    fn push(&mut self, at: u64, ev: Scheduled) {
        self.queue.entry(at).or_default().push_back(ev);
    }

    fn handle(&mut self, ev: Scheduled) {
        let node = ev.node();
        let now = self.now(node);
        if self.nodes[node].frozen {
            // A frozen process reads nothing; keep its events for later? A
            // SIGSTOPped daemon in tests never thaws, so drop them.
            return;
        }
        let Some(e) = self.nodes[node].engine.as_mut() else {
            return;
        };
        match ev {
            Scheduled::Packets { link, .. } => {
                if end_in(&self.ends, node, link).is_some_and(|x| x.open) {
                    e.packets_arrive(now, link);
                }
            }
            Scheduled::Deliver { link, msg, .. } => {
                if end_in(&self.ends, node, link).is_some_and(|x| x.open) {
                    if self.taps.contains_key(&node) {
                        self.tapped(node, link, &msg);
                    }
                    if let Some(e) = self.nodes[node].engine.as_mut() {
                        e.frame(now, link, msg);
                    }
                }
            }
            Scheduled::LinkUp { link, info, .. } => e.link_up(now, link, info),
            Scheduled::LinkDown { link, .. } => {
                if let Some(end) = end_mut_in(&mut self.ends, node, link) {
                    end.open = false;
                }
                e.link_down(now, link, "connection closed by peer");
            }
            Scheduled::DialFailed { addr, kind, .. } => {
                let err = match kind {
                    DialFailure::Refused => "connection refused",
                    DialFailure::NoRoute => "network is unreachable",
                    DialFailure::Other => "no answer",
                };
                e.dial_failed(now, &addr, err, kind)
            }
            Scheduled::Wake { .. } => {
                if self.nodes[node].wake_at > self.now_us {
                    return; // stale wake-up
                }
                self.nodes[node].wake_at = u64::MAX;
                if let Some(e) = self.nodes[node].engine.as_mut() {
                    e.tick(now);
                }
            }
        }
        self.after_input(node);
    }

    /// Carries out the engine's actions and schedules its next wake-up.
    fn after_input(&mut self, i: usize) {
        let Some(e) = self.nodes[i].engine.as_mut() else {
            return;
        };
        let mut actions = std::mem::take(&mut self.actions);
        e.drain_actions(&mut actions);
        let wake = e.next_wakeup().max(self.now_us);
        for a in actions.drain(..) {
            self.act(i, a);
        }
        self.actions = actions;
        let Some(e) = self.nodes[i].engine.as_ref() else {
            return;
        };
        let wake = wake.min(e.next_wakeup().max(self.now_us));
        if wake < self.nodes[i].wake_at {
            self.nodes[i].wake_at = wake;
            self.push(wake, Scheduled::Wake { node: i });
        }
    }

    fn delay(&mut self) -> u64 {
        let mut d = self.net.delay_us;
        if self.net.jitter_us > 0 {
            d += self.rng.below(self.net.jitter_us);
        }
        if self.net.loss > 0.0 && self.rng.unit() < self.net.loss {
            d += self.net.rto_us;
        }
        d
    }

    fn act(&mut self, i: usize, a: Action) {
        match a {
            Action::Send { link, msg } => {
                self.counters.frames += 1;
                *self.counters.by_type.entry(msg_type(&msg)).or_default() += 1;
                let Some(end) = end_in(&self.ends, i, link) else {
                    return;
                };
                let ((j, lj), open, last) = (end.peer, end.open, end.last_us);
                if self.net.count_bytes {
                    let b = crate::wire::encode(&msg).map_or(0, |b| b.len() as u64);
                    self.counters.count(i, j, msg_type(&msg), b);
                }
                if !open || self.cut.contains(&(i, j)) {
                    return;
                }
                let arrive = self.now_us + self.delay();
                let mut at = arrive.max(last);
                if let Some(&until) = self.stalled.get(&(i, j)) {
                    if arrive < until {
                        // Its packets get there; TCP holds them back.
                        self.push(arrive, Scheduled::Packets { node: j, link: lj });
                        at = at.max(until);
                    }
                }
                if let Some(end) = end_mut_in(&mut self.ends, i, link) {
                    end.last_us = at;
                }
                self.push(
                    at,
                    Scheduled::Deliver {
                        node: j,
                        link: lj,
                        msg,
                    },
                );
            }
            Action::Close { link, .. } => self.close_end(i, link),
            Action::Dial { addr } => self.dial(i, addr),
            Action::Reply { token, reply } => {
                self.replies.entry((i, token)).or_default().push(reply)
            }
            // Snapshots are taken when a node crashes or exits: as if every
            // write asked for had landed.
            Action::Persist => {}
            Action::News(ev) => {
                if self.net.keep_news {
                    self.nodes[i].news.push(*ev);
                }
            }
            Action::NodeChanged(_) | Action::NodeRemoved(_) => {}
            Action::Exit => {
                self.nodes[i].snapshot = self.nodes[i].engine.take().map(|e| e.snapshot());
                self.close_all(i);
            }
        }
    }

    /// Whether every running node holds the same versions of the same nodes
    /// and sees every running node alive. Checked often on tables of
    /// thousands of nodes, so it compares fingerprints and alive counts:
    /// O(N) for N engines, plus a lookup per engine for each node down.
    pub fn converged(&self) -> bool {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.is_up(*i)).collect();
        let down: Vec<NodeId> = (0..self.nodes.len())
            .filter(|i| !self.is_up(*i))
            .map(|i| self.nodes[i].id)
            .collect();
        let Some(first) = up.first().and_then(|i| self.engine(*i)) else {
            return true;
        };
        let (len, sum) = (first.table().len(), first.table().fingerprint());
        up.iter().all(|i| {
            self.engine(*i).is_some_and(|e| {
                let t = e.table();
                t.len() == len
                    && t.fingerprint() == sum
                    && t.alive_count()
                        == up.len()
                            + down
                                .iter()
                                .filter(|id| t.get(id).is_some_and(|x| x.status == Status::Alive))
                                .count()
            })
        })
    }

    /// The status node `i` holds for node `j`, if it knows it.
    pub fn status(&self, i: usize, j: usize) -> Option<Status> {
        let e = self.engine(i)?;
        e.table().get(&self.nodes[j].id).map(|x| x.status)
    }
}
