//! Client: `daust` sends one phrase to the local daemon over the control
//! socket and prints the answers, as text or `--json`.

pub mod phrase;
pub mod render;
pub mod top;

use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::wire::{self, ctl::Reply, ctl::Request, ctl::Target};
use phrase::{Action, Phrase};

/// Extra time the client waits beyond the request's own deadline, for the
/// daemon to gather and send its answer.
const GRACE: Duration = Duration::from_secs(2);

/// Where the local daemon's socket is: `--socket`, `$DAUST_SOCKET`, or
/// `daustd.sock` in the state dir.
pub fn socket_path(p: &Phrase) -> PathBuf {
    if let Some(s) = &p.socket {
        return s.clone();
    }
    if let Some(s) = std::env::var_os("DAUST_SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    let dir = p
        .state_dir
        .clone()
        .unwrap_or_else(crate::daemon::state::default_dir);
    crate::daemon::state::socket_in(&dir)
}

/// Whether a daemon answers a local ping on `socket`.
pub fn ping_socket(socket: &Path) -> bool {
    let req = Request {
        target: Target::Local,
        cmd: crate::wire::ctl::Command::Ping,
        timeout_ms: 1000,
    };
    matches!(
        exchange(socket, &req, Duration::from_secs(2)),
        Ok(Reply::Done(_))
    )
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens.
    NoDaemon(PathBuf, std::io::Error),
    /// The daemon went away or spoke nonsense.
    Broken(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoDaemon(path, e) => write!(f, "{}: {e}", path.display()),
            ClientError::Broken(m) => f.write_str(m),
        }
    }
}

/// Reply frames from the daemon, one request's worth, read one at a time.
pub struct Replies {
    s: UnixStream,
    buf: Vec<u8>,
}

/// What [`Replies::next`] found.
pub enum Next {
    /// A reply.
    Reply(Reply),
    /// The daemon closed the connection.
    Closed,
    /// The deadline passed.
    TimedOut,
}

impl Replies {
    /// Connects to `socket` and sends `req`. A daemon that refuses us
    /// (another uid) answers and hangs up at once, so a failed send is
    /// handed back beside the stream, to read the answer anyway.
    pub fn open(
        socket: &Path,
        req: &Request,
    ) -> Result<(Replies, std::io::Result<()>), ClientError> {
        let mut s = UnixStream::connect(socket)
            .map_err(|e| ClientError::NoDaemon(socket.to_path_buf(), e))?;
        let bytes = wire::encode(req).map_err(|e| ClientError::Broken(e.to_string()))?;
        let sent = s.write_all(&bytes);
        Ok((Replies { s, buf: Vec::new() }, sent))
    }

    /// The next reply, waiting until `deadline` (for ever without one).
    pub fn next(&mut self, deadline: Option<Instant>) -> Result<Next, ClientError> {
        let mut chunk = [0u8; 65536];
        loop {
            match wire::decode::<Reply>(&self.buf) {
                Ok(Some((r, used))) => {
                    self.buf.drain(..used);
                    return Ok(Next::Reply(r));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ClientError::Broken(format!(
                        "bad reply from the daemon: {e}"
                    )))
                }
            }
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Next::TimedOut);
                }
                let _ = self
                    .s
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return Ok(Next::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(ClientError::Broken(format!("reading the answer: {e}"))),
            }
        }
    }
}

/// Sends `req` and reads reply frames until the last, waiting at most
/// `wait`.
pub fn exchange(socket: &Path, req: &Request, wait: Duration) -> Result<Reply, ClientError> {
    gather(socket, req, wait, &mut Waiting::new(false))
}

/// How a request failed as a whole, as one line on stderr and, with
/// `--json`, as `{"error": ..., "code": N}` on stdout: JSON whatever
/// happens.
fn fail(json: bool, message: &str, code: u8) -> ExitCode {
    if json {
        let _ =
            print_out(&(serde_json::json!({"error": message, "code": code}).to_string() + "\n"));
    }
    eprintln!("daust: {message}");
    ExitCode::from(code.max(1))
}

