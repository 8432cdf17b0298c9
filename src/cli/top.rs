//! `daust top`: the live view. This file connects the daemon's watch stream
//! and the terminal to the `daust-ui` crate, which does the rest.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use crate::time::wall_ms;

use daust_ui::{App, Cmd, Msg, Node, Status as UiStatus};

use crate::client::{Next, Replies};
use crate::wire::ctl::{Body, Command, NodeView, Reply, Request, Run, Status, Target};

/// How often ages tick.
const TICK: Duration = Duration::from_secs(1);

/// How long to wait before reconnecting to a daemon that went away.
const RETRY: Duration = Duration::from_secs(1);

/// Maps the daemon's view of a node into the ui's.
pub fn to_ui(n: &NodeView) -> Node {
    Node {
        id: n.id.to_string(),
        name: n.name.clone(),
        kind: n.kind.clone(),
        status: match n.status {
            Status::Alive => UiStatus::Alive,
            Status::Unreachable => UiStatus::Unreachable,
            Status::Left => UiStatus::Left,
        },
        internal_ip: n.internal_ip.clone(),
        public_ip: n.public_ip.clone(),
        addrs: n.addrs.clone(),
        seen_as: n.seen_as.clone(),
        last_seen_ms: n.last_seen_ms,
        rtt_us: n.rtt_us,
        hops: n.hops,
        tags: n.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        parent: n.parent.map(|p| p.to_string()),
        started_ms: n.started_ms,
        version: n.version.clone(),
        os: n.os.clone(),
        deadend: n.deadend,
    }
}

fn to_msg(r: Reply) -> Option<Msg> {
    match r {
        Reply::Table { me, nodes, info } => Some(Msg::Table {
            me: me.to_string(),
            authenticated: info.authenticated,
            nodes: nodes.iter().map(to_ui).collect(),
        }),
        Reply::Changed { nodes, removed } => Some(Msg::Changed {
            nodes: nodes.iter().map(to_ui).collect(),
            removed: removed.iter().map(|id| id.to_string()).collect(),
        }),
        _ => None,
    }
}

/// Opens a watch: the stream of the table and its changes.
fn watch(socket: &Path) -> Result<Replies, crate::client::ClientError> {
    let req = Request::Watch;
    Replies::open(socket, &req).map(|(r, _)| r)
}

/// Reads watch frames into `tx` until the stream ends (true) or nobody
/// listens any more (false).
fn pump(mut replies: Replies, tx: &mpsc::Sender<Msg>) -> bool {
    loop {
        let Ok(Next::Reply(r)) = replies.next(None) else {
            return true;
        };
        if let Some(ev) = to_msg(r) {
            if tx.send(ev).is_err() {
                return false;
            }
        }
    }
}

/// Keeps a watch open, reconnecting when the daemon goes away.
fn watcher(socket: PathBuf, first: Replies, tx: mpsc::Sender<Msg>) {
    let mut s = Some(first);
    loop {
        if let Some(stream) = s.take() {
            if !pump(stream, &tx) {
                return;
            }
            if tx.send(Msg::Disconnected(wall_ms())).is_err() {
                return;
            }
        }
        std::thread::sleep(RETRY);
        s = watch(&socket).ok();
    }
}

