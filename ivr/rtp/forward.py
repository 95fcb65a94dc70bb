"""Relay on arrival: the header of a forwarded RTP packet, rewritten for the outgoing leg.  Pure.

A bridge (or the echo line) whose two legs use the same codec and packet time does not need
the samples: a received packet can leave on the other leg's socket in the same reactor turn,
with the outgoing leg's header, instead of waiting up to a media-clock period for the tick.
The outgoing leg's packets then come from two places, interleaved: forwarded packets, and
the ones its tick sends itself (RFC 4733 events, silence or transcoded audio when the
forwarded stream stops or cannot be forwarded).  A receiver must see ONE stream:

* **SSRC**: always the outgoing leg's own (the session puts it in).
* **Sequence**: one counter, the session's own, +1 per packet whoever sends it.  A gap in
  the incoming sequence is not copied (the timestamp carries it), so there is nothing to
  reconcile when the two senders alternate.
* **Timestamp**: within a *segment* (packets forwarded back to back from one incoming SSRC,
  nothing sent by the tick in between) the outgoing timestamp is the incoming one plus a
  fixed offset, so the incoming spacing (20 ms, a silence-suppression jump) is kept exactly.
  A segment starts (is *anchored*) at the later of "just after the last packet forwarded"
  and "now" on the session's media clock, so the timestamp never runs backwards and a pause
  shows as the time that passed.  A new incoming SSRC (a re-INVITE, a transfer that put a
  new peer on the other leg), something sent by the tick in between, or an implausible
  incoming jump (over ``MAX_STEP``) anchors a new segment.
* **Marker**: the incoming marker within a segment; set on the first packet of a segment
  whose timestamp does not follow on from the last packet (a new talk spurt), and when the
  session asks for it (after hold).
* A packet older than the last one forwarded in its segment (reordered, late) is dropped:
  sent, it would carry an earlier timestamp after a later one.

When the tick takes over again (:meth:`resume`), its timestamp continues from the end of the
last forwarded packet (or from its own clock, when that is later by more than a packet).

Everything here is arithmetic on integers: the session passes its own sequence number and
its clock's timestamp in, and gets the outgoing timestamp and marker out.
"""
from __future__ import annotations

__all__ = ["HeaderRewriter", "MAX_STEP", "later"]

_MASK32 = 0xFFFFFFFF
_HALF32 = 0x80000000
MAX_STEP = 8000 * 10  # an incoming jump over 10 s (8 kHz) is a restarted stream, not a pause


def later(a: int, b: int) -> int:
    """The later of two 32-bit RTP timestamps (serial number arithmetic, RFC 1982)."""
    return a if 0 < (a - b) & _MASK32 < _HALF32 else b


class HeaderRewriter:
    """The outgoing leg's timestamp state for forwarded packets (one per outgoing session)."""

    __slots__ = ("_open", "_in_ssrc", "_in_ts", "_offset", "_seq_after", "_end")

    def __init__(self) -> None:
        self._open = False  # a segment is open: the next packet may keep its offset
        self._in_ssrc = None
        self._in_ts = 0  # incoming timestamp of the last packet forwarded
        self._offset = 0  # outgoing - incoming timestamp in the open segment
        self._seq_after = -1  # the session's sequence number just after our last packet
        self._end: int | None = None  # outgoing timestamp just after our last packet

    @property
    def end(self) -> int | None:
        """Outgoing timestamp just after the last packet forwarded (None before any)."""
        return self._end

    def rewrite(self, in_ssrc: int, in_ts: int, in_marker: bool, samples: int, seq: int,
                now_ts: int, marker_next: bool = False):
        """The outgoing ``(timestamp, marker)`` of a received packet of ``samples`` samples,
        or None to drop it.  ``seq``: the sequence number the session will give it;
        ``now_ts``: the timestamp the session's own next packet would carry (its clock);
        ``marker_next``: the session wants a marker on its next packet (after hold)."""
        if self._open and seq == self._seq_after and in_ssrc == self._in_ssrc:
            step = (in_ts - self._in_ts) & _MASK32
            if step == 0 or step >= _HALF32:
                return None  # a duplicate or a reordered (older) packet
            if step <= MAX_STEP:
                self._in_ts = in_ts
                ts = (in_ts + self._offset) & _MASK32
                self._end = (ts + samples) & _MASK32
                self._seq_after = (seq + 1) & 0xFFFF
                return ts, bool(in_marker or marker_next)
        # anchor a new segment
        end = self._end
        start = now_ts if end is None else later(end, now_ts)
        marker = bool(in_marker or marker_next or (end is not None and start != end))
        self._open = True
        self._in_ssrc, self._in_ts = in_ssrc, in_ts
        self._offset = (start - in_ts) & _MASK32
        self._end = (start + samples) & _MASK32
        self._seq_after = (seq + 1) & 0xFFFF
        return start, marker

    def resume(self, ts: int, tolerance: int = 0, seq: int | None = None) -> int:
        """The timestamp the tick should send next, given what its clock says (``ts``) and
        the session's next sequence number (``seq``).  When the last packet sent was ours
        and ``ts`` is within ``tolerance`` samples of its end (either way: the tick takes
        over where the forwarded packets left off), exactly that end, so the stream is
        contiguous; else the later of the two (a pause shows as the time that passed; never
        before anything sent).  Closes the segment."""
        self._open = False
        end = self._end
        if end is None:
            return ts
        diff = (ts - end) & _MASK32
        if (seq is None or seq == self._seq_after) and (
                diff <= tolerance or diff >= (1 << 32) - tolerance):
            return end
        return later(end, ts)

    def close(self) -> None:
        """The next packet starts a new segment (forwarding was switched off or on)."""
        self._open = False
