//! The daemon's flags and the settings they make: every value checked
//! once, at start, with an error that names the flag.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use super::{hooks, secure};
use crate::engine::limits::{MAX_NAME, MAX_TAGS, MAX_TAG_LEN};
use crate::engine::Config;
use crate::time::wall_ms;
use crate::wire::peer::NodeRecord;

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
pub struct Settings {
    pub args: Args,
    pub keys: Option<secure::Keys>,
    pub cfg: Config,
    pub bind: SocketAddr,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub record: NodeRecord,
    pub hooks: Vec<hooks::Hook>,
    pub hook_timeout: Duration,
    pub metrics: Option<SocketAddr>,
}

pub fn settings(args: Args) -> Result<Settings, String> {
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
        heartbeat: hb,
        forget_after: (!forget.is_zero()).then_some(forget),
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
pub fn load_keys(file: Option<&std::path::Path>) -> Result<Option<secure::Keys>, String> {
    if let Some(f) = file {
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(f)
            .map_err(|e| format!("--key-file {}: {e}", f.display()))?
            .mode();
        if mode & 0o077 != 0 {
            // As OpenSSH refuses a private key others can read.
            return Err(format!(
                "--key-file {}: readable by others (mode {:o}); the key is a secret: chmod 600 {}",
                f.display(),
                mode & 0o777,
                f.display()
            ));
        }
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

/// Prints a line on stdout; a reader that went away is no error.
pub fn println_or_closed(s: &str) {
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
pub fn normalise_args(args: &[String]) -> Vec<String> {
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