/// Runs a command for the view in the background; the result comes back
/// as a status line.
fn exec(socket: PathBuf, cmd: Cmd, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let (id, command) = match &cmd {
            Cmd::Ping(id) => (id.clone(), Command::Ping),
            Cmd::Stop(id) => (id.clone(), Command::Stop),
            Cmd::Forget(id) => (String::new(), Command::Forget { node: id.clone() }),
        };
        let target = if id.is_empty() {
            Target::Local
        } else {
            Target::Remote(id)
        };
        let req = Request::Run(Run {
            target,
            cmd: command,
            timeout_ms: 5000,
        });
        let msg = match crate::client::exchange(&socket, &req, Duration::from_secs(7)) {
            Ok(Reply::Done(o)) => match (o.answers.first(), o.missing.first()) {
                (Some(r), _) => match &r.answer.body {
                    Body::Error { message } => format!("{}: {message}", r.answer.name),
                    _ => super::render::answer(r).trim_end().to_string(),
                },
                (None, Some(m)) => format!("no answer from {}", m.name),
                _ => "no answer".into(),
            },
            Ok(Reply::Error { message, .. }) => message,
            Ok(_) => "unexpected reply".into(),
            Err(crate::client::ClientError::NoDaemon(..)) => {
                "the local daustd is not running".into()
            }
            Err(crate::client::ClientError::Broken(e)) => e,
        };
        let _ = tx.send(Msg::Status(msg));
    });
}

/// `daust top [--once [--width N]]`.
pub fn main(socket: &Path, once: bool, width: Option<u16>) -> ExitCode {
    let no_daemon = |e: &std::io::Error| {
        eprintln!("daust: {}", super::no_daemon_message(socket, e, false));
        ExitCode::FAILURE
    };
    let first = match watch(socket) {
        Ok(s) => s,
        Err(crate::client::ClientError::NoDaemon(_, e)) => return no_daemon(&e),
        Err(e) => {
            eprintln!("daust: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut app = App {
        now_ms: wall_ms(),
        ..App::default()
    };
    if once {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || pump(first, &tx));
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(ev) => {
                app.update(ev);
            }
            Err(_) => {
                eprintln!("daust: the local daustd sent no table within 5 s");
                return ExitCode::FAILURE;
            }
        }
        app.plain = true;
        // The terminal's width; in a pipe, $COLUMNS or every column.
        let w = width
            .or_else(|| {
                std::io::stdout()
                    .is_terminal()
                    .then(terminal_width)
                    .flatten()
            })
            .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
            .unwrap_or_else(|| daust_ui::natural_width(&app));
        // A reader that goes away early (`| head -1`) is not an error.
        let _ = super::print_out(&daust_ui::render_text(&app, w));
        return ExitCode::SUCCESS;
    }
    if !std::io::stdout().is_terminal() {
        eprintln!("daust: top needs a terminal; use daust top --once for plain text");
        return ExitCode::from(2);
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    {
        let tx = tx.clone();
        let socket = socket.to_path_buf();
        std::thread::spawn(move || watcher(socket, first, tx));
    }
    {
        let tx = tx.clone();
        std::thread::spawn(move || keys(tx));
    }
    {
        let tx = tx.clone();
        std::thread::spawn(move || on_sigterm(tx));
    }
    let mut terminal = daust_ui::ratatui::init();
    let socket = socket.to_path_buf();
    let mut first_tick = true;
    let result = daust_ui::run(
        &mut terminal,
        &mut app,
        || {
            if first_tick {
                first_tick = false;
                return Some(Msg::Tick(wall_ms()));
            }
            match rx.recv_timeout(TICK) {
                Ok(ev) => Some(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => Some(Msg::Tick(wall_ms())),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            }
        },
        |cmd| exec(socket.clone(), cmd, tx.clone()),
    );
    daust_ui::ratatui::restore();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("daust: top: {e}");
            ExitCode::FAILURE
        }
    }
}

fn terminal_width() -> Option<u16> {
    daust_ui::crossterm::terminal::size()
        .ok()
        .map(|(w, _)| w)
        .filter(|w| *w > 0)
}

fn keys(tx: mpsc::Sender<Msg>) {
    use daust_ui::crossterm::event::{read, Event as CEvent};
    loop {
        let ev = match read() {
            Ok(CEvent::Key(k)) => match daust_ui::Key::from_crossterm(k) {
                Some(k) => Msg::Key(k),
                None => continue,
            },
            Ok(CEvent::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// SIGTERM and SIGHUP end the view cleanly, restoring the terminal.
fn on_sigterm(tx: mpsc::Sender<Msg>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(Msg::Quit);
    });
}
