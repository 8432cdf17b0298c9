//! Daemon: the tokio shell around the engine.
//!
//! One driver task owns the [`Engine`]: it reads [`Input`]s from a bounded
//! channel (new links, frames, control requests, signals), feeds them to the
//! engine with the current time, and carries out the actions it returns.
//! Other tasks only move bytes: one reader and one writer per link, one per
//! control connection, the listeners, and the snapshot writer.

mod control;
pub mod events;
pub mod hooks;
pub mod logfile;
pub mod metrics;
mod net;
pub mod secure;
pub mod state;

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argh::FromArgs;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

use crate::engine::{Action, Config, Engine, LinkId, LinkInfo, Now, Token};
use crate::wire::ctl::{Command, Event, Reply, Request, Target};
use crate::wire::peer::{NodeRecord, PeerMsg};
use crate::wire::FrameError;
use net::{LinkHandle, Outgoing};
use state::StateDir;

/// Inputs waiting for the driver: enough for a burst of frames from
/// hundreds of links without making readers wait.
const INPUT_QUEUE: usize = 8192;

/// Control connections served at once; more wait in the kernel's backlog.
const MAX_CONTROL_CONNS: usize = 256;

/// Peer connections accepted at once (established or handshaking).
const MAX_PEER_CONNS: usize = 1024;

/// Changes go to watchers (`daust top`) at most this often.
const WATCH_BATCH: Duration = Duration::from_millis(10);

/// How long shutdown waits for peers to close their side after ours.
const LINGER: Duration = Duration::from_millis(500);

/// How long shutdown waits for queued frames and replies to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a state dir that refused a write is tried again.
const PERSIST_RETRY: Duration = Duration::from_secs(10);

#[derive(FromArgs, Debug)]
/// daustd: the daust daemon. It phones home to the nodes given with -k,
/// accepts links from others, and keeps a table of every node in the
/// network: name, addresses, place in the tree, last seen. The C
/// original's long names work too: --daemon, --deadend, --keynode,
/// --publicface, --iface, --logfile, --verbose; -h is --help, -V prints
/// the version.
pub struct Args {
    /// detach: run in the background; returns once the daemon answers
    #[argh(switch, short = 'd')]
    pub detach: bool,
    /// deadend: never forward anything for others (a leaf, e.g. a container)
    #[argh(switch, short = 'e')]
    pub deadend: bool,
    /// keynode to phone home to (host[:port], or "gateway" for the default
    /// gateway); repeatable; redialled forever
    #[argh(option, short = 'k', arg_name = "ADDR")]
    pub keynode: Vec<String>,
    /// public address of this node, shown as "public ip"
    #[argh(option, short = 'p', arg_name = "ADDR")]
    pub public: Option<String>,
    /// interface whose address is the internal ip (default: the one holding
    /// the default route, or the --bind address if it is specific)
    #[argh(option, short = 'i', arg_name = "IFACE")]
    pub iface: Option<String>,
    /// log file (default when detached: daustd.log in the state dir);
    /// rotated daily to FILE.YYYY-MM-DD, 7 kept; SIGHUP reopens it
    #[argh(option, short = 'l', arg_name = "FILE")]
    pub log: Option<PathBuf>,
    /// more log output: -v debug, -vv trace
    #[argh(switch, short = 'v')]
    pub verbose: u8,
    /// address to listen on for links (default 0.0.0.0:4040)
    #[argh(
        option,
        default = "String::from(\"0.0.0.0:4040\")",
        arg_name = "ADDR[:PORT]"
    )]
    pub bind: String,
    /// state dir (default $DAUST_STATE_DIR, /var/lib/daust as root, else
    /// ~/.local/state/daust)
    #[argh(option, arg_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// control socket (default daustd.sock in the state dir)
    #[argh(option, arg_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// node name (default: the hostname)
    #[argh(option, arg_name = "NAME")]
    pub name: Option<String>,
    /// tag this node, k=v; repeatable
    #[argh(option, arg_name = "K=V")]
    pub tag: Vec<String>,
    /// heartbeat interval on every link (default 1s); a link silent for
    /// three intervals is dead
    #[argh(option, default = "String::from(\"1s\")", arg_name = "DUR")]
    pub heartbeat: String,
    /// forget unreachable or left nodes after this long (default 7d; 0 =
    /// never)
    #[argh(option, default = "String::from(\"7d\")", arg_name = "DUR")]
    pub forget_after: String,
    /// cluster key file (or $DAUST_KEY): one base64 key per line, the first
    /// initiates, all are accepted; SIGHUP re-reads it. Make one with
    /// `daust keygen`
    #[argh(option, arg_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// run CMD (by /bin/sh -c) for each membership event, with DAUST_EVENT,
    /// DAUST_NODE_NAME, DAUST_NODE_ID, DAUST_NODE_ADDR, ... set and the event
    /// as JSON on stdin; KINDS=CMD runs it only for those (joined, updated,
    /// unreachable, reachable, left, forgotten; comma-separated); repeatable
    #[argh(option, arg_name = "[KINDS=]CMD")]
    pub on_event: Vec<String>,
    /// how long a hook may run before it is killed (default 30s)
    #[argh(option, default = "String::from(\"30s\")", arg_name = "DUR")]
    pub hook_timeout: String,
    /// serve Prometheus metrics on http://ADDR:PORT/metrics (off by default)
    #[argh(option, arg_name = "ADDR:PORT")]
    pub metrics: Option<String>,
}

