//! Client: `daust` sends one phrase to the local daemon over the control
//! socket and prints the answers, as text or `--json`.

pub mod phrase;
pub mod render;
pub mod top;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::client::{exchange, exchange_with, ClientError, Next, Replies};
use crate::wire::ctl::{Reply, Request, Run, Target};
use phrase::{Phrase, Verb};

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
        .unwrap_or_else(crate::paths::default_dir);
    crate::paths::socket_in(&dir)
}

/// How a request failed as a whole, as one line on stderr and, with
/// `--json`, as `{"error": ..., "code": N}` on stdout: JSON whatever
/// happens.
fn fail(json: bool, message: &str, code: u8) -> ExitCode {
    if json {
        let _ =
            print_out(&(serde_json::json!({"error": message, "code": code}).to_string() + "\n"));
    }
    eprintln!("daust: {}", crate::text::clean(message));
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
    match &p.verb {
        Verb::Version => print(&format!("daust {}\n", crate::VERSION)),
        Verb::Help(None) => print(&phrase::usage()),
        Verb::Help(Some(w)) => match phrase::command_help(w) {
            Some(h) => print(&h),
            None => {
                eprintln!("daust: unknown command {w:?}\ntry 'daust --help'");
                ExitCode::from(2)
            }
        },
        Verb::Run(cmd) => run(&p, cmd.clone()),
        Verb::Top => top::main(&socket_path(&p), p.once, p.width),
        Verb::Events => events(&p),
        Verb::Keygen => print(&format!("{}\n", crate::keys::keygen())),
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
    let tick = if w.live { Waiting::TICK } else { wait };
    exchange_with(socket, req, wait, tick, |progress| {
        if let Some((answered, expected)) = progress {
            w.answered = answered;
            w.expected = expected;
        }
        w.draw();
    })
}

fn run(p: &Phrase, cmd: crate::wire::ctl::Command) -> ExitCode {
    let socket = socket_path(p);
    let all = p.target == Target::All;
    let req = Request::Run(Run {
        target: p.target.clone(),
        cmd: cmd.clone(),
        timeout_ms: p.timeout.as_millis() as u64,
    });
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
            let list = Request::Run(Run {
                target: Target::Local,
                cmd: crate::wire::ctl::Command::List,
                timeout_ms: p.timeout.as_millis() as u64,
            });
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
            // Text from the network, escaped before it reaches a terminal.
            let r = render::outcome(&cmd, all, &render::clean_outcome(o));
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
        | Reply::Subscribed { .. }
        | Reply::Bye { .. } => fail(p.json, "unexpected reply from the daemon", 1),
    }
}

/// `daust events`: one line per membership change until the daemon stops
/// (exit 0), the daemon dies (exit 1), or the reader goes away (a closed
/// pipe, Ctrl-C).
fn events(p: &Phrase) -> ExitCode {
    let socket = socket_path(p);
    let req = Request::Events;
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
            Ok(Next::Reply(Reply::Event(ev))) => render::event(&render::clean_event(*ev)),
            Ok(Next::Reply(Reply::Error { message, code })) => return fail(false, &message, code),
            Ok(Next::Reply(Reply::Subscribed { name })) => {
                let name = crate::text::clean(&name);
                eprintln!("daust: streaming the events {name} sees (Ctrl-C ends)");
                continue;
            }
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
