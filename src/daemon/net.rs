//! Peer connections: one reader task and one writer task per link, and
//! dialling. No protocol decisions: frames go to the driver as they come.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::metrics;
use super::outbox::Outbox;
use super::secure::{self, Keys, Opener, Sealer};
use super::Input;
use crate::engine::{DialFailure, LinkId, LinkInfo};
use crate::wire::{self, peer::PeerMsg, FrameError};
use std::sync::Arc;

/// Bytes of frames read but not yet taken by the engine, from all links
/// together. The input queue holds at most so many frames; this holds
/// them to so many bytes too: a peer sending megabyte frames would
/// otherwise park a gigabyte in it. Readers wait their turn for it in
/// order, as they do for the queue.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;

/// The budget of [`MAX_INPUT_BYTES`] (one daemon a process).
pub static INPUT_BYTES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_INPUT_BYTES);

/// Bytes of frames gathered into one write, about.
const WRITE_BATCH: usize = 64 * 1024;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 8 * 1024;

thread_local! {
    /// What a read lands in before it joins a link's frame buffer (opened,
    /// when the link is sealed): one for all of a (current-thread) daemon's
    /// links, read into only once a socket is readable, so an idle link
    /// holds no read buffer. A buffer per link was 8 KiB each, 8 MiB at a
    /// hub of a thousand.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

/// What one read from a readable socket came to.
enum Got {
    /// Bytes joined the frame buffer.
    Bytes,
    /// Nothing after all (the readiness was stale).
    Nothing,
    /// The peer closed the connection.
    Closed,
    Failed(std::io::Error),
    /// A sealed frame that would not open.
    Unsealed(String),
}

/// Reads what `rd` holds, up to `want` bytes, into `buf` (opened with
/// `opener` when the link is sealed), through [`SCRATCH`].
fn read_ready(
    rd: &OwnedReadHalf,
    want: usize,
    buf: &mut Vec<u8>,
    opener: Option<&mut Opener>,
) -> Got {
    SCRATCH.with(|raw| {
        let mut raw = raw.borrow_mut();
        let n = match rd.try_read(&mut raw[..want.min(READ_CHUNK)]) {
            Ok(0) => return Got::Closed,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Got::Nothing,
            Err(e) => return Got::Failed(e),
        };
        metrics::add(&metrics::IO.bytes_in, n as u64);
        match opener {
            None => buf.extend_from_slice(&raw[..n]),
            Some(o) => {
                if let Err(e) = o.open(&raw[..n], buf) {
                    return Got::Unsealed(e);
                }
            }
        }
        Got::Bytes
    })
}

/// How often a quiet link looks at its socket for packets that arrived
/// without completing a frame (see [`crate::engine::Engine::packets_arrive`]).
const STIR_CHECK: Duration = Duration::from_millis(500);

/// The cap on TCP's retransmission timeout for links, ms: the heartbeat
/// (set at start; see [`crate::sys::tcp_rto_max`]).
pub static RTO_MAX_MS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);

/// The driver's side of a link's [`Outbox`]: closes it when dropped.
pub struct Closing(pub Arc<Outbox>);

