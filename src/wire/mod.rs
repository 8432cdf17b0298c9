//! Wire: the message types daust speaks and the frame codec that carries them.
//!
//! Every byte stream daust uses, peer links (TCP) and the control socket
//! (Unix), is a sequence of frames: a 4-byte big-endian length, then that
//! many bytes of one JSON message. There is no logic here beyond encoding
//! and decoding; what the messages mean is the engine's business.
//!
//! [`decode`] tells "need more bytes" (`Ok(None)`) from "this stream is
//! broken" (`Err`), so a reader never waits forever on garbage.
//!
//! A control reply can be larger than a frame (the table of 65,536 nodes is
//! ~25 MB of JSON): [`encode_long`] cuts its body into frames of at most
//! [`MAX_FRAME`] bytes, each but the last with [`MORE`] set in its length
//! prefix, and [`decode_long`] joins them, up to a bound the reader sets.
//! Peer links never continue a frame: there the flag makes the length
//! too large, and the link closes.

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

/// Set in a length prefix: the message goes on in the next frame.
pub const MORE: u32 = 1 << 31;

/// Largest message a client joins from continued frames, in bytes: the
/// table of 65,536 nodes with long tags and many addresses, with room.
pub const MAX_LONG: usize = 512 * 1024 * 1024;

/// Why a byte stream cannot be read as frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME`] bytes.
    TooLarge(usize),
    /// The body is not a valid message (bad JSON, unknown type, bad field).
    Invalid(String),
    /// Continued frames add up to more than the reader allows.
    TooLong(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge(n) => {
                write!(f, "frame too large: {n} bytes (limit {MAX_FRAME})")
            }
            FrameError::Invalid(why) => write!(f, "invalid frame: {why}"),
            FrameError::TooLong(n) => write!(f, "message too long: over {n} bytes"),
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

/// Encodes one message as one frame, or as several continued ones (see
/// [`MORE`]) when its body is larger than [`MAX_FRAME`].
pub fn encode_long<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg).map_err(|e| FrameError::Invalid(e.to_string()))?;
    let parts = body.len().div_ceil(MAX_FRAME).max(1);
    let mut buf = Vec::with_capacity(body.len() + parts * HEADER);
    let mut chunks = body.chunks(MAX_FRAME).peekable();
    if chunks.peek().is_none() {
        buf.extend_from_slice(&0u32.to_be_bytes());
    }
    while let Some(chunk) = chunks.next() {
        let more = if chunks.peek().is_some() { MORE } else { 0 };
        // A chunk is at most MAX_FRAME (1 MiB) long: it fits the 31 bits.
        buf.extend_from_slice(&(chunk.len() as u32 | more).to_be_bytes());
        buf.extend_from_slice(chunk);
    }
    Ok(buf)
}

/// Decodes the first message in `buf`, joining continued frames (see
/// [`MORE`]) of at most `limit` bytes in all. Like [`decode`], `Ok(None)`
/// means more bytes are needed; a reader calling it again as bytes arrive
/// costs a look at each frame's prefix, not a copy, until the last frame
/// is in.
pub fn decode_long<T: DeserializeOwned>(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(T, usize)>, FrameError> {
    let mut at = 0;
    let mut total = 0usize;
    let mut bodies = Vec::new();
    loop {
        let Some(head) = buf.get(at..at + HEADER) else {
            return Ok(None);
        };
        let raw = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = (raw & !MORE) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        total = total.saturating_add(len);
        if total > limit {
            return Err(FrameError::TooLong(limit));
        }
        let Some(body) = buf.get(at + HEADER..at + HEADER + len) else {
            return Ok(None);
        };
        bodies.push(body);
        at += HEADER + len;
        if raw & MORE == 0 {
            break;
        }
    }
    let msg = if let [one] = bodies[..] {
        serde_json::from_slice(one)
    } else {
        serde_json::from_slice(&bodies.concat())
    };
    let msg = msg.map_err(|e| FrameError::Invalid(e.to_string()))?;
    Ok(Some((msg, at)))
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
    fn a_long_message_travels_in_continued_frames() {
        let nodes = "x".repeat(3 * MAX_FRAME + 17);
        let msg = PeerMsg::Refuse { reason: nodes };
        let bytes = encode_long(&msg).unwrap();
        assert!(encode(&msg).is_err(), "too large for one frame");
        for cut in [0, 3, HEADER + MAX_FRAME, bytes.len() - 1] {
            assert_eq!(
                decode_long::<PeerMsg>(&bytes[..cut], MAX_LONG).unwrap(),
                None
            );
        }
        let (back, used) = decode_long::<PeerMsg>(&bytes, MAX_LONG).unwrap().unwrap();
        assert_eq!((back, used), (msg.clone(), bytes.len()));
        // Bounded by the reader, before the rest arrives.
        let head = &bytes[..HEADER + MAX_FRAME + HEADER];
        assert_eq!(
            decode_long::<PeerMsg>(head, MAX_FRAME + 1),
            Err(FrameError::TooLong(MAX_FRAME + 1))
        );
        // A short one is an ordinary frame, and the peer codec refuses a
        // continued one.
        let small = PeerMsg::Pong { s: 1 };
        assert_eq!(encode_long(&small).unwrap(), encode(&small).unwrap());
        assert!(matches!(
            decode::<PeerMsg>(&bytes),
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
