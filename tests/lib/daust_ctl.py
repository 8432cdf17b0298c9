"""The control socket, for the Python harnesses (tests/fault/fault-test,
benches/bench-cluster): frames of a 4-byte big-endian length and one JSON
message, as `src/wire` defines them and `docs/protocol.md` describes.

    body = await run_here(sock, "info")       # one command on that daemon itself
    r, w = await open_stream(sock, "watch")   # or "events"
    while True:
        msg = await read_frame(r)             # raises IncompleteReadError at the end
"""

import asyncio
import json
import struct

HEADER = struct.Struct(">I")
# Set in a length prefix: the message goes on in the next frame (a large
# reply, such as the table of a big network).
MORE = 1 << 31


def encode(msg):
    """One frame: the length prefix and the JSON body."""
    body = json.dumps(msg).encode()
    return HEADER.pack(len(body)) + body


async def read_frame(reader):
    """The next message of a stream (one frame or continued ones), as a dict."""
    body = b""
    while True:
        (n,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        body += await reader.readexactly(n & ~MORE)
        if not n & MORE:
            return json.loads(body)


async def open_stream(sock, kind):
    """Opens a `watch` or `events` stream on the daemon at `sock`."""
    r, w = await asyncio.open_unix_connection(sock)
    w.write(encode({"request": kind}))
    await w.drain()
    return r, w


async def run_here(sock, cmd):
    """Runs `cmd` (e.g. "info") on the daemon at `sock` itself; its answer's
    body, or None when the daemon cannot answer (not up yet, an error)."""
    try:
        r, w = await asyncio.open_unix_connection(sock)
    except OSError:
        return None
    try:
        w.write(encode({"request": "run", "target": "local", "cmd": {"cmd": cmd}, "timeout_ms": 5000}))
        await w.drain()
        while True:
            msg = await read_frame(r)
            if msg.get("reply") == "done":
                return msg["answers"][0]["answer"]["body"]
            if msg.get("reply") == "error":
                return None
    except (OSError, asyncio.IncompleteReadError, KeyError, IndexError, ValueError):
        return None
    finally:
        w.close()
