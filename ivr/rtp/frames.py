"""Received audio as the session hands it on: ``EncodedFrame`` (a payload, undecoded) and the
listener call that never lets one failing callback stop the others."""
from __future__ import annotations

import numpy as np
from twisted.python import log

from ..media import g711

__all__ = ["EncodedFrame", "PAD"]

PAD = {g711.ulaw_decode: g711.ULAW_SILENCE, g711.alaw_decode: g711.ALAW_SILENCE}  # silence octet per decoder


class EncodedFrame:
    """A received audio payload passed on undecoded (payload listeners; a bridge relays it).

    ``decoder`` is the payload's G.711 decoder.  A playback source may return one from
    ``read_frame``: a session that sends the same codec sends ``payload`` as it is (no
    decode + encode), any other decodes it with :meth:`pcm`.  Received payloads are always
    one 20 ms frame; ``burst`` is how many frames the packet it came from could complete
    (1 for 10/20 ms packets, 2 for 30/40 ms, 3 for 60 ms): a buffer that holds "one or two
    frames" must hold ``burst`` more less one, or it drops the rest of a long packet.
    """

    __slots__ = ("payload", "decoder", "burst")

    def __init__(self, payload: bytes, decoder, burst: int = 1) -> None:
        self.payload = payload
        self.decoder = decoder
        self.burst = burst

    def pcm(self) -> np.ndarray:
        return self.decoder(self.payload)


def _notify(callbacks: list, *args, **kwargs) -> None:
    """Call each callback (a copy of the list: one may remove itself); a failing one is logged
    and the rest still run."""
    for cb in tuple(callbacks):
        try:
            cb(*args, **kwargs)
        except Exception:
            log.err(None, f"RtpSession: callback {cb!r} failed")
