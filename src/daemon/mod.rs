//! Daemon: the tokio shell around the engine. This file wires the rooms
//! together; each has one job:
//!
//! - [`settings`]: the flags, checked into [`settings::Settings`];
//! - [`detach`]: `-d`, starting the daemon in the background;
//! - [`logfile`]: logging and the log file;
//! - [`state`]: the state dir (identity, snapshot, lock) and the snapshot
//!   writer;
//! - [`accept`]: the peer and control listeners;
//! - [`net`], [`secure`]: a peer link's reader and writer, and its Noise
//!   session;
//! - [`control`]: one control connection;
//! - [`driver`]: the one task that owns the engine, told by the others
//!   through [`Input`];
//! - [`hooks`], [`metrics`]: `--on-event` hooks (for the engine's
//!   membership news), `/metrics`.
//!
//! Every task is spawned into one `JoinSet` that the driver owns, and
//! watches one stop signal ([`Stop`]); the driver's `shutdown` is the
//! whole story of stopping.

mod accept;
mod control;
mod detach;
mod driver;
pub mod hooks;
mod input;
mod journal;
pub mod logfile;
mod lograte;
pub mod metrics;
mod net;
mod outbox;
pub mod secure;
pub mod settings;
pub mod state;

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use argh::FromArgs;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::engine::Engine;
use driver::{Clock, Driver, Parts};
pub use input::Input;
use settings::{normalise_args, println_or_closed, Args, Settings};
use state::StateDir;

/// Inputs waiting for the driver. Once it is full, every link's reader
/// waits its turn (the queue serves waiting senders in order), so a peer
/// sending as fast as it can is at most this many frames ahead of an
/// honest heartbeat: a few milliseconds of work, not seconds.
const INPUT_QUEUE: usize = 1024;

/// The stop signal every task watches: raised once, when the daemon stops.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Waits until the daemon stops (at once if it has).
    pub async fn wait(&mut self) {
        // An error means the sender is gone: the daemon is stopping too.
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// Why `daustd` did not run, with the exit status that says so; printed
/// once, by [`main`].
#[derive(Debug)]
pub enum Error {
    /// A bad flag or value: exit 2, with where help is.
    Usage(String),
    /// It could not start, or had to stop: exit 1.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(m) | Error::Failed(m) => f.write_str(m),
        }
    }
}

/// Runs `daustd` with the arguments after the program name.
pub fn main(cmd: &str, args: &[String]) -> ExitCode {
    match daustd(cmd, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(e)) => {
            eprintln!("daustd: {e}\ntry '{cmd} --help'");
            ExitCode::from(2)
        }
        Err(Error::Failed(e)) => {
            tracing::error!("{e}");
            eprintln!("daustd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The daemon from its arguments: help, version, detach, or run.
fn daustd(cmd: &str, args: &[String]) -> Result<(), Error> {
    if args.iter().any(|a| a == "-V" || a == "--version") {
        println_or_closed(&format!("daustd {}", crate::VERSION));
        return Ok(());
    }
    let args = normalise_args(args);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = match Args::from_args(&[cmd], &refs) {
        Ok(a) => a,
        Err(e) if e.status.is_ok() => {
            println_or_closed(e.output.trim_end());
            return Ok(());
        }
        Err(e) => {
            // argh says "Unrecognized argument: -x" or "No value provided
            // for option '-k'.": one line in our style.
            let msg = e.output.trim_end().trim_end_matches('.');
            let mut chars = msg.chars();
            let msg: String = chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default();
            return Err(Error::Usage(msg));
        }
    };
    let s = settings::settings(args).map_err(Error::Usage)?;
    if s.args.detach && std::env::var_os(detach::DETACHED_ENV).is_none() {
        return detach::detach(&s).map_err(Error::Failed);
    }
    let _guard = logfile::init_logging(&s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run(s)).map_err(Error::Failed)
}

/// Runs the daemon until it stops: opens the state dir and the sockets,
/// starts the engine, the listeners and the snapshot writer, and hands them
/// to the driver.
async fn run(s: Settings) -> Result<(), String> {
    let mut dir = StateDir::open(&s.state_dir).map_err(|e| e.to_string())?;
    dir.write_pid();
    let id = dir.ident();
    let snapshot = dir.load_snapshot();
    let metrics_listener = match s.metrics {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let listener = TcpListener::bind(s.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", s.bind))?;
    // A socket another daemon answers on is not ours to replace.
    if std::os::unix::net::UnixStream::connect(&s.socket).is_ok() {
        return Err(format!(
            "another daustd answers on the control socket {}: give this one its own --socket",
            s.socket.display()
        ));
    }
    let _ = std::fs::remove_file(&s.socket);
    let ctl = UnixListener::bind(&s.socket)
        .map_err(|e| format!("cannot open the control socket {}: {e}", s.socket.display()))?;
    std::fs::set_permissions(&s.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict the control socket: {e}"))?;
    // Retransmit at least once a heartbeat (200 ms is TCP's least RTO).
    net::RTO_MAX_MS.store(
        s.cfg.heartbeat.as_millis().clamp(200, 120_000) as u32,
        std::sync::atomic::Ordering::Relaxed,
    );
    let clock = Clock::start();
    let mut engine = Engine::new(
        s.cfg.clone(),
        id,
        s.record.clone(),
        clock.now(),
        crate::sys::random_u128() as u64,
        snapshot,
    );
    for k in &s.args.keynode {
        engine.keep_dialling(clock.now(), k);
    }
    tracing::info!(
        name = %s.record.name, id = %id, listen = %s.bind, socket = %s.socket.display(),
        "daustd {} started ({})", crate::VERSION, s.record.kind
    );
    match &s.keys {
        Some(k) => tracing::info!(keys = ?k.fingerprints(), "peer traffic is authenticated and encrypted with the cluster key"),
        None => tracing::warn!(
            "peer traffic is unauthenticated: anyone who can reach {} can read the node table and give commands; set a cluster key with --key-file",
            s.bind
        ),
    }
    let keys = Arc::new(RwLock::new(s.keys.clone().map(Arc::new)));
    let (tx, rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = Stop(stop_rx);
    let next_id = Arc::new(AtomicU64::new(1));
    let mut tasks = JoinSet::new();
    tasks.spawn(accept::peers(
        listener,
        keys.clone(),
        tx.clone(),
        next_id.clone(),
        stop.clone(),
    ));
    tasks.spawn(accept::clients(
        ctl,
        tx.clone(),
        next_id.clone(),
        stop.clone(),
    ));
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %s.metrics.map(|a| a.to_string()).unwrap_or_default(), "serving metrics on /metrics");
        let (serve, mut stop) = (metrics::serve(l, tx.clone()), stop.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = serve => {}
                _ = stop.wait() => {}
            }
        });
    }
    let (snapshots, snap_rx) = watch::channel(None);
    tasks.spawn_blocking(move || state::writer(dir, snap_rx));
    // Sockets are up and requests get queued for the driver: ready.
    crate::sys::notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS=daustd {} listening on {}",
        std::process::id(),
        s.record.name,
        s.bind
    ));
    let (socket, pid) = (s.socket.clone(), s.state_dir.join("daustd.pid"));
    let driver = Driver::new(Parts {
        settings: s,
        engine,
        clock,
        keys,
        tasks,
        stop: stop_tx,
        tx,
        next_id,
        snapshots,
    });
    let result = driver.run(rx).await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid);
    tracing::info!("daustd stopped");
    result
}
