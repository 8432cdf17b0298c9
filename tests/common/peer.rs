//! A scripted peer: speaks the wire protocol without a key, says whatever
//! it likes about itself and others, and answers frames as the test says.
//! For the hostile tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daust::wire::peer::{Announcement, Hello, Neighbor, NodeId, NodeRecord, PeerMsg, Version};

/// What the peer does with a frame it receives: the frames to send back.
pub type Respond = Box<dyn FnMut(PeerMsg) -> Vec<PeerMsg> + Send>;

/// A connected scripted peer; closes its connection when dropped.
pub struct Peer {
    stream: TcpStream,
    w: Arc<Mutex<TcpStream>>,
    stop: Arc<AtomicBool>,
    /// The connection was closed by the other side.
    pub closed: Arc<AtomicBool>,
}

/// A daemon's node id, as the wire has it.
pub fn id_of(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).expect("a node id")
}

/// A plausible record named `name`.
pub fn record(name: &str) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        internal_ip: Some("10.66.66.66".into()),
        addrs: vec![],
        public_ip: None,
        port: 4040,
        kind: "host".into(),
        tags: [("role".to_string(), "db,admin=yes".to_string())].into(),
        version: daust::VERSION.into(),
        os: "linux".into(),
        started_ms: 1,
        deadend: false,
    }
}

/// An announcement of node `id` named `name` at `seq`, with links to
/// `neighbors`.
pub fn na(id: u128, name: &str, seq: u64, neighbors: &[u128]) -> Announcement {
    Announcement {
        id: NodeId(id),
        version: Version { inc: 1, seq },
        record: record(name),
        neighbors: neighbors
            .iter()
            .map(|n| Neighbor {
                id: NodeId(*n),
                rtt_us: Some(100),
                seen_as: None,
            })
            .collect(),
        left: false,
    }
}

/// A made-up network behind node `root`: `hubs` hubs linked to it, each
/// with `leaves` leaves; the root's own announcement (at seq 2, also
/// linked to the real node `to`) first. All of it alive, everywhere.
pub fn fake_tree(root: u128, root_name: &str, to: u128, hubs: u128, leaves: u128) -> Vec<PeerMsg> {
    let hub = |h: u128| root + 1 + h;
    let leaf = |h: u128, l: u128| root + 1_000_000 + h * 10_000 + l;
    let mut links: Vec<u128> = (0..hubs).map(hub).collect();
    links.push(to);
    let mut out = vec![na(root, root_name, 2, &links)];
    for h in 0..hubs {
        let mut links: Vec<u128> = (0..leaves).map(|l| leaf(h, l)).collect();
        links.push(root);
        out.push(na(hub(h), &format!("hub{h}"), 1, &links));
        for l in 0..leaves {
            out.push(na(leaf(h, l), &format!("leaf{h}-{l}"), 1, &[hub(h)]));
        }
    }
    out.into_iter().map(|a| PeerMsg::Na(Arc::new(a))).collect()
}

/// Dials `to` port 4040, from `from` if given.
pub fn dial(from: Option<&str>, to: &str) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect((to, 4040));
    };
    thread_local! {
        static RT: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .ok();
    }
    let to: std::net::SocketAddr = format!("{to}:4040")
        .parse()
        .map_err(std::io::Error::other)?;
    let from: std::net::SocketAddr = format!("{from}:0").parse().map_err(std::io::Error::other)?;
    let s = RT.with(|rt| {
        let rt = rt
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no runtime"))?;
        rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(from)?;
            s.connect(to).await?.into_std()
        })
    })?;
    s.set_nonblocking(false)?;
    Ok(s)
}

/// The Hello of node `id` named `name`, asking for heartbeat `hb_ms`.
pub fn hello(id: u128, name: &str, hb_ms: u64, seen_as: &str) -> PeerMsg {
    PeerMsg::Hello(Box::new(Hello {
        proto: daust::wire::peer::PROTO_MAJOR,
        minor: 0,
        id: NodeId(id),
        hb_ms,
        na: na(id, name, 1, &[]),
        seen_as: seen_as.into(),
    }))
}

impl Peer {
    /// Connects to the daemon at `to` as node `id` named `name`; drops
    /// whatever comes and says something twice a heartbeat.
    pub fn connect(to: &str, id: u128, name: &str) -> Peer {
        Peer::connect_with(to, id, name, Box::new(|_| Vec::new()))
    }

    /// As [`Peer::connect`], answering each frame it receives as `respond`
    /// says.
    pub fn connect_with(to: &str, id: u128, name: &str, mut respond: Respond) -> Peer {
        let stream = dial(None, to).expect("connect");
        let w = Arc::new(Mutex::new(stream.try_clone().expect("clone")));
        let (stop, closed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let peer = Peer {
            stream,
            w,
            stop,
            closed,
        };
        peer.send(&hello(id, name, 1000, to));
        let mut r = peer.stream.try_clone().expect("clone");
        let (w, closed) = (peer.w.clone(), peer.closed.clone());
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                match r.read(&mut chunk) {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
                while let Ok(Some((msg, used))) = daust::wire::decode::<PeerMsg>(&buf) {
                    buf.drain(..used);
                    for out in respond(msg) {
                        let bytes = daust::wire::encode(&out).expect("encode");
                        let Ok(mut w) = w.lock() else { return };
                        let _ = w.write_all(&bytes);
                    }
                }
            }
            closed.store(true, Ordering::Relaxed);
        });
        let (w, s) = (peer.w.clone(), peer.stop.clone());
        std::thread::spawn(move || {
            let ping = daust::wire::encode(&PeerMsg::Ping { s: 1, r: None }).expect("encode");
            while !s.load(Ordering::Relaxed) {
                let sent = w.lock().map(|mut w| w.write_all(&ping).is_ok());
                if !matches!(sent, Ok(true)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        peer
    }

    /// Sends one frame; false once the connection is gone.
    pub fn send(&self, msg: &PeerMsg) -> bool {
        self.send_all(std::slice::from_ref(msg))
    }

    /// Sends frames back to back, as fast as the socket takes them.
    pub fn send_all(&self, msgs: &[PeerMsg]) -> bool {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&daust::wire::encode(m).expect("encode"));
        }
        match self.w.lock() {
            Ok(mut w) => w.write_all(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
