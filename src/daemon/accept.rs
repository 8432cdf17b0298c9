//! The two listeners: peers on TCP, clients on the control socket. Each
//! loop owns the connections it accepted until they are handed on (a peer
//! link to the driver once its handshake is done) or finished (a control
//! connection), and ends when the daemon stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::{control, net, secure, Input, Stop};

/// Control connections served at once; more wait in the kernel's backlog.
pub const MAX_CONTROL_CONNS: usize = 256;

/// Peer connections accepted at once (established or handshaking).
pub const MAX_PEER_CONNS: usize = 1024;

/// Accepted connections that have not yet sent their first frame (the
/// Hello, after the Noise handshake with a cluster key). More are closed at
/// once, like OpenSSH's MaxStartups: a flood of connections that never
/// finish their handshake holds these, not the slots of real links. Each
/// is closed after the handshake timeout.
pub const MAX_STARTUPS: usize = 64;

/// Of those, from one address: one host opening connections as fast as
/// it can takes these eight, not the handshake slots of every other host.
pub const MAX_STARTUPS_PER_ADDR: usize = 8;

/// Peer connections from one address: a host behind which a few hundred
/// VMs share an address (NAT) fits; one host cannot take every slot.
pub const MAX_CONNS_PER_ADDR: usize = 256;

/// Connections counted while they live: so many in all, so many from one
/// address.
#[derive(Clone)]
pub struct Slots {
    counts: Arc<Mutex<Counts>>,
    all: usize,
    per_addr: usize,
}

#[derive(Default)]
struct Counts {
    all: usize,
    by_addr: HashMap<IpAddr, usize>,
}

/// One connection counted in [`Slots`]; uncounted when dropped.
pub struct Counted {
    slots: Slots,
    ip: IpAddr,
}

impl Slots {
    /// At most `all` connections, `per_addr` from one address.
    fn new(all: usize, per_addr: usize) -> Slots {
        Slots {
            counts: Arc::default(),
            all,
            per_addr,
        }
    }

    /// Counts one more connection from `ip`, if there is room for it.
    fn take(&self, ip: IpAddr) -> Option<Counted> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.by_addr.get(&ip).copied().unwrap_or(0);
        if c.all >= self.all || n >= self.per_addr {
            return None;
        }
        c.all += 1;
        c.by_addr.insert(ip, n + 1);
        Some(Counted {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut c = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.all = c.all.saturating_sub(1);
        if let Some(n) = c.by_addr.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_addr.remove(&self.ip);
            }
        }
    }
}

/// The cluster keys as they stand (SIGHUP may replace them).
pub type KeysNow = Arc<RwLock<Option<Arc<secure::Keys>>>>;

/// Accepts peers and runs their handshakes; a link whose handshake is done
/// goes to the driver as [`Input::LinkUp`]. Handshakes under way when the
/// daemon stops are dropped.
pub async fn peers(
    listener: TcpListener,
    keys: KeysNow,
    tx: mpsc::Sender<Input>,
    next_id: Arc<AtomicU64>,
    mut stop: Stop,
) {
    let permits = Arc::new(Semaphore::new(MAX_PEER_CONNS));
    let conns_by = Slots::new(MAX_PEER_CONNS, MAX_CONNS_PER_ADDR);
    let startups = Slots::new(MAX_STARTUPS, MAX_STARTUPS_PER_ADDR);
    let mut handshakes = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = stop.wait() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = stop.wait() => return,
            a = listener.accept() => a,
        };
        while handshakes.try_join_next().is_some() {}
        match accepted {
            Ok((stream, from)) => {
                backoff = Duration::from_millis(10);
                let ip = from.ip();
                let Some(conn) = conns_by.take(ip) else {
                    tracing::warn!(peer = %from, "closing a connection: {MAX_CONNS_PER_ADDR} others from its address are open");
                    continue;
                };
                let Some(startup) = startups.take(ip) else {
                    tracing::warn!(peer = %from, "closing a connection: too many have not finished their handshake yet ({MAX_STARTUPS_PER_ADDR} from one address, {MAX_STARTUPS} in all)");
                    continue;
                };
                let link = next_id.fetch_add(1, Ordering::Relaxed);
                let keys = keys.read().ok().and_then(|g| g.clone());
                let permits = net::Permits {
                    slot: (permit, conn),
                    startup: Some(startup),
                };
                handshakes.spawn(net::start_link(
                    stream,
                    link,
                    None,
                    tx.clone(),
                    Some(permits),
                    keys,
                ));
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Accepts control connections, one task each. When the daemon stops it
/// accepts no more and returns once every connection has sent its last
/// answer (the driver ends them).
pub async fn clients(
    listener: UnixListener,
    tx: mpsc::Sender<Input>,
    next_id: Arc<AtomicU64>,
    mut stop: Stop,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONTROL_CONNS));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop.wait() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stop.wait() => break,
            a = listener.accept() => a,
        };
        while conns.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                let token = next_id.fetch_add(1, Ordering::Relaxed);
                let (tx, stop) = (tx.clone(), stop.clone());
                conns.spawn(async move {
                    control::serve(stream, token, tx, stop).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("control accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(tx);
    while conns.join_next().await.is_some() {}
}