/// Why no daemon answers at `path`, in words that say what to do.
fn no_daemon_message(path: &Path, e: &std::io::Error, verbose: bool) -> String {
    let p = path.display();
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied on the control socket {p}: only root and the daemon's own user may use it (try sudo)"
        ),
        _ if verbose => format!(
            "can't reach the local daustd at {p}: {e}; is it running? start it with: daustd -d"
        ),
        _ => format!("can't reach the local daustd at {p}; is it running? start it with: daustd -d"),
    }
}

/// Says that no daemon answers at `path`.
fn no_daemon(path: &Path, e: &std::io::Error, p: &Phrase) -> ExitCode {
    fail(p.json, &no_daemon_message(path, e, p.verbose > 0), 1)
}

/// Runs `daust` with the arguments after the program name.
pub fn main(args: &[String]) -> ExitCode {
    let p = match phrase::parse(args) {
        Ok(p) => p,
        Err(e) => {
            let json = args.iter().any(|a| a == "--json");
            let code = fail(json, &e.0, 2);
            eprintln!("try 'daust --help'");
            return code;
        }
    };
    let print = |s: &str| {
        let _ = print_out(s);
        ExitCode::SUCCESS
    };
    match &p.action {
        Action::Version => print(&format!("daust {}\n", crate::VERSION)),
        Action::Help(None) => print(&phrase::usage()),
        Action::Help(Some(w)) => match phrase::command_help(w) {
            Some(h) => print(&h),
            None => {
                eprintln!("daust: unknown command {w:?}\ntry 'daust --help'");
                ExitCode::from(2)
            }
        },
        Action::Run(cmd) => run(&p, cmd.clone()),
        Action::Top => top::main(&socket_path(&p), p.once, p.width),
        Action::Events => events(&p),
        Action::Keygen => print(&format!("{}\n", crate::daemon::secure::keygen())),
    }
}

/// The live `waiting for N of M nodes…` line of an `all` command on a
/// terminal: shown after a second, redrawn as answers come and as time
/// passes, cleared when done.
struct Waiting {
    live: bool,
    started: Instant,
    answered: usize,
    expected: usize,
    shown: bool,
}

impl Waiting {
    /// How often the line is redrawn while nothing arrives.
    const TICK: Duration = Duration::from_millis(250);

    /// A line drawn only when `live` (stderr is a terminal).
    fn new(live: bool) -> Waiting {
        Waiting {
            live,
            started: Instant::now(),
            answered: 0,
            expected: 0,
            shown: false,
        }
    }