/// Everything the daemon needs, checked.
struct Settings {
    args: Args,
    keys: Option<secure::Keys>,
    cfg: Config,
    bind: SocketAddr,
    state_dir: PathBuf,
    socket: PathBuf,
    record: NodeRecord,
    hooks: Vec<hooks::Hook>,
    hook_timeout: Duration,
    metrics: Option<SocketAddr>,
}

use crate::engine::limits::{MAX_NAME, MAX_TAGS, MAX_TAG_LEN};

fn settings(args: Args) -> Result<Settings, String> {
    let hb =
        crate::time::parse_duration(&args.heartbeat).map_err(|e| format!("--heartbeat: {e}"))?;
    let forget = crate::time::parse_duration(&args.forget_after)
        .map_err(|e| format!("--forget-after: {e}"))?;
    let keys = load_keys(args.key_file.as_deref())?;
    let hooks = args
        .on_event
        .iter()
        .map(|h| h.parse())
        .collect::<Result<Vec<hooks::Hook>, String>>()?;
    let hook_timeout = crate::time::parse_duration(&args.hook_timeout)
        .map_err(|e| format!("--hook-timeout: {e}"))?;
    let metrics = args
        .metrics
        .as_deref()
        .map(|m| {
            m.parse::<SocketAddr>()
                .map_err(|_| format!("--metrics {m:?}: want ADDR:PORT, e.g. 127.0.0.1:9464"))
        })
        .transpose()?;
    let cfg = Config {
        hash_key: crate::sys::random_u128() as u64,
        heartbeat_ms: hb.as_millis() as u64,
        forget_after_ms: forget.as_millis() as u64,
        deadend: args.deadend,
        authenticated: keys.is_some(),
        key_ids: keys.as_ref().map(|k| k.fingerprints()).unwrap_or_default(),
        ..Config::default()
    };
    cfg.validate()?;
    let bind = parse_bind(&args.bind)?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(crate::paths::default_dir);
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| crate::paths::socket_in(&state_dir));
    let mut tags = std::collections::BTreeMap::new();
    for t in &args.tag {
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| format!("--tag {t:?}: want KEY=VALUE"))?;
        if k.is_empty() || k.len() > MAX_TAG_LEN || v.len() > MAX_TAG_LEN {
            return Err(format!(
                "--tag {t:?}: key must be 1 to {MAX_TAG_LEN} bytes, value at most {MAX_TAG_LEN}"
            ));
        }
        tags.insert(k.to_string(), v.to_string());
    }
    if tags.len() > MAX_TAGS {
        return Err(format!("too many tags: {} (limit {MAX_TAGS})", tags.len()));
    }
    let name = args.name.clone().unwrap_or_else(crate::sys::hostname);
    if name.is_empty()
        || name.len() > MAX_NAME
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "--name {name:?}: want 1 to {MAX_NAME} characters, no spaces"
        ));
    }
    let internal = match &args.iface {
        Some(i) => Some(crate::sys::iface_ip(i).map_err(|e| format!("-i {i}: {e}"))?),
        None if !bind.ip().is_unspecified() => Some(bind.ip()),
        None => crate::sys::internal_ip(),
    };
    let mut addrs: Vec<String> = crate::sys::interface_addrs()
        .into_iter()
        .map(|(_, ip)| ip.to_string())
        .collect();
    if !bind.ip().is_unspecified() {
        addrs.insert(0, bind.ip().to_string());
    }
    addrs.dedup();
    let record = NodeRecord {
        name,
        internal_ip: internal.map(|ip| ip.to_string()),
        addrs,
        public_ip: args.public.clone(),
        port: bind.port(),
        kind: crate::sys::kind().to_string(),
        tags,
        version: crate::VERSION.to_string(),
        os: crate::sys::os(),
        started_ms: wall_ms(),
        deadend: args.deadend,
    };
    Ok(Settings {
        args,
        keys,
        cfg,
        bind,
        state_dir,
        socket,
        record,
        hooks,
        hook_timeout,
        metrics,
    })
}

