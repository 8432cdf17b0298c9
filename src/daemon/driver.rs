//! The driver: the one task that owns the engine. It feeds the engine
//! every input with the time ([`Driver::on_input`]), carries out what the
//! engine asks ([`Driver::carry_out`]), sends changes to watchers and
//! events to subscribers and hooks ([`Driver::flush_watchers`]), and, when
//! the engine says it has left, stops the daemon ([`Driver::shutdown`]).
//! Every other task only moves bytes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant as TokioInstant;

use super::accept::KeysNow;
use super::net::{self, LinkHandle};
use super::outbox::{Full, LINK_QUEUE};
use super::settings::{load_keys, Settings};
use super::{hooks, logfile, lograte, metrics, Input, Stop};
use crate::engine::{Action, Engine, LinkId, Now, Snapshot, Token};
use crate::time::wall_ms;
use crate::wire::ctl::{Event, Reply, Request};
use crate::wire::peer::NodeId;

/// Changes go to watchers (`daust top`) at most this often.
const WATCH_BATCH: Duration = Duration::from_millis(10);

/// How often links are looked at for frames waiting in the input queue.
const WAITING_CHECK: Duration = Duration::from_millis(100);

/// How long shutdown waits for peers to close their side after ours.
const LINGER: Duration = Duration::from_millis(500);

/// How long shutdown waits for queued frames and answers to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The driver's clock: monotonic µs since start for the engine's timers,
/// and the wall clock for last-seen times.
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// The time as the engine takes it.
    pub fn now(&self) -> Now {
        Now {
            mono_us: self.0.elapsed().as_micros() as u64,
            wall_ms: wall_ms(),
        }
    }

    /// The instant of an engine time (monotonic µs).
    fn instant(&self, mono_us: u64) -> TokioInstant {
        TokioInstant::from_std(self.0 + Duration::from_micros(mono_us))
    }
}

/// What the driver is given at start.
pub struct Parts {
    /// The checked settings.
    pub settings: Settings,
    /// The engine, with its first dials queued.
    pub engine: Engine,
    /// Its clock.
    pub clock: Clock,
    /// The cluster keys as they stand.
    pub keys: KeysNow,
    /// Every task the daemon spawned; the driver adds dials.
    pub tasks: JoinSet<()>,
    /// Raises the stop signal every task watches.
    pub stop: watch::Sender<bool>,
    /// Where inputs come from (dials report here).
    pub tx: mpsc::Sender<Input>,
    /// Ids for links and control connections.
    pub next_id: Arc<AtomicU64>,
    /// The snapshot writer's queue.
    pub snapshots: watch::Sender<Option<Arc<Snapshot>>>,
}

/// The task that owns the engine.
pub struct Driver {
    s: Settings,
    engine: Engine,
    clock: Clock,
    keys: KeysNow,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    tx: mpsc::Sender<Input>,
    next_id: Arc<AtomicU64>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    runners: Vec<hooks::Runner>,
    hook_stats: Arc<hooks::HookStats>,
    links: HashMap<LinkId, LinkHandle>,
    /// Clients waiting for the answer to one request.
    clients: HashMap<Token, mpsc::Sender<Reply>>,
    /// `daust top` and other watchers: every change goes to each of them.
    watchers: HashMap<Token, mpsc::Sender<Reply>>,
    /// `daust events` clients.
    event_subs: HashMap<Token, mpsc::Sender<Reply>>,
    /// Changes gathered for watchers and events, sent at most every
    /// [`WATCH_BATCH`]: a burst (a network forming) is one frame, not
    /// thousands.
    changed: BTreeSet<NodeId>,
    removed: BTreeSet<NodeId>,
    flushed: TokioInstant,
    /// When links were last looked at for frames waiting (see
    /// [`Driver::frames_waiting`]).
    waiting_checked: TokioInstant,
    /// Why the daemon stops, for the streams' goodbye.
    stop_reason: String,
    exiting: bool,
}

