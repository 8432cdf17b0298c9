//! What the tasks that move bytes tell the driver: the one channel into
//! the task that owns the engine.

use tokio::sync::mpsc;

use super::net::LinkHandle;
use crate::engine::DialFailure;
use crate::engine::{LinkId, LinkInfo, Token};
use crate::wire::ctl::{Reply, Request};
use crate::wire::peer::PeerMsg;
use crate::wire::FrameError;

/// What the driver is told, by the tasks that move bytes.
pub enum Input {
    /// A peer connection finished its handshake (Noise, with a key) and its
    /// reader and writer run.
    LinkUp {
        /// The handle the engine will know it by.
        link: LinkId,
        /// Who dialled, and the address of the other end.
        info: LinkInfo,
        /// The writer's queue and both tasks, for the driver to own.
        handle: LinkHandle,
    },
    /// A whole frame arrived on a link.
    Frame {
        /// The link it came on.
        link: LinkId,
        /// The decoded message.
        msg: PeerMsg,
        /// Its bytes' share of [`super::net::INPUT_BYTES`], given back
        /// once the engine took it.
        _bytes: tokio::sync::SemaphorePermit<'static>,
    },
    /// `/metrics` was asked for: the driver renders the page from the
    /// engine.
    Metrics {
        /// Where the page goes.
        tx: tokio::sync::oneshot::Sender<String>,
    },
    /// The peer's packets arrive on a link although no frame completes (a
    /// lost segment holds them back): a lossy path, not a dead one.
    PacketsArrive {
        /// The link they arrive on.
        link: LinkId,
    },
    /// Bytes that are not a frame arrived; the reader stopped.
    BadFrame {
        /// The link they came on.
        link: LinkId,
        /// What was wrong with them, for the log.
        err: FrameError,
    },
    /// A connection ended (EOF, error, or our own close).
    LinkDown {
        /// The link that ended.
        link: LinkId,
        /// Why, for the log.
        reason: String,
    },
    /// A dial failed before any handshake.
    DialFailed {
        /// The address as the engine asked for it.
        addr: String,
        /// Why, for the log and for a waiting `remote ADDR`.
        err: String,
        /// Refused (the machine is up, its daemon away), or anything else.
        kind: DialFailure,
    },
    /// A client's request on the control socket.
    Ctl {
        /// The connection's handle, for the replies.
        token: Token,
        /// What it asks.
        req: Request,
        /// Where its reply frames go.
        tx: mpsc::Sender<Reply>,
    },
}