/// The cluster keys: `--key-file`, else `$DAUST_KEY` (keys separated by
/// commas or spaces), else none.
fn load_keys(file: Option<&std::path::Path>) -> Result<Option<secure::Keys>, String> {
    if let Some(f) = file {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("--key-file {}: {e}", f.display()))?;
        return secure::Keys::parse(&text)
            .map(Some)
            .map_err(|e| format!("--key-file {}: {e}", f.display()));
    }
    match std::env::var("DAUST_KEY") {
        Ok(v) if !v.trim().is_empty() => {
            let text = v.replace([',', ' '], "\n");
            secure::Keys::parse(&text)
                .map(Some)
                .map_err(|e| format!("DAUST_KEY: {e}"))
        }
        _ => Ok(None),
    }
}

fn parse_bind(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, crate::DEFAULT_PORT));
    }
    Err(format!("--bind {s:?}: want IP or IP:PORT"))
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs `daustd` with the arguments after the program name.
pub fn main(cmd: &str, args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-V" || a == "--version") {
        println_or_closed(&format!("daustd {}", crate::VERSION));
        return ExitCode::SUCCESS;
    }
    let args = normalise_args(args);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = match Args::from_args(&[cmd], &refs) {
        Ok(a) => a,
        Err(e) if e.status.is_ok() => {
            println_or_closed(e.output.trim_end());
            return ExitCode::SUCCESS;
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
            eprintln!("daustd: {msg}\ntry '{cmd} --help'");
            return ExitCode::from(2);
        }
    };
    let s = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("daustd: {e}");
            return ExitCode::from(2);
        }
    };
    if s.args.detach && std::env::var_os(DETACHED_ENV).is_none() {
        return detach(&s);
    }
    let _guard = init_logging(&s);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("daustd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(s)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("daustd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a line on stdout; a reader that went away is no error.
fn println_or_closed(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// The C original's long names for the short flags, which argh cannot
/// give a flag beside its short one.
const LONG_NAMES: &[(&str, &str)] = &[
    ("--daemon", "-d"),
    ("--deadend", "-e"),
    ("--keynode", "-k"),
    ("--publicface", "-p"),
    ("--iface", "-i"),
    ("--logfile", "-l"),
    ("--verbose", "-v"),
];

/// Rewrites what argh does not take: `-h` (for `--help`), the C
/// original's long names (`--keynode X`, `--keynode=X`), and `-vv` or
/// `-de` (argh wants short switches apart).
fn normalise_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(rest.by_ref().cloned());
            break;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (a.as_str(), None),
        };
        if let Some((_, short)) = LONG_NAMES.iter().find(|(long, _)| *long == flag) {
            out.push(short.to_string());
            out.extend(inline.map(String::from));
            continue;
        }
        let b = a.as_bytes();
        if a == "-h" {
            out.push("--help".into());
        } else if b.len() > 2
            && b[0] == b'-'
            && b[1] != b'-'
            && a[1..].chars().all(|c| "vde".contains(c))
        {
            out.extend(a[1..].chars().map(|c| format!("-{c}")));
        } else {
            out.push(a.clone());
        }
    }
    out
}

