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
        exchange(socket, &req, Duration::from_secs(2), |_| {}),
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

/// Sends `req` and reads reply frames until the last; `progress` sees the
/// others.
pub fn exchange(
    socket: &Path,
    req: &Request,
    wait: Duration,
    mut progress: impl FnMut(&Reply),
) -> Result<Reply, ClientError> {
    let (mut replies, sent) = Replies::open(socket, req)?;
    let deadline = Instant::now() + wait;
    loop {
        match replies.next(Some(deadline))? {
            Next::Reply(r @ Reply::Progress { .. }) => progress(&r),
            Next::Reply(last) => return Ok(last),
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
    }
}

/// Says that no daemon answers at `path`.
fn no_daemon(path: &Path) -> ExitCode {
    eprintln!(
        "daust: can't reach the local daustd at {}; is it running? start it with: daustd -d",
        path.display()
    );
    ExitCode::FAILURE
}

/// Runs `daust` with the arguments after the program name.
pub fn main(args: &[String]) -> ExitCode {
    let p = match phrase::parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("daust: {}", e.0);
            eprint!("{}", phrase::usage());
            return ExitCode::from(2);
        }
    };
    match &p.action {
        Action::Version => {
            println!("daust {}", crate::VERSION);
            ExitCode::SUCCESS
        }
        Action::Help(None) => {
            print!("{}", phrase::usage());
            ExitCode::SUCCESS
        }
        Action::Help(Some(w)) => match phrase::command_help(w) {
            Some(h) => {
                print!("{h}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("daust: unknown command {w:?}");
                eprint!("{}", phrase::usage());
                ExitCode::from(2)
            }
        },
        Action::Run(cmd) => run(&p, cmd.clone()),
        Action::Top => top::main(&socket_path(&p), p.once, p.width),
        Action::Events => events(&p),
        Action::Keygen => {
            println!("{}", crate::daemon::secure::keygen());
            ExitCode::SUCCESS
        }
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
    let started = Instant::now();
    let live = all && !p.json && std::io::stderr().is_terminal();
    let mut shown = false;
    let result = exchange(&socket, &req, p.timeout + GRACE, |r| {
        if let Reply::Progress { answered, expected } = r {
            if live && started.elapsed() > Duration::from_secs(1) {
                eprint!(
                    "\r\x1b[Kwaiting for {} of {expected} nodes…",
                    expected.saturating_sub(*answered)
                );
                shown = true;
            }
        }
    });
    if shown {
        eprint!("\r\x1b[K");
    }
    let reply = match result {
        Ok(r) => r,
        Err(ClientError::NoDaemon(path, e)) => {
            if p.verbose > 0 {
                eprintln!("daust: {e}");
            }
            return no_daemon(&path);
        }
        Err(ClientError::Broken(e)) => {
            eprintln!("daust: {e}");
            return ExitCode::FAILURE;
        }
    };
    match reply {
        Reply::Done(o) if p.dot => {
            // Statuses of nodes that did not answer come from the local table.
            let list = Request {
                target: Target::Local,
                cmd: crate::wire::ctl::Command::List,
                timeout_ms: p.timeout.as_millis() as u64,
            };
            let nodes = match exchange(&socket, &list, p.timeout + GRACE, |_| {}) {
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
        Reply::Done(o) => {
            let (text, ok) = render::outcome(&cmd, all, &o);
            let out = if p.json {
                serde_json::to_string_pretty(&o).unwrap_or_default() + "\n"
            } else {
                text
            };
            if print_out(&out).is_err() {
                return ExitCode::SUCCESS; // broken pipe: the reader is gone
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Reply::Error { message, code } => {
            if p.json {
                let _ = print_out(
                    &(serde_json::json!({"error": message, "code": code}).to_string() + "\n"),
                );
            }
            eprintln!("daust: {message}");
            ExitCode::from(code.max(1))
        }
        Reply::Progress { .. } | Reply::Table { .. } | Reply::Changed { .. } | Reply::Event(_) => {
            eprintln!("daust: unexpected reply from the daemon");
            ExitCode::FAILURE
        }
    }
}

/// `daust events`: one line per membership change until the daemon goes
/// away (exit 0) or the reader does (a closed pipe, Ctrl-C).
fn events(p: &Phrase) -> ExitCode {
    let socket = socket_path(p);
    let req = Request {
        target: Target::Local,
        cmd: crate::wire::ctl::Command::Events,
        timeout_ms: 0,
    };
    let mut replies = match Replies::open(&socket, &req) {
        Ok((r, _)) => r,
        Err(ClientError::NoDaemon(path, _)) => return no_daemon(&path),
        Err(e) => {
            eprintln!("daust: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        let line = match replies.next(None) {
            Ok(Next::Reply(Reply::Event(ev))) if p.json => {
                serde_json::to_string(&ev).unwrap_or_default()
            }
            Ok(Next::Reply(Reply::Event(ev))) => render::event(&ev),
            Ok(Next::Reply(Reply::Error { message, code })) => {
                eprintln!("daust: {message}");
                return ExitCode::from(code.max(1));
            }
            Ok(Next::Reply(_)) => continue,
            Ok(Next::Closed | Next::TimedOut) => {
                eprintln!("daust: daustd stopped: no more events");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("daust: {e}");
                return ExitCode::FAILURE;
            }
        };
        if print_out(&(line + "\n")).is_err() {
            return ExitCode::SUCCESS; // the reader is gone
        }
    }
}

fn print_out(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()
}