impl Driver {
    /// A driver over `parts`, with the hooks started.
    pub fn new(p: Parts) -> Driver {
        let hook_stats = Arc::new(hooks::HookStats::default());
        let runners = hooks::start(
            p.settings.hooks.clone(),
            p.settings.hook_timeout,
            hook_stats.clone(),
        );
        Driver {
            s: p.settings,
            engine: p.engine,
            clock: p.clock,
            keys: p.keys,
            tasks: p.tasks,
            stop: p.stop,
            tx: p.tx,
            next_id: p.next_id,
            snapshots: p.snapshots,
            runners,
            hook_stats,
            links: HashMap::new(),
            clients: HashMap::new(),
            watchers: HashMap::new(),
            event_subs: HashMap::new(),
            changed: BTreeSet::new(),
            removed: BTreeSet::new(),
            flushed: TokioInstant::now(),
            waiting_checked: TokioInstant::now(),
            stop_reason: "stop".into(),
            exiting: false,
        }
    }

    /// Runs until the engine has left (a signal, `stop`), then shuts down.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>) -> Result<(), String> {
        let sig = |k| signal(k).map_err(|e| format!("cannot watch signals: {e}"));
        let (mut term, mut int, mut hup) = (
            sig(SignalKind::terminate())?,
            sig(SignalKind::interrupt())?,
            sig(SignalKind::hangup())?,
        );
        while !self.exiting {
            self.flush_watchers();
            let wake = self.next_wake();
            tokio::select! {
                _ = term.recv() => self.on_stop_signal("SIGTERM"),
                _ = int.recv() => self.on_stop_signal("SIGINT"),
                _ = hup.recv() => self.on_hangup(),
                input = rx.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if self.clock.instant(self.engine.next_wakeup()) <= TokioInstant::now() {
                        self.frames_waiting();
                        self.engine.tick(self.clock.now());
                        lograte::report();
                    }
                }
            }
            self.carry_out();
        }
        self.shutdown(rx).await;
        Ok(())
    }

    /// Tells the engine which links have frames waiting for it in the
    /// input queue, before its timers judge their silence: a link is
    /// silent when its peer sends nothing, not when this daemon is behind
    /// (see [`crate::engine::Engine::packets_arrive`]). At most every
    /// [`WAITING_CHECK`]: it looks at every link.
    fn frames_waiting(&mut self) {
        if self.waiting_checked.elapsed() < WAITING_CHECK {
            return;
        }
        self.waiting_checked = TokioInstant::now();
        let now = self.clock.now();
        for (id, h) in &self.links {
            if h.frames_waiting() {
                self.engine.packets_arrive(now, *id);
            }
        }
    }

    /// When the loop must wake next: the engine's timers, the watchers'
    /// batch, or at once with actions pending.
    fn next_wake(&self) -> TokioInstant {
        let mut wake = self.clock.instant(self.engine.next_wakeup());
        if !(self.changed.is_empty() && self.removed.is_empty()) {
            wake = wake.min(self.flushed + WATCH_BATCH);
        }
        if self.engine.has_actions() {
            // Actions from before the loop (the first dials): now.
            wake = TokioInstant::now();
        }
        wake
    }

    fn on_stop_signal(&mut self, name: &str) {
        tracing::info!("{name}");
        self.stop_reason = name.into();
        self.engine.shutdown(self.clock.now());
    }

    /// SIGHUP: reopen the log file and re-read the cluster keys (links up
    /// now keep their sessions; new handshakes use the new keys).
    fn on_hangup(&mut self) {
        if let Some(l) = logfile::LOG.get() {
            l.reopen();
            tracing::info!("SIGHUP: log file reopened");
        }
        match (
            &self.s.args.key_file,
            load_keys(self.s.args.key_file.as_deref()),
        ) {
            (Some(_), Ok(Some(k))) => {
                crate::sys::notify("STATUS=cluster keys re-read");
                tracing::info!(keys = ?k.fingerprints(), "SIGHUP: cluster keys re-read");
                self.engine.set_key_ids(k.fingerprints());
                if let Ok(mut g) = self.keys.write() {
                    *g = Some(Arc::new(k));
                }
            }
            (Some(f), Err(e)) => {
                tracing::error!(file = %f.display(), "SIGHUP: keeping the old keys: {e}")
            }
            _ => tracing::info!("SIGHUP: no key file to re-read"),
        }
    }

    /// Feeds one input to the engine.
    fn on_input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::LinkUp { link, info, handle } => {
                if self.engine.is_stopping() {
                    handle.reader.abort();
                    return;
                }
                self.links.insert(link, handle);
                self.engine.link_up(now, link, info);
            }
            Input::Frame { link, msg, .. } => {
                if let Some(h) = self.links.get_mut(&link) {
                    h.taken += 1;
                }
                self.engine.frame(now, link, msg)
            }
            Input::PacketsArrive { link } => self.engine.packets_arrive(now, link),
            Input::BadFrame { link, err } => {
                metrics::add(&metrics::IO.bad_frames, 1);
                self.engine.bad_frame(now, link, &err)
            }
            Input::LinkDown { link, reason } => {
                self.links.remove(&link);
                self.engine.link_down(now, link, &reason);
            }
            Input::DialFailed { addr, err, kind } => {
                self.engine.dial_failed(now, &addr, &err, kind)
            }
            Input::Ctl { token, req, tx } => match req {
                Request::Run(run) => {
                    self.clients.insert(token, tx);
                    self.engine.request(now, token, run);
                }
                Request::Watch => {
                    // The table now, then every change from the next batch.
                    if tx.try_send(self.engine.table_reply()).is_ok() {
                        tracing::debug!(token, "watcher added");
                        self.watchers.insert(token, tx);
                    }
                }
                Request::Events => {
                    let name = self.s.record.name.clone();
                    if tx.try_send(Reply::Subscribed { name }).is_ok() {
                        self.event_subs.insert(token, tx);
                    }
                }
            },
            Input::Metrics { tx } => {
                let info = self.engine.info();
                let page = metrics::Page {
                    info: &info,
                    floods: self.engine.floods(),
                    hooks: &self.hook_stats,
                };
                let _ = tx.send(metrics::render(&page));
            }
        }
    }

    /// Carries out the engine's actions, until it asks for nothing more (a
    /// stuck link's close makes more).
    fn carry_out(&mut self) {
        loop {
            let actions = self.engine.take_actions();
            if actions.is_empty() {
                return;
            }
            let mut stuck = Vec::new();
            for a in actions {
                if let Some(link) = self.act(a) {
                    stuck.push(link);
                }
            }
            for link in stuck {
                if let Some(h) = self.links.remove(&link) {
                    tracing::warn!(
                        peer = %self.engine.describe(link),
                        "peer too slow: {} frames queued; dropping the link",
                        LINK_QUEUE
                    );
                    h.reader.abort();
                }
                self.engine
                    .link_down(self.clock.now(), link, "peer too slow");
            }
        }
    }

    /// Carries out one action; returns a link whose queue is full.
    fn act(&mut self, a: Action) -> Option<LinkId> {
        match a {
            Action::Send { link, msg } => {
                let h = self.links.get(&link)?;
                // A writer that hit an error takes nothing more; the reader
                // reports the link down after what the peer sent.
                if h.out.push(msg) == Err(Full) {
                    metrics::add(&metrics::IO.dropped, 1);
                    return Some(link);
                }
            }
            Action::Close { link, reason } => {
                if let Some(h) = self.links.remove(&link) {
                    tracing::debug!(link, "closing: {reason}");
                    h.reader.abort();
                    h.out.close();
                }
            }
            Action::Dial { addr } => {
                let link = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let bind = self.s.bind.ip();
                let local = (!bind.is_unspecified()).then_some(bind);
                let keys = self.keys.read().ok().and_then(|g| g.clone());
                let dial = net::dial(addr, local, link, self.tx.clone(), keys);
                let mut stop = Stop(self.stop.subscribe());
                self.tasks.spawn(async move {
                    tokio::select! {
                        _ = dial => {}
                        _ = stop.wait() => {}
                    }
                });
            }
            Action::Reply { token, reply } => {
                let last = matches!(reply, Reply::Done(_) | Reply::Error { .. });
                if let Some(c) = self.clients.get(&token) {
                    let _ = c.try_send(reply);
                }
                if last {
                    self.clients.remove(&token);
                }
            }
            Action::Persist => {
                let _ = self.snapshots.send(Some(Arc::new(self.engine.snapshot())));
            }
            Action::News(ev) => self.tell(&ev),
            // Only watchers want the changed views (a new watcher starts
            // from the whole table); events come from the engine's news.
            Action::NodeChanged(_) | Action::NodeRemoved(_) if self.watchers.is_empty() => {}
            Action::NodeChanged(id) => {
                self.changed.insert(id);
            }
            Action::NodeRemoved(id) => {
                self.changed.remove(&id);
                self.removed.insert(id);
            }
            Action::Exit => self.exiting = true,
        }
        None
    }

    /// Sends the changes gathered since the last batch to watchers.
    fn flush_watchers(&mut self) {
        if (self.changed.is_empty() && self.removed.is_empty())
            || self.flushed.elapsed() < WATCH_BATCH
        {
            return;
        }
        self.flushed = TokioInstant::now();
        let nodes: Vec<_> = std::mem::take(&mut self.changed)
            .iter()
            .filter_map(|id| self.engine.view(id))
            .collect();
        let removed: Vec<_> = std::mem::take(&mut self.removed).into_iter().collect();
        let reply = Reply::Changed { nodes, removed };
        // A watcher that cannot keep up is dropped; it reconnects and
        // starts again from the whole table.
        self.watchers.retain(|token, w| {
            let ok = w.try_send(reply.clone()).is_ok();
            if !ok {
                tracing::debug!(token, "watcher dropped: gone or lagging");
            }
            ok
        });
    }

    /// Hands an event to the hooks and to `daust events` clients; a client
    /// that cannot keep up is dropped (it sees the stream end).
    fn tell(&mut self, ev: &Event) {
        tracing::debug!(node = %ev.node.name, "event: {}", ev.event.as_str());
        hooks::dispatch(&self.runners, ev, &self.hook_stats);
        self.event_subs
            .retain(|_, tx| tx.try_send(Reply::Event(Box::new(ev.clone()))).is_ok());
    }

    /// The engine has left. One story: raise the stop signal (listeners stop
    /// accepting, dials are dropped), close every link after what is queued
    /// on it (the goodbye, answers), end every stream with a goodbye and
    /// every request, let the snapshot writer save the last snapshot, give
    /// all of that [`FLUSH_TIMEOUT`], give peers [`LINGER`] to close their
    /// side (so our close is not a reset that destroys what we sent), then
    /// drop whatever is left.
    async fn shutdown(mut self, mut rx: mpsc::Receiver<Input>) {
        crate::sys::notify("STOPPING=1");
        let _ = self.stop.send(true);
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for (_, h) in self.links.drain() {
            h.out.close();
            writers.push(h.writer);
            readers.push(h.reader);
        }
        // Inputs still coming (frames, late requests) are dropped.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let bye = Reply::Bye {
            reason: self.stop_reason.clone(),
        };
        for (_, w) in self.watchers.drain().chain(self.event_subs.drain()) {
            let _ = w.try_send(bye.clone());
        }
        self.clients.clear();
        drop(self.snapshots);
        drop(self.tx);
        let mut tasks = self.tasks;
        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
            for w in writers {
                let _ = w.await;
            }
            while tasks.join_next().await.is_some() {}
        })
        .await;
        let aborts: Vec<_> = readers.iter().map(|r| r.abort_handle()).collect();
        let _ = tokio::time::timeout(LINGER, async {
            for r in readers {
                let _ = r.await;
            }
        })
        .await;
        for a in aborts {
            a.abort();
        }
        drain.abort();
        if flushed.is_err() {
            tracing::warn!(
                "shutdown: some frames or answers were still queued after {} s",
                FLUSH_TIMEOUT.as_secs()
            );
        }
        tasks.abort_all();
    }
}