const DETACHED_ENV: &str = "DAUST_DETACHED";

/// `-d`: start the daemon as a child in its own process group and return
/// once it answers on its control socket (or report why it did not).
fn detach(s: &Settings) -> ExitCode {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    if StateDir::is_locked(&s.state_dir) {
        eprintln!(
            "daustd: daustd is already running (state dir {})",
            s.state_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("daustd: cannot find my own binary to detach: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "daemon") {
        args.remove(0);
    }
    let mut child = match std::process::Command::new(exe)
        .arg("daemon")
        .args(args)
        .env(DETACHED_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("daustd: cannot start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Relay what the child says before it is ready (its fatal errors).
    let stderr = child.stderr.take();
    let relay = std::thread::spawn(move || {
        if let Some(mut e) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                use std::io::Write;
                let _ = std::io::stderr().write_all(&buf[..n]);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = relay.join();
            eprintln!("daustd: the daemon exited during start ({status})");
            return ExitCode::FAILURE;
        }
        if crate::client::ping_socket(&s.socket) {
            return ExitCode::SUCCESS;
        }
        if Instant::now() > deadline {
            eprintln!(
                "daustd: the daemon did not answer on {} within 15 s",
                s.socket.display()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log file, for SIGHUP to reopen.
static LOG: std::sync::OnceLock<std::sync::Arc<logfile::LogFile>> = std::sync::OnceLock::new();

fn init_logging(s: &Settings) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let level = match s.args.verbose {
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let detached = std::env::var_os(DETACHED_ENV).is_some();
    let file = s
        .args
        .log
        .clone()
        .or_else(|| detached.then(|| s.state_dir.join("daustd.log")));
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
            let log = match logfile::LogFile::open(&path, logfile::KEEP, Box::new(wall_ms)) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("daustd: cannot open the log file {}: {e}", path.display());
                    return None;
                }
            };
            let _ = LOG.set(log.clone());
            let (writer, guard) = tracing_appender::non_blocking(logfile::Writer(log));
            let _ = builder.with_ansi(false).with_writer(writer).try_init();
            Some(guard)
        }
        None => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            let _ = builder
                .with_ansi(ansi)
                .with_writer(std::io::stderr)
                .try_init();
            None
        }
    }
}

/// What the driver is told.
pub enum Input {
    /// A connection is open and its tasks run.
    LinkUp {
        /// Its id.
        link: LinkId,
        /// Where it came from.
        info: LinkInfo,
        /// The driver's handle on it.
        handle: LinkHandle,
    },
    /// A frame arrived.
    Frame {
        /// On this link.
        link: LinkId,
        /// The message.
        msg: PeerMsg,
    },
    /// `/metrics` was asked for: render the page.
    Metrics {
        /// Where the page goes.
        tx: tokio::sync::oneshot::Sender<String>,
    },
    /// Packets arrive on a link without completing a frame.
    TransportAlive {
        /// The link.
        link: LinkId,
    },
    /// Undecodable bytes arrived; the reader stopped.
    BadFrame {
        /// On this link.
        link: LinkId,
        /// What was wrong.
        err: FrameError,
    },
    /// The connection ended.
    LinkDown {
        /// This link.
        link: LinkId,
        /// Why.
        reason: String,
    },
    /// A dial failed.
    DialFailed {
        /// The address.
        addr: String,
        /// Why.
        err: String,
    },
    /// A control request.
    Ctl {
        /// Its token.
        token: Token,
        /// The request.
        req: Request,
        /// Where the replies go.
        tx: mpsc::Sender<Reply>,
    },
}

/// The clock of the driver.
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Now {
        Now {
            mono_us: self.0.elapsed().as_micros() as u64,
            wall_ms: wall_ms(),
        }
    }
    fn instant(&self, mono_us: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_micros(mono_us))
    }
}

async fn run(s: Settings) -> Result<(), String> {
    let mut dir = StateDir::open(&s.state_dir).map_err(|e| e.to_string())?;
    dir.write_pid();
    let id = dir.ident();
    let snapshot = dir.load_snapshot();
    // How each node stood before this start, so events tell only changes.
    let before: std::collections::HashMap<_, _> = snapshot
        .iter()
        .flat_map(|sn| sn.nodes.iter().map(|n| (n.na.id, n.status)))
        .collect();
    let metrics_listener = match s.metrics {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let listener = TcpListener::bind(s.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", s.bind))?;
    let _ = std::fs::remove_file(&s.socket);
    let ctl = UnixListener::bind(&s.socket)
        .map_err(|e| format!("cannot open the control socket {}: {e}", s.socket.display()))?;
    std::fs::set_permissions(&s.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict the control socket: {e}"))?;
    let clock = Clock(Instant::now());
    // Retransmit at least once a heartbeat (200 ms is TCP's least RTO).
    net::RTO_MAX_MS.store(
        s.cfg.heartbeat_ms.clamp(200, 120_000) as u32,
        std::sync::atomic::Ordering::Relaxed,
    );
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
    let keys = std::sync::Arc::new(std::sync::RwLock::new(
        s.keys.clone().map(std::sync::Arc::new),
    ));
    let current = |k: &std::sync::RwLock<Option<std::sync::Arc<secure::Keys>>>| {
        k.read().ok().and_then(|g| g.clone())
    };

    let (tx, mut rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let mut tasks = tokio::task::JoinSet::new();
    let next_id = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    let accept_task = tokio::spawn(accept_peers(
        listener,
        keys.clone(),
        tx.clone(),
        next_id.clone(),
    ));
    let ctl_permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNS));
    let ctl_task = tokio::spawn(accept_control(
        ctl,
        tx.clone(),
        next_id.clone(),
        ctl_permits.clone(),
    ));
    let hook_stats = std::sync::Arc::new(hooks::HookStats::default());
    let runners = hooks::start(s.hooks.clone(), s.hook_timeout, hook_stats.clone());
    // Events: a restart waits three heartbeats plus a second for links to
    // come back before calling anyone unreachable.
    let grace = 3 * s.cfg.heartbeat_ms + 1000;
    let mut tracker = events::Tracker::new(
        id,
        &s.record.name,
        engine.views(),
        &before,
        !before.is_empty(),
    );
    let mut grace_end =
        (!before.is_empty()).then(|| tokio::time::Instant::now() + Duration::from_millis(grace));
    let mut event_subs: std::collections::HashMap<Token, mpsc::Sender<Reply>> = Default::default();
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %s.metrics.map(|a| a.to_string()).unwrap_or_default(), "serving metrics on /metrics");
        tasks.spawn(metrics::serve(l, tx.clone()));
    }
    // Sockets are up and requests get queued for the driver: ready.
    crate::sys::notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS=daustd {} listening on {}",
        std::process::id(),
        s.record.name,
        s.bind
    ));
    let (snap_tx, snap_rx) = tokio::sync::watch::channel(None);
    let persister = tokio::task::spawn_blocking(move || persist_loop(dir, snap_rx));

    let mut links: std::collections::HashMap<LinkId, LinkHandle> = Default::default();
    let mut clients: std::collections::HashMap<Token, mpsc::Sender<Reply>> = Default::default();
    // `daust top` and other watchers: every change goes to each of them.
    let mut watchers: std::collections::HashMap<Token, mpsc::Sender<Reply>> = Default::default();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| e.to_string())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| e.to_string())?;
    // Changes for watchers are gathered and sent at most every
    // WATCH_BATCH: a burst (a network forming) is one frame, not thousands.
    let mut watch_changed = std::collections::BTreeSet::new();
    let mut watch_removed = std::collections::BTreeSet::new();
    let mut watch_sent = tokio::time::Instant::now();
    let mut exiting = false;
    let mut stop_reason = String::from("stop");
    while !exiting {
        if grace_end.is_some_and(|t| t <= tokio::time::Instant::now()) {
            grace_end = None;
            let evs = tracker.end_grace(engine.views(), wall_ms());
            tell(&evs, &runners, &hook_stats, &mut event_subs);
        }
        if !(watch_changed.is_empty() && watch_removed.is_empty())
            && watch_sent.elapsed() >= WATCH_BATCH
        {
            watch_sent = tokio::time::Instant::now();
            let nodes: Vec<_> = std::mem::take(&mut watch_changed)
                .iter()
                .filter_map(|id| engine.view(id))
                .collect();
            let removed: Vec<_> = std::mem::take(&mut watch_removed).into_iter().collect();
            let evs = tracker.update(nodes.iter().cloned(), &removed, wall_ms());
            tell(&evs, &runners, &hook_stats, &mut event_subs);
            let reply = Reply::Changed { nodes, removed };
            // A watcher that cannot keep up is dropped; it reconnects and
            // starts again from the whole table.
            watchers.retain(|token, w| {
                let ok = w.try_send(reply.clone()).is_ok();
                if !ok {
                    tracing::debug!(token, "watcher dropped: gone or lagging");
                }
                ok
            });
        }
        let mut wake = clock.instant(engine.next_wakeup());
        if let Some(t) = grace_end {
            wake = wake.min(t);
        }
        if !(watch_changed.is_empty() && watch_removed.is_empty()) {
            wake = wake.min(watch_sent + WATCH_BATCH);
        }
        if engine.has_actions() {
            // Actions from before the loop (the first dials): carry them
            // out now, not after the next wake-up.
            wake = tokio::time::Instant::now();
        }
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM");
                stop_reason = "SIGTERM".into();
                engine.shutdown(clock.now())
            }
            _ = int.recv() => {
                tracing::info!("SIGINT");
                stop_reason = "SIGINT".into();
                engine.shutdown(clock.now())
            }
            _ = hup.recv() => {
                if let Some(l) = LOG.get() {
                    l.reopen();
                    tracing::info!("SIGHUP: log file reopened");
                }
                // Key rotation: new handshakes use the re-read keys; links
                // up now keep their sessions.
                match (&s.args.key_file, load_keys(s.args.key_file.as_deref())) {
                    (Some(_), Ok(Some(k))) => {
                        crate::sys::notify("STATUS=cluster keys re-read");
                        tracing::info!(keys = ?k.fingerprints(), "SIGHUP: cluster keys re-read");
                        engine.set_key_ids(k.fingerprints());
                        if let Ok(mut g) = keys.write() {
                            *g = Some(std::sync::Arc::new(k));
                        }
                    }
                    (Some(f), Err(e)) => tracing::error!(file = %f.display(), "SIGHUP: keeping the old keys: {e}"),
                    _ => tracing::info!("SIGHUP: no key file to re-read"),
                }
            }
            input = rx.recv() => {
                let Some(input) = input else { break };
                let now = clock.now();
                match input {
                    Input::LinkUp { link, info, handle } => {
                        if engine.is_stopping() {
                            handle.reader.abort();
                            continue;
                        }
                        links.insert(link, handle);
                        engine.link_up(now, link, info);
                    }
                    Input::Frame { link, msg } => engine.frame(now, link, msg),
                    Input::TransportAlive { link } => engine.transport_alive(now, link),
                    Input::BadFrame { link, err } => {
                        metrics::add(&metrics::IO.bad_frames, 1);
                        engine.bad_frame(now, link, &err)
                    }
                    Input::LinkDown { link, reason } => {
                        links.remove(&link);
                        engine.link_down(now, link, &reason);
                    }
                    Input::DialFailed { addr, err } => engine.dial_failed(now, &addr, &err),
                    Input::Ctl { token, req, tx } => {
                        if req.cmd == Command::Events && req.target == Target::Local {
                            event_subs.insert(token, tx);
                            continue;
                        }
                        clients.insert(token, tx);
                        engine.request(now, token, req);
                    }
                    Input::Metrics { tx } => {
                        let info = engine.info();
                        let page = metrics::Page {
                            info: &info,
                            floods: engine.floods(),
                            hooks: &hook_stats,
                        };
                        let _ = tx.send(metrics::render(&page));
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if clock.instant(engine.next_wakeup()) <= tokio::time::Instant::now() {
                    engine.tick(clock.now());
                }
            }
        }
        // Carry out the actions; a stuck link's close produces more.
        loop {
            let actions = engine.take_actions();
            if actions.is_empty() {
                break;
            }
            let mut stuck = Vec::new();
            let mut changed = std::collections::BTreeSet::new();
            let mut removed = Vec::new();
            for a in actions {
                match a {
                    Action::Send { link, msg } => {
                        if let Some(h) = links.get(&link) {
                            match h.tx.try_send(Outgoing::Msg(msg)) {
                                Ok(()) => {}
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    metrics::add(&metrics::IO.dropped, 1);
                                    stuck.push(link)
                                }
                                // The writer hit an error: the reader will
                                // report the link down after delivering what
                                // the peer sent before it closed.
                                Err(mpsc::error::TrySendError::Closed(_)) => {}
                            }
                        }
                    }
                    Action::Close { link, reason } => {
                        if let Some(h) = links.remove(&link) {
                            tracing::debug!(link, "closing: {reason}");
                            h.reader.abort();
                            let _ = h.tx.try_send(Outgoing::Close);
                        }
                    }
                    Action::Dial { addr } => {
                        let link = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let local = (!s.bind.ip().is_unspecified()).then_some(s.bind.ip());
                        tasks.spawn(net::dial(addr, local, link, tx.clone(), current(&keys)));
                    }
                    Action::Reply {
                        token,
                        reply: reply @ Reply::Table { .. },
                    } => {
                        if let Some(c) = clients.remove(&token) {
                            if c.try_send(reply).is_ok() {
                                tracing::debug!(token, "watcher added");
                                watchers.insert(token, c);
                            }
                        }
                    }
                    Action::Reply { token, reply } => {
                        let last = matches!(reply, Reply::Done(_) | Reply::Error { .. });
                        if let Some(c) = clients.get(&token) {
                            let _ = c.try_send(reply);
                        }
                        if last {
                            clients.remove(&token);
                        }
                    }
                    Action::Persist => {
                        let _ = snap_tx.send(Some(engine.snapshot()));
                    }
                    Action::StatusChanged { .. } => {}
                    Action::NodeChanged(id) => {
                        changed.insert(id);
                    }
                    Action::NodeRemoved(id) => {
                        changed.remove(&id);
                        removed.push(id);
                    }
                    Action::Exit => exiting = true,
                }
            }
            // Always gathered: events need them even with no watcher.
            for id in removed {
                watch_changed.remove(&id);
                watch_removed.insert(id);
            }
            watch_changed.extend(changed);
            for link in stuck {
                if let Some(h) = links.remove(&link) {
                    tracing::warn!(
                        peer = %engine.describe(link),
                        "peer too slow: {} frames queued; dropping the link",
                        net::LINK_QUEUE
                    );
                    h.reader.abort();
                }
                engine.link_down(clock.now(), link, "peer too slow");
            }
        }
    }
    crate::sys::notify("STOPPING=1");
    accept_task.abort();
    ctl_task.abort();
    // Let writers flush what is queued (the goodbye, answers) and send
    // FIN; keep reading (and discarding) until each peer closes too, so our
    // close is not a reset that would destroy what we sent; let control
    // connections send their last answers.
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (_, h) in links.drain() {
        let _ = h.tx.try_send(Outgoing::Close);
        writers.push(h.writer);
        readers.push(h.reader);
    }
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    // Streams end with a word that this is a clean stop (a stream that just
    // closes means the daemon died); dropping their senders ends their
    // connections at once, so that nobody attached slows the stop.
    let bye = Reply::Bye {
        reason: stop_reason.clone(),
    };
    for (_, w) in watchers.drain().chain(event_subs.drain()) {
        let _ = w.try_send(bye.clone());
    }
    drop(clients);
    drop(snap_tx);
    let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
        let _ = persister.await;
        for w in writers {
            let _ = w.await;
        }
        let _ = ctl_permits.acquire_many(MAX_CONTROL_CONNS as u32).await;
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
    let _ = std::fs::remove_file(&s.socket);
    let _ = std::fs::remove_file(s.state_dir.join("daustd.pid"));
    tracing::info!("daustd stopped");
    Ok(())
}

