//! daust: distributed are you still there.
//!
//! Every machine, VM and container runs `daustd`; each phones home to
//! another, and together they form one overlay network in which every node
//! knows every other. `daust` asks the local daemon, and through it one node
//! or all of them.
//!
//! # Layout
//!
//! - [`wire`]: message types and the frame codec; no logic.
//! - [`engine`]: the protocol as a pure state machine (no IO, no clock).
//! - [`sim`]: an in-memory network of engines, for deterministic tests.
//! - [`daemon`]: the tokio shell around the engine: sockets, timers, files.
//! - [`cli`]: the `daust` client: the phrase, the request, the printing.
//! - [`client`]: the control socket's client side, for `daust` and `daustd -d`.
//! - [`time`]: durations and wall-clock times as people type and read them.
//! - [`keys`]: cluster keys: the key file, fingerprints, new keys.
//! - [`paths`]: the state dir and the control socket.
//! - [`text`]: text from the network made safe to print.
//! - [`sys`]: facts about the machine: name, addresses, gateway, kind.

pub mod cli;
pub mod client;
pub mod daemon;
pub mod engine;
pub mod keys;
pub mod paths;
pub mod sim;
pub mod sys;
pub mod text;
pub mod time;
pub mod wire;

/// TCP port daemons listen on and dial by default.
pub const DEFAULT_PORT: u16 = 4040;

/// daust's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