    fn draw(&mut self) {
        let waited = self.started.elapsed();
        if !self.live || waited < Duration::from_secs(1) {
            return;
        }
        let count = if self.expected > 0 {
            format!(
                "waiting for {} of {} nodes…",
                self.expected.saturating_sub(self.answered),
                self.expected
            )
        } else {
            "waiting for answers…".to_string()
        };
        eprint!("\r\x1b[K{count} {}s", waited.as_secs());
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

/// Sends `req` and reads replies until the last, keeping `waiting` drawn.
fn gather(
    socket: &Path,
    req: &Request,
    wait: Duration,
    w: &mut Waiting,
) -> Result<Reply, ClientError> {
    let (mut replies, sent) = Replies::open(socket, req)?;
    let deadline = Instant::now() + wait;
    loop {
        let next = if w.live {
            deadline.min(Instant::now() + Waiting::TICK)
        } else {
            deadline
        };
        match replies.next(Some(next))? {
            Next::Reply(Reply::Progress { answered, expected }) => {
                w.answered = answered;
                w.expected = expected;
            }
            Next::Reply(last) => return Ok(last),
            Next::TimedOut if Instant::now() < deadline => {}
            Next::TimedOut => {
                return Err(ClientError::Broken(
                    "the daemon did not answer in time".into(),
                ))
            }
            Next::Closed => {
                return Err(ClientError::Broken(match &sent {
                    Err(e) => format!("cannot send the request: {e}"),
                    Ok(()) => "the daemon closed the connection without an answer".into(),
                }))
            }
        }
        w.draw();
    }
}

fn run(p: &Phrase, cmd: crate::wire::ctl::Command) -> ExitCode {
    let socket = socket_path(p);
    let all = p.target == Target::All;
    let req = Request {
        target: p.target.clone(),
        cmd: cmd.clone(),
        timeout_ms: p.timeout.as_millis() as u64,
    };
    let mut waiting = Waiting::new(all && !p.json && std::io::stderr().is_terminal());
    let result = gather(&socket, &req, p.timeout + GRACE, &mut waiting);
    waiting.clear();
    let reply = match result {
        Ok(r) => r,
        Err(ClientError::NoDaemon(path, e)) => return no_daemon(&path, &e, p),
        Err(ClientError::Broken(e)) => return fail(p.json, &e, 1),
    };
    match reply {
        Reply::Done(o) if p.dot => {
            // Statuses of nodes that did not answer come from the local table.
            let list = Request {
                target: Target::Local,
                cmd: crate::wire::ctl::Command::List,
                timeout_ms: p.timeout.as_millis() as u64,
            };
            let nodes = match exchange(&socket, &list, p.timeout + GRACE) {
                Ok(Reply::Done(l)) => l
                    .answers
                    .into_iter()
                    .find_map(|a| match a.answer.body {
                        crate::wire::ctl::Body::List { nodes } => Some(nodes),
                        _ => None,
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let _ = print_out(&render::dot(&o, &nodes));
            ExitCode::SUCCESS
        }
        Reply::Done(o) if p.json => {
            let ok = render::succeeded(&o);
            // A reader that went away (a closed pipe) is not our failure.
            let _ = print_out(&(serde_json::to_string_pretty(&o).unwrap_or_default() + "\n"));
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Reply::Done(o) => {
            let r = render::outcome(&cmd, all, &o);
            let _ = print_out(&r.out);
            for line in &r.errors {
                eprintln!("daust: {line}");
            }
            if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Reply::Error { message, code } => fail(p.json, &message, code),
        Reply::Progress { .. }
        | Reply::Table { .. }
        | Reply::Changed { .. }
        | Reply::Event(_)
        | Reply::Bye { .. } => fail(p.json, "unexpected reply from the daemon", 1),
    }
}

/// `daust events`: one line per membership change until the daemon stops
/// (exit 0), the daemon dies (exit 1), or the reader goes away (a closed
/// pipe, Ctrl-C).
fn events(p: &Phrase) -> ExitCode {
    let socket = socket_path(p);
    let req = Request {
        target: Target::Local,
        cmd: crate::wire::ctl::Command::Events,
        timeout_ms: 0,
    };
    let mut replies = match Replies::open(&socket, &req) {
        Ok((r, _)) => r,
        Err(ClientError::NoDaemon(path, e)) => return no_daemon(&path, &e, p),
        Err(ClientError::Broken(e)) => return fail(false, &e, 1),
    };
    loop {
        let line = match replies.next(None) {
            Ok(Next::Reply(Reply::Event(ev))) if p.json => {
                serde_json::to_string(&ev).unwrap_or_default()
            }
            Ok(Next::Reply(Reply::Event(ev))) => render::event(&ev),
            Ok(Next::Reply(Reply::Error { message, code })) => return fail(false, &message, code),
            Ok(Next::Reply(Reply::Bye { reason })) => {
                eprintln!("daust: daustd stopped ({reason}): no more events");
                return ExitCode::SUCCESS;
            }
            Ok(Next::Reply(_)) => continue,
            Ok(Next::Closed | Next::TimedOut) => {
                return fail(
                    false,
                    "lost daustd without a goodbye (killed or crashed?): no more events",
                    1,
                )
            }
            Err(e) => return fail(false, &e.to_string(), 1),
        };
        if print_out(&(line + "\n")).is_err() {
            return ExitCode::SUCCESS; // the reader is gone
        }
    }
}

pub(crate) fn print_out(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()
}