/// Hands events to the hooks and to `daust events` clients; a client that
/// cannot keep up is dropped (it sees the stream end).
fn tell(
    evs: &[Event],
    runners: &[hooks::Runner],
    stats: &hooks::HookStats,
    subs: &mut std::collections::HashMap<Token, mpsc::Sender<Reply>>,
) {
    for ev in evs {
        tracing::debug!(node = %ev.node.name, "event: {}", ev.event.as_str());
        hooks::dispatch(runners, ev, stats);
        subs.retain(|_, tx| tx.try_send(Reply::Event(Box::new(ev.clone()))).is_ok());
    }
}

/// Writes snapshots as they come; only the latest matters. While the
/// state dir refuses writes (read-only, full) the latest is kept and tried
/// again every [`PERSIST_RETRY`], with or without news.
fn persist_loop(
    mut dir: StateDir,
    mut rx: tokio::sync::watch::Receiver<Option<crate::engine::Snapshot>>,
) {
    let mut pending = None;
    let mut next_try = Instant::now();
    loop {
        let closed = if pending.is_none() {
            block_on(rx.changed()).is_err()
        } else {
            // Waiting to retry: news replaces the pending snapshot.
            let wait = next_try.saturating_duration_since(Instant::now());
            matches!(
                block_on(tokio::time::timeout(wait, rx.changed())),
                Ok(Err(_))
            )
        };
        if let Some(snap) = rx.borrow_and_update().clone() {
            pending = Some(snap);
        }
        if closed || Instant::now() >= next_try {
            if let Some(snap) = pending.take() {
                if !dir.save_snapshot(&snap) {
                    pending = Some(snap);
                    next_try = Instant::now() + PERSIST_RETRY;
                }
            }
        }
        if closed {
            break;
        }
    }
}

/// Blocks the (blocking-pool) thread on a future.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

async fn accept_peers(
    listener: TcpListener,
    keys: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<secure::Keys>>>>,
    tx: mpsc::Sender<Input>,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_PEER_CONNS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                let link = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tx = tx.clone();
                let keys = keys.read().ok().and_then(|g| g.clone());
                tokio::spawn(net::start_link(stream, link, None, tx, Some(permit), keys));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn accept_control(
    listener: UnixListener,
    tx: mpsc::Sender<Input>,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
) {
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let token = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tx = tx.clone();
                tokio::spawn(async move {
                    control::serve(stream, token, tx).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("control accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
