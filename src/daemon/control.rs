//! The control socket: one request per connection from `daust`, answered
//! with reply frames until `Done` or `Error`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::{Input, Stop};
use crate::engine::Token;
use crate::wire::{self, ctl::Reply, ctl::Request};

/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Reply frames queued for one client.
pub const REPLY_QUEUE: usize = 1024;

/// Serves one control connection.
pub async fn serve(
    mut stream: UnixStream,
    token: Token,
    inputs: mpsc::Sender<Input>,
    mut stop: Stop,
) {
    if let Err(msg) = check_peer(&stream) {
        let _ = send(
            &mut stream,
            &Reply::Error {
                message: msg,
                code: 1,
            },
        )
        .await;
        return;
    }
    let read = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream));
    let req = tokio::select! {
        r = read => match r {
            Ok(Ok(r)) => r,
            Ok(Err(message)) => {
                tracing::debug!("bad control request: {message}");
                let _ = send(&mut stream, &Reply::Error { message, code: 2 }).await;
                return;
            }
            Err(_) => return,
        },
        _ = stop.wait() => {
            let message = "daustd is stopping".to_string();
            let _ = send(&mut stream, &Reply::Error { message, code: 1 }).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(REPLY_QUEUE);
    if inputs.send(Input::Ctl { token, req, tx }).await.is_err() {
        let _ = send(
            &mut stream,
            &Reply::Error {
                message: "daustd is shutting down".into(),
                code: 1,
            },
        )
        .await;
        return;
    }
    while let Some(reply) = rx.recv().await {
        let last = matches!(
            reply,
            Reply::Done(_) | Reply::Error { .. } | Reply::Bye { .. }
        );
        if send(&mut stream, &reply).await.is_err() || last {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

/// Only root and the daemon's own user may give commands.
fn check_peer(stream: &UnixStream) -> Result<(), String> {
    let me = crate::sys::uid();
    match stream.peer_cred() {
        Ok(c) if c.uid() == 0 || c.uid() == me => Ok(()),
        Ok(c) => Err(format!(
            "permission denied: uid {} may not control this daustd (only root and uid {me})",
            c.uid()
        )),
        Err(e) => Err(format!(
            "permission denied: cannot check the caller's credentials: {e}"
        )),
    }
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut buf = Vec::new();
    loop {
        match wire::decode::<Request>(&buf) {
            Ok(Some((req, _))) => return Ok(req),
            Ok(None) => {}
            Err(e) => return Err(format!("bad request: {e}")),
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a whole request".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends one reply; a large one (the table of a big network) in continued
/// frames.
async fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let bytes = wire::encode_long(reply).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await
}
