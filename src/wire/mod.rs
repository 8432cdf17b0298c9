//! Wire: the message types daust speaks and the frame codec that carries them.
//!
//! Every byte stream daust uses, peer links (TCP) and the control socket
//! (Unix), is a sequence of frames: a 4-byte big-endian length, then that
//! many bytes of one JSON message. There is no logic here beyond encoding
//! and decoding; what the messages mean is the engine's business.
//!
//! [`decode`] tells "need more bytes" (`Ok(None)`) from "this stream is
//! broken" (`Err`), so a reader never waits forever on garbage.

pub mod ctl;
pub mod peer;
pub mod types;

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;

/// Largest frame body accepted or sent, in bytes.
///
/// 1 MiB holds a digest of ~15,000 nodes or one node announcement many
/// times over; anything bigger is a bug or an attack, and the link closes.
pub const MAX_FRAME: usize = 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER: usize = 4;

/// Why a byte stream cannot be read as frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME`] bytes.
    TooLarge(usize),
    /// The body is not a valid message (bad JSON, unknown type, bad field).
    Invalid(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge(n) => {
                write!(f, "frame too large: {n} bytes (limit {MAX_FRAME})")
            }
            FrameError::Invalid(why) => write!(f, "invalid frame: {why}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes one message as a frame (length prefix and JSON body).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; HEADER];
    serde_json::to_writer(&mut buf, msg).map_err(|e| FrameError::Invalid(e.to_string()))?;
    let len = buf.len() - HEADER;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    buf[..HEADER].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Decodes the first frame in `buf`.
///
/// Returns `Ok(Some((msg, used)))` with the number of bytes the frame took,
/// `Ok(None)` when `buf` holds only part of a frame, and `Err` when the
/// bytes can never become a valid frame: the caller closes the stream.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(len) = frame_len(buf)? else {
        return Ok(None);
    };
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let body = &buf[HEADER..HEADER + len];
    let msg = serde_json::from_slice(body).map_err(|e| FrameError::Invalid(e.to_string()))?;
    Ok(Some((msg, HEADER + len)))
}

/// Reads the length prefix, if all of it is there, and checks the bound.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(head) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peer::PeerMsg;

    #[test]
    fn round_trip_and_partial() {
        let msg = PeerMsg::Ping { s: 7, r: Some(120) };
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(decode::<PeerMsg>(&bytes[..cut]).unwrap(), None);
        }
        let (back, used) = decode::<PeerMsg>(&bytes).unwrap().unwrap();
        assert_eq!(back, msg);
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn oversized_prefix_is_invalid_before_the_body_arrives() {
        let buf = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            decode::<PeerMsg>(&buf),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn garbage_and_unknown_types_are_invalid() {
        let mut buf = 5u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"\xff\x00{]x");
        assert!(matches!(
            decode::<PeerMsg>(&buf),
            Err(FrameError::Invalid(_))
        ));
        let body = br#"{"t":"launch_missiles"}"#;
        let mut buf = (body.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(body);
        assert!(matches!(
            decode::<PeerMsg>(&buf),
            Err(FrameError::Invalid(_))
        ));
    }
}
