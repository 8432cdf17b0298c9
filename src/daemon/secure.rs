//! Authenticated, encrypted links with a cluster key: the Noise protocol
//! `NNpsk0_25519_ChaChaPoly_BLAKE2s` through the `snow` crate, the cluster
//! key as the pre-shared key.
//!
//! ```text
//!  dialler                                   listener
//!    |-- "DAUSTN1\n" len msg1 (e, psk) ------->|  the listener tries each of
//!    |<-- len msg2 (e, ee) --------------------|  its keys on msg1: none fits
//!    |                                          |  = "cluster key mismatch"
//!    |<== records: len ChaCha20-Poly1305(...) =>|  daust frames inside, cut
//!                                                  into records of <= 64 KiB
//! ```
//!
//! Fresh ephemeral keys on both sides make every link's session keys new
//! (forward secrecy), and a captured session replayed to a daemon gets
//! nowhere: its records do not decrypt under the new keys, and nonces only
//! go up, so a record replayed within a session fails too.

use std::sync::Arc;
use std::time::Duration;

pub use crate::keys::Keys;

use snow::{Builder, HandshakeState, StatelessTransportState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Noise protocol name.
pub const NOISE: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

/// What a dialler with a key sends first: tells a daemon without a key
/// what it is looking at.
pub const MAGIC: &[u8; 8] = b"DAUSTN1\n";

/// How long a handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest Noise message, and the plaintext that fits in one.
const RECORD_MAX: usize = 65535;
const CHUNK: usize = RECORD_MAX - 16;

/// Encrypts outgoing frames into records.
pub struct Sealer {
    t: Arc<StatelessTransportState>,
    nonce: u64,
}

impl Sealer {
    /// The records carrying `plain`.
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(plain.len() + plain.len() / CHUNK * 18 + 18);
        let mut buf = vec![0u8; RECORD_MAX];
        for chunk in plain.chunks(CHUNK) {
            let n = self
                .t
                .write_message(self.nonce, chunk, &mut buf)
                .map_err(|e| e.to_string())?;
            self.nonce += 1;
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }
}

/// Decrypts incoming records.
pub struct Opener {
    t: Arc<StatelessTransportState>,
    nonce: u64,
    pending: Vec<u8>,
}

impl Opener {
    /// Takes bytes off the wire; appends whatever whole records held to
    /// `plain`. An error means tampering, a replay or another key.
    pub fn open(&mut self, bytes: &[u8], plain: &mut Vec<u8>) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        let mut buf = vec![0u8; RECORD_MAX];
        let mut at = 0;
        while self.pending.len() >= at + 2 {
            let len = u16::from_be_bytes([self.pending[at], self.pending[at + 1]]) as usize;
            if self.pending.len() < at + 2 + len {
                break;
            }
            let n = self
                .t
                .read_message(self.nonce, &self.pending[at + 2..at + 2 + len], &mut buf)
                .map_err(|_| {
                    "a record did not decrypt (tampered, replayed or under another key)".to_string()
                })?;
            self.nonce += 1;
            plain.extend_from_slice(&buf[..n]);
            at += 2 + len;
        }
        self.pending.drain(..at);
        Ok(())
    }
}

fn builder(key: &[u8; 32]) -> Result<Builder<'_>, String> {
    let params = NOISE.parse().map_err(|e| format!("noise params: {e:?}"))?;
    Builder::new(params).psk(0, key).map_err(|e| e.to_string())
}

async fn read_msg(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .await
        .map_err(|e| format!("handshake closed: {e}"))?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg)
        .await
        .map_err(|e| format!("handshake closed: {e}"))?;
    Ok(msg)
}

async fn write_msg(s: &mut TcpStream, prefix: &[u8], msg: &[u8]) -> Result<(), String> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
        .await
        .map_err(|e| format!("handshake write: {e}"))
}

fn transport(hs: HandshakeState) -> Result<(Sealer, Opener), String> {
    let t = Arc::new(
        hs.into_stateless_transport_mode()
            .map_err(|e| e.to_string())?,
    );
    Ok((
        Sealer {
            t: t.clone(),
            nonce: 0,
        },
        Opener {
            t,
            nonce: 0,
            pending: Vec::new(),
        },
    ))
}

/// The dialler's side of the handshake, with the first key.
pub async fn initiate(s: &mut TcpStream, keys: &Keys) -> Result<(Sealer, Opener), String> {
    let mut hs = builder(keys.first())?
        .build_initiator()
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; RECORD_MAX];
    let n = hs.write_message(&[], &mut buf).map_err(|e| e.to_string())?;
    write_msg(s, MAGIC, &buf[..n]).await?;
    let reply = read_msg(s).await.map_err(|_| {
        "cluster key mismatch: the peer closed the handshake (it holds none of our keys)"
            .to_string()
    })?;
    hs.read_message(&reply, &mut buf)
        .map_err(|_| "cluster key mismatch: the peer's answer does not authenticate".to_string())?;
    transport(hs)
}

/// The listener's side: every key is tried on the first message.
pub async fn respond(s: &mut TcpStream, keys: &Keys) -> Result<(Sealer, Opener), String> {
    let mut magic = [0u8; 8];
    s.read_exact(&mut magic)
        .await
        .map_err(|e| format!("handshake closed: {e}"))?;
    if &magic != MAGIC {
        // A daemon without a key speaks plaintext frames: tell it why, in
        // its own tongue, so both logs say so.
        let reason = "cluster key mismatch: this daemon requires a cluster key".to_string();
        if let Ok(bytes) = crate::wire::encode(&crate::wire::peer::PeerMsg::Refuse { reason }) {
            let _ = s.write_all(&bytes).await;
        }
        return Err("cluster key mismatch: the peer speaks without a cluster key".into());
    }
    let msg = read_msg(s).await?;
    let mut buf = vec![0u8; RECORD_MAX];
    for key in keys.all() {
        let mut hs = builder(key)?.build_responder().map_err(|e| e.to_string())?;
        if hs.read_message(&msg, &mut buf).is_ok() {
            let n = hs.write_message(&[], &mut buf).map_err(|e| e.to_string())?;
            write_msg(s, &[], &buf[..n]).await?;
            return transport(hs);
        }
    }
    Err(format!(
        "cluster key mismatch: the handshake fits none of our {} key(s)",
        keys.all().len()
    ))
}
