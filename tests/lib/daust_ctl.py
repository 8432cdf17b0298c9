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


def encode(msg):
    """One frame: the length prefix and the JSON body."""
    body = json.dumps(msg).encode()
    return HEADER.pack(len(body)) + body


async def read_frame(reader):
    """The next frame of a stream, as a dict."""
    (n,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return json.loads(await reader.readexactly(n))


async def open_stream(sock, kind):
    """Opens a `watch` or `events` stream on the daemon at `sock`."""
    r, w = await asyncio.open_unix_connection(sock)
    w.write(encode({"request": kind}))
    await w.drain()
    return r, w
