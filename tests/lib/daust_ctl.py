"""The control socket, for the Python harnesses (tests/fault/fault-test,
benches/bench-cluster): frames of a 4-byte big-endian length and one JSON
message, as `src/wire` defines them and `docs/protocol.md` describes.

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
