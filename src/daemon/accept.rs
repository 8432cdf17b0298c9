//! The two listeners: peers on TCP, clients on the control socket. Each
//! loop owns the connections it accepted until they are handed on (a peer
//! link to the driver once its handshake is done) or finished (a control
//! connection), and ends when the daemon stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::{control, net, secure, Input, Stop};

/// Control connections served at once; more wait in the kernel's backlog.
pub const MAX_CONTROL_CONNS: usize = 256;

/// Peer connections accepted at once (established or handshaking).
pub const MAX_PEER_CONNS: usize = 1024;

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
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                let link = next_id.fetch_add(1, Ordering::Relaxed);
                let keys = keys.read().ok().and_then(|g| g.clone());
                handshakes.spawn(net::start_link(
                    stream,
                    link,
                    None,
                    tx.clone(),
                    Some(permit),
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
