//! The control socket's client side: one request to the local daemon and
//! its reply frames. `daust` uses it for every command, `daust top` for its
//! watch, and `daustd -d` to see that the daemon it started answers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::wire::{self, ctl::Reply, ctl::Request, ctl::Run, ctl::Target};

/// Whether a daemon answers a local ping on `socket`.
pub fn ping_socket(socket: &Path) -> bool {
    let req = Request::Run(Run {
        target: Target::Local,
        cmd: crate::wire::ctl::Command::Ping,
        timeout_ms: 1000,
    });
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
            match wire::decode_long::<Reply>(&self.buf, wire::MAX_LONG) {
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
    exchange_with(socket, req, wait, wait, |_| {})
}

/// As [`exchange`], telling `progress` of each `Progress` frame
/// (`Some((answered, expected))`) and, while nothing arrives, every `tick`
/// (`None`): for a live count of who answered.
pub fn exchange_with(
    socket: &Path,
    req: &Request,
    wait: Duration,
    tick: Duration,
    mut progress: impl FnMut(Option<(usize, usize)>),
) -> Result<Reply, ClientError> {
    let (mut replies, sent) = Replies::open(socket, req)?;
    let deadline = Instant::now() + wait;
    loop {
        let next = deadline.min(Instant::now() + tick);
        match replies.next(Some(next))? {
            Next::Reply(Reply::Progress { answered, expected }) => {
                progress(Some((answered, expected)))
            }
            Next::Reply(last) => return Ok(last),
            Next::TimedOut if Instant::now() < deadline => progress(None),
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