impl std::ops::Deref for Closing {
    type Target = Outbox;
    fn deref(&self) -> &Outbox {
        &self.0
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// What an accepted connection holds while it lives (see
/// [`super::accept`]).
pub struct Permits {
    /// One of the peer connection slots, for as long as it reads (held,
    /// never read).
    #[allow(dead_code)]
    pub slot: (tokio::sync::OwnedSemaphorePermit, super::accept::Counted),
    /// One of the handshake slots, until its first frame arrives.
    pub startup: Option<super::accept::Counted>,
}

/// The driver's handle on a running link.
pub struct LinkHandle {
    /// What waits for the writer; closed when the handle goes (the link
    /// closed, went down, or the daemon stops), so the writer sends what is
    /// queued, then ends, and the socket closes.
    pub out: Closing,
    /// The reader: aborted when the engine closes the link; at shutdown
    /// left to read until the peer closes, so nothing we leave unread makes
    /// our close a reset that destroys what we just sent.
    pub reader: tokio::task::JoinHandle<()>,
    /// The writer, awaited at shutdown so queued frames (answers, the
    /// goodbye) leave before the process exits.
    pub writer: tokio::task::JoinHandle<()>,
    /// Frames the reader has read off the socket.
    pub heard: Arc<AtomicU64>,
    /// Frames the engine has taken in (kept by the driver): fewer than
    /// `heard` while frames wait in the input queue.
    pub taken: u64,
}

impl LinkHandle {
    /// Whether frames read from this link wait for the engine: the peer
    /// is alive, though the engine has not seen it yet (a hub behind a
    /// thousand links starting at once).
    pub fn frames_waiting(&self) -> bool {
        self.heard.load(Ordering::Relaxed) > self.taken
    }
}

/// Starts the tasks of a new connection and tells the driver about it.
/// With `keys`, the Noise handshake comes first; a peer that fails it is
/// logged ("cluster key mismatch") and dropped before the engine hears of
/// it.
///
/// `permits`, for an accepted connection, bound how many there are: its
/// slot is held as long as the link reads, its handshake slot until the
/// first frame.
pub async fn start_link(
    mut stream: TcpStream,
    link: LinkId,
    dialled: Option<String>,
    inputs: mpsc::Sender<Input>,
    permits: Option<Permits>,
    keys: Option<Arc<Keys>>,
) {
    let _ = stream.set_nodelay(true);
    let rto = RTO_MAX_MS.load(std::sync::atomic::Ordering::Relaxed);
    crate::sys::tcp_rto_max(stream.as_raw_fd(), rto);
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let cipher = match &keys {
        None => None,
        Some(k) => {
            let hs = async {
                if dialled.is_some() {
                    secure::initiate(&mut stream, k).await
                } else {
                    secure::respond(&mut stream, k).await
                }
            };
            match tokio::time::timeout(secure::HANDSHAKE_TIMEOUT, hs).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    tracing::warn!(peer = %remote, "refusing link: {e}");
                    if let Some(addr) = dialled {
                        let kind = DialFailure::Other;
                        let _ = inputs.send(Input::DialFailed { addr, err: e, kind }).await;
                    }
                    return;
                }
                Err(_) => {
                    tracing::warn!(peer = %remote, "refusing link: handshake timeout");
                    if let Some(addr) = dialled {
                        let err = "handshake timeout".to_string();
                        let kind = DialFailure::Other;
                        let _ = inputs.send(Input::DialFailed { addr, err, kind }).await;
                    }
                    return;
                }
            }
        }
    };
    let (sealer, opener) = match cipher {
        Some((s, o)) => (Some(s), Some(o)),
        None => (None, None),
    };
    let (rd, wr) = stream.into_split();
    let out = Outbox::new();
    let writer = tokio::spawn(write_loop(wr, out.clone(), sealer));
    let heard = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(read_loop(
        rd,
        (link, heard.clone()),
        inputs.clone(),
        permits,
        opener,
    ));
    let handle = LinkHandle {
        out: Closing(out),
        reader,
        writer,
        heard,
        taken: 0,
    };
    let info = LinkInfo { dialled, remote };
    if let Err(mpsc::error::SendError(Input::LinkUp { handle, .. })) =
        inputs.send(Input::LinkUp { link, info, handle }).await
    {
        handle.reader.abort();
        handle.writer.abort();
    }
}

async fn read_loop(
    rd: OwnedReadHalf,
    (link, heard): (LinkId, Arc<AtomicU64>),
    inputs: mpsc::Sender<Input>,
    mut permits: Option<Permits>,
    mut opener: Option<Opener>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut tick = tokio::time::interval(STIR_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut segs, mut framed) = (None, false);
    let reason = loop {
        if opener.is_none() && buf.starts_with(&secure::MAGIC[..4]) {
            let err = FrameError::Invalid(
                "cluster key mismatch: the peer uses a cluster key and this daemon has none".into(),
            );
            let _ = inputs.send(Input::BadFrame { link, err }).await;
            return;
        }
        match wire::decode::<PeerMsg>(&buf) {
            Ok(Some((msg, used))) => {
                buf.drain(..used);
                // The first frame is in: no longer a handshake.
                if let Some(p) = permits.as_mut() {
                    p.startup = None;
                }
                if buf.is_empty() && buf.capacity() > 1024 {
                    buf = Vec::new(); // an idle link holds no big buffer
                } else if buf.capacity() > 4 * READ_CHUNK && buf.len() < READ_CHUNK {
                    buf.shrink_to(READ_CHUNK); // after a large frame
                }
                heard.fetch_add(1, Ordering::Relaxed);
                // At most a frame (1 MiB), far below the budget.
                let Ok(bytes) = INPUT_BYTES.acquire_many(used as u32).await else {
                    return;
                };
                let frame = Input::Frame {
                    link,
                    msg,
                    _bytes: bytes,
                };
                if inputs.send(frame).await.is_err() {
                    return;
                }
                framed = true;
                metrics::add(&metrics::IO.frames_in, 1);
                continue;
            }
            Ok(None) => {}
            Err(err) => {
                let _ = inputs.send(Input::BadFrame { link, err }).await;
                return;
            }
        }
        // Read no more than the frame in progress needs (bounded by the
        // frame limit), so a peer cannot make us buffer without end.
        let want = match wire::frame_len(&buf) {
            Ok(Some(n)) => (wire::HEADER + n)
                .saturating_sub(buf.len())
                .clamp(1, READ_CHUNK),
            _ => READ_CHUNK,
        };
        let ready = tokio::select! {
            r = rd.readable() => r,
            _ = tick.tick() => {
                // Packets in over a half-second with no frame out: the
                // peer is sending behind a lost segment (a lossy path), not
                // frozen or gone. A half-second with frames needs no look.
                segs = if framed {
                    None
                } else {
                    let now = crate::sys::tcp_data_segs_in(rd.as_ref().as_raw_fd());
                    if now.is_some() && segs.is_some() && now != segs {
                        let _ = inputs.send(Input::PacketsArrive { link }).await;
                    }
                    now
                };
                framed = false;
                continue;
            }
        };
        if let Err(e) = ready {
            break format!("read error: {e}");
        }
        match read_ready(&rd, want, &mut buf, opener.as_mut()) {
            Got::Bytes | Got::Nothing => {}
            Got::Closed => {
                break if buf.is_empty() {
                    "closed by peer".to_string()
                } else {
                    "closed by peer mid-frame".to_string()
                };
            }
            Got::Failed(e) => break format!("read error: {e}"),
            Got::Unsealed(e) => {
                let _ = inputs
                    .send(Input::BadFrame {
                        link,
                        err: FrameError::Invalid(e),
                    })
                    .await;
                return;
            }
        }
    };
    let _ = inputs.send(Input::LinkDown { link, reason }).await;
}

