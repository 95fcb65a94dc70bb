"""The framing both worker pools (TTS, speech) speak over a child's stdin/stdout.

A frame is a 4-byte big-endian header length, a JSON header holding ``nbytes``, then
``nbytes`` of payload.  Pure: bytes in, frames out; no Twisted, no I/O."""
from __future__ import annotations

import json
import struct


class FrameError(ValueError):
    """The stream is not frames (a worker that wrote garbage)."""


def frame(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(dict(header, nbytes=len(payload))).encode()
    return struct.pack(">I", len(head)) + head + payload


class FrameReader:
    """Collects bytes as they arrive and hands out whole frames."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes):
        """Yields the frames ``data`` completes, in order (consume it whole); raises
        FrameError, with the buffer emptied, where garbage starts."""
        self.buffer += data
        while len(self.buffer) >= 4:
            hlen = struct.unpack(">I", self.buffer[:4])[0]
            if len(self.buffer) < 4 + hlen:
                break
            try:
                header = json.loads(self.buffer[4:4 + hlen])
                end = 4 + hlen + int(header["nbytes"])
            except (ValueError, KeyError, TypeError) as e:
                self.buffer = b""
                raise FrameError(str(e)) from None
            if len(self.buffer) < end:
                break
            payload, self.buffer = self.buffer[4 + hlen:end], self.buffer[end:]
            yield header, payload
