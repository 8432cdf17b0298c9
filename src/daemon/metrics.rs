//! `--metrics ADDR:PORT`: the Prometheus text format on `/metrics`, served
//! by a few lines of HTTP/1.1 (one request per connection). The driver
//! renders the page from the engine on request; byte and frame counters are
//! kept by the link tasks in [`IO`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::hooks::HookStats;
use super::Input;
use crate::wire::ctl::InfoView;

/// Frames and bytes through every link, counted where they cross sockets.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Frames received.
    pub frames_in: AtomicU64,
    /// Frames sent.
    pub frames_out: AtomicU64,
    /// Bytes received (on the wire, encrypted or not).
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Frames not sent: a link's queue was full (the link is then dropped)
    /// or the frame too large.
    pub dropped: AtomicU64,
    /// Connections closed for undecodable input.
    pub bad_frames: AtomicU64,
}

/// The process's link counters.
pub static IO: IoCounters = IoCounters {
    frames_in: AtomicU64::new(0),
    frames_out: AtomicU64::new(0),
    bytes_in: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    bad_frames: AtomicU64::new(0),
};

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Connections open at once; past it the oldest slow one is dropped.
const MAX_SCRAPES: usize = 8;
/// A scrape must send its request within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` on `listener`, asking the driver for each page.
///
/// Connections are always accepted (a full backlog would keep a real
/// scrape out); with [`MAX_SCRAPES`] already open, the oldest one still
/// sending its request (a slow or idle client) is dropped to make room, so
/// slow connections cannot starve a real scrape, which sends its request
/// at once.
pub async fn serve(listener: TcpListener, inputs: mpsc::Sender<Input>) {
    let mut set = tokio::task::JoinSet::new();
    let mut open: std::collections::VecDeque<(tokio::task::AbortHandle, Arc<AtomicBool>)> =
        Default::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while set.try_join_next().is_some() {}
        open.retain(|(h, _)| !h.is_finished());
        if open.len() >= MAX_SCRAPES {
            match open
                .iter()
                .position(|(_, reading)| reading.load(Ordering::Relaxed))
            {
                Some(k) => {
                    if let Some((h, _)) = open.remove(k) {
                        h.abort();
                    }
                }
                // Every one is being answered: this one waits its turn in
                // no queue; it is closed.
                None => continue,
            }
        }
        let reading = Arc::new(AtomicBool::new(true));
        let (inputs, r) = (inputs.clone(), reading.clone());
        let h = set.spawn(async move {
            if let Err(e) = scrape(stream, inputs, r).await {
                tracing::debug!(%peer, "metrics: {e}");
            }
        });
        open.push_back((h, reading));
    }
}

async fn scrape(
    mut stream: TcpStream,
    inputs: mpsc::Sender<Input>,
    reading: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    reading.store(false, Ordering::Relaxed);
    let line = String::from_utf8_lossy(&head);
    let mut words = line.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body, kind) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", "/metrics") => {
            let (tx, rx) = oneshot::channel();
            if inputs.send(Input::Metrics { tx }).await.is_err() {
                return Ok(());
            }
            let page = rx.await.unwrap_or_default();
            ("200 OK", page, "text/plain; version=0.0.4; charset=utf-8")
        }
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "daustd: metrics at /metrics\n".to_string(),
            "text/plain; charset=utf-8",
        ),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found\n".into(), "text/plain"),
        _ => ("405 Method Not Allowed", "GET only\n".into(), "text/plain"),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        out.push_str(&body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// Escapes a label value: backslash, double quote, newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the page shows, gathered by the driver.
pub struct Page<'a> {
    /// `info` of this node (counts by status, links with RTT, uptime).
    pub info: &'a InfoView,
    /// Announcements and commands this node sent out by flooding.
    pub floods: u64,
    /// Hook counters.
    pub hooks: &'a HookStats,
}

/// Renders the Prometheus text exposition format.
pub fn render(p: &Page) -> String {
    let mut s = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(s, "{name}{labels} {value}");
        }
    };
    let me = &p.info.node;
    metric(
        "daust_info",
        "gauge",
        "This daemon: its name, id and version.",
        &[(
            format!(
                "{{name=\"{}\",id=\"{}\",version=\"{}\"}}",
                label(&me.name),
                me.id,
                label(&me.version)
            ),
            "1".into(),
        )],
    );
    let by_status: Vec<(String, String)> = p
        .info
        .counts
        .iter()
        .map(|(status, n)| (format!("{{status=\"{}\"}}", label(status)), n.to_string()))
        .collect();
    metric(
        "daust_nodes",
        "gauge",
        "Nodes in this daemon's table, by status (this node included).",
        &by_status,
    );
    metric(
        "daust_links",
        "gauge",
        "Live links of this daemon.",
        &[(String::new(), p.info.links.len().to_string())],
    );
    let rtts: Vec<(String, String)> = p
        .info
        .links
        .iter()
        .filter_map(|l| {
            let rtt = l.rtt_us?;
            Some((
                format!(
                    "{{peer=\"{}\",addr=\"{}\"}}",
                    label(&l.name),
                    label(&l.addr)
                ),
                format!("{}", rtt as f64 / 1e6),
            ))
        })
        .collect();
    metric(
        "daust_link_rtt_seconds",
        "gauge",
        "Round-trip time of each live link, as last measured.",
        &rtts,
    );
    for (name, help, c) in counters(p.hooks) {
        let value = c.load(Ordering::Relaxed).to_string();
        metric(name, "counter", help, &[(String::new(), value)]);
    }
    metric(
        "daust_floods_total",
        "counter",
        "Announcements and commands this node passed to all its links.",
        &[(String::new(), p.floods.to_string())],
    );
    metric(
        "daust_uptime_seconds",
        "gauge",
        "Seconds since this daemon started.",
        &[(String::new(), p.info.uptime_secs.to_string())],
    );
    s
}

/// The counters: name, help, value.
fn counters(hooks: &HookStats) -> [(&'static str, &'static str, &AtomicU64); 9] {
    [
        (
            "daust_frames_received_total",
            "Frames received on all links.",
            &IO.frames_in,
        ),
        (
            "daust_frames_sent_total",
            "Frames sent on all links.",
            &IO.frames_out,
        ),
        (
            "daust_bytes_received_total",
            "Bytes received on all links.",
            &IO.bytes_in,
        ),
        (
            "daust_bytes_sent_total",
            "Bytes sent on all links.",
            &IO.bytes_out,
        ),
        (
            "daust_frames_dropped_total",
            "Frames not sent: a link's queue was full or a frame too large.",
            &IO.dropped,
        ),
        (
            "daust_bad_frames_total",
            "Connections closed for undecodable input.",
            &IO.bad_frames,
        ),
        (
            "daust_hook_runs_total",
            "Event hook runs finished.",
            &hooks.runs,
        ),
        (
            "daust_hook_failures_total",
            "Event hook runs that failed or timed out.",
            &hooks.failures,
        ),
        (
            "daust_hook_events_dropped_total",
            "Events a hook lost for being too far behind.",
            &hooks.dropped,
        ),
    ]
}

/// Binds the metrics listener (before the daemon reports itself ready).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))
}