async fn write_loop(mut wr: OwnedWriteHalf, out: Arc<Outbox>, mut sealer: Option<Sealer>) {
    let mut batch: Vec<u8> = Vec::new();
    'writing: while let Some(first) = out.next().await {
        // What waits goes out in one write: a hub syncing a newcomer sends
        // it the whole table, and a write (and a TCP segment) per frame
        // was 40% of a hub's time when a hundred containers started.
        batch.clear();
        let mut frames = 0u64;
        let mut msg = Some(first);
        while let Some(m) = msg.take() {
            match wire::encode(&m) {
                Ok(bytes) => {
                    batch.extend_from_slice(&bytes);
                    frames += 1;
                }
                Err(_) => {
                    tracing::error!("a message too large to send was dropped");
                    metrics::add(&metrics::IO.dropped, 1);
                }
            }
            if batch.len() < WRITE_BATCH {
                msg = out.try_next();
            }
        }
        let sealed;
        let bytes: &[u8] = match sealer.as_mut() {
            None => &batch,
            Some(s) => match s.seal(&batch) {
                Ok(b) => {
                    sealed = b;
                    &sealed
                }
                Err(e) => {
                    tracing::error!("cannot encrypt a frame: {e}");
                    break 'writing;
                }
            },
        };
        if wr.write_all(bytes).await.is_err() {
            break;
        }
        metrics::add(&metrics::IO.frames_out, frames);
        metrics::add(&metrics::IO.bytes_out, bytes.len() as u64);
        // A hub has a thousand links: none keeps a burst's buffer.
        if batch.capacity() > 4 * 1024 {
            batch = Vec::new();
        }
    }
    // Pushes after this go nowhere.
    out.close();
    let _ = wr.shutdown().await;
}

/// Dials `addr` (`host:port`, `gateway:port`) and starts the link, or
/// reports the failure.
///
/// With a specific `local` address, the connection leaves from it, so the
/// peer sees this node at the address it listens on.
pub async fn dial(
    addr: String,
    local: Option<std::net::IpAddr>,
    link: LinkId,
    inputs: mpsc::Sender<Input>,
    keys: Option<Arc<Keys>>,
) {
    tracing::debug!(%addr, "dialling");
    match connect(&addr, local).await {
        Ok(stream) => {
            tracing::debug!(%addr, "connected");
            start_link(stream, link, Some(addr), inputs, None, keys).await
        }
        Err((err, kind)) => {
            tracing::debug!(%addr, "dial failed: {err}");
            let _ = inputs.send(Input::DialFailed { addr, err, kind }).await;
        }
    }
}

/// What connecting along a blackhole route fails with (Linux's EINVAL).
const EINVAL: i32 = 22;

/// What a failed connect says about when to try again (see
/// [`DialFailure`]).
fn failure(e: &std::io::Error) -> DialFailure {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => DialFailure::Refused,
        K::NetworkUnreachable | K::HostUnreachable => DialFailure::NoRoute,
        _ if e.raw_os_error() == Some(EINVAL) => DialFailure::NoRoute,
        _ => DialFailure::Other,
    }
}

/// Connects to `addr`, trying each of its addresses; says why not, and
/// what kind of failure the last attempt was.
async fn connect(
    addr: &str,
    local: Option<std::net::IpAddr>,
) -> Result<TcpStream, (String, DialFailure)> {
    let other = |e: String| (e, DialFailure::Other);
    let (host, port) = crate::engine::table::split_addr(addr);
    let port = port.unwrap_or(crate::DEFAULT_PORT);
    let targets: Vec<SocketAddr> = if host == "gateway" {
        let gw = crate::sys::gateway()
            .ok_or_else(|| other("no default gateway in /proc/net/route".into()))?;
        vec![SocketAddr::from((gw, port))]
    } else {
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| other(format!("cannot resolve {host}: {e}")))?
            .collect()
    };
    let mut last = format!("no address for {host}");
    let mut kind = DialFailure::Other;
    for t in targets {
        let attempt = async {
            let sock = if t.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            if let Some(ip) = local.filter(|ip| ip.is_ipv4() == t.is_ipv4()) {
                sock.bind(SocketAddr::new(ip, 0))?;
            }
            sock.connect(t).await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => {
                kind = failure(&e);
                last = e.to_string();
            }
            Err(_) => {
                kind = DialFailure::Other;
                last = format!("no answer in {} s", CONNECT_TIMEOUT.as_secs());
            }
        }
    }
    Err((last, kind))
}
