"""Longer media operations on a call: record (voicemail) and echo; SIP INFO digits."""
from __future__ import annotations

import os
import re

from twisted.internet import defer

from ..media.audio import tone
from ..media.player import CatchUpBuffer
from ..media.recorder import WavRecorder
from .interface import CallEnded, RecordingResult

BEEP = tone(1000, 0.25)
ECHO_MAX_WAITING = 2  # frames kept at a read: the echo's added delay stays under 40 ms
ECHO_SETTLE_READS = 10  # a standing extra frame is dropped after 200 ms
_SIGNAL_RE = re.compile(r"^\s*Signal\s*=\s*(\S)", re.I | re.M)


def digit_from_info(content_type: str | None, body: bytes) -> str | None:
    """The digit in an INFO body: ``application/dtmf-relay`` (``Signal=5``) or
    ``application/dtmf`` (just ``5``)."""
    text = body.decode("utf-8", "replace")
    if content_type == "application/dtmf-relay":
        match = _SIGNAL_RE.search(text)
        return match.group(1).upper() if match else None
    if content_type == "application/dtmf":
        text = text.strip()
        if text.isdigit() and int(text) in (10, 11):
            return "*" if text == "10" else "#"
        return text.upper()[:1] if text else None
    return None


def record(call, path: str, max_seconds: float, finish_on_key: str, beep: bool) -> defer.Deferred:
    """Beep, then record the caller until ``finish_on_key``, ``max_seconds`` or hang-up."""
    if call.ended:
        return defer.fail(CallEnded(call.end_reason))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    result = defer.Deferred()
    state = {"done": False}

    def start(_=None):
        if call.ended:
            result.errback(CallEnded(call.end_reason))
            return
        call.flush_digits()
        recorder = WavRecorder(path, max_seconds, reactor=call.clock,
                               on_full=lambda: finish("max_length"))
        rtp = call._ensure_rtp()
        rtp.add_audio_listener(recorder)
        state["recorder"] = recorder
        timer = call.clock.callLater(max_seconds + 0.5, finish, "max_length")
        state["timer"] = timer

        def on_digit(digit):
            if finish_on_key and digit in finish_on_key:
                finish("key", digit)

        call.add_digit_listener(on_digit)
        state["listener"] = on_digit
        call.when_ended().addCallback(lambda _: finish("hangup"))

    def finish(how: str, digit: str | None = None):
        if state["done"] or "recorder" not in state:
            return
        state["done"] = True
        if state["timer"].active():
            state["timer"].cancel()
        call.remove_digit_listener(state["listener"])
        if digit is not None:
            call.flush_digits()
        recorder = state["recorder"]
        if call.rtp is not None:
            call.rtp.remove_audio_listener(recorder)
        d = recorder.close()
        d.addCallback(lambda seconds: RecordingResult(path, seconds, how, digit))
        d.chainDeferred(result)

    if beep:
        call.play_audio(BEEP).addCallbacks(start, result.errback)
    else:
        start()
    return result


class _EchoSource:
    """Plays back what the caller said.  Normally each packet goes straight back as it
    arrives (``RtpSession.forward_to`` the session itself: the caller's packet, our header;
    no added delay but the server's own turn).  What cannot be sent back as it came (a
    packet time other than the one we send, an RFC 4733 digit going back) takes the tick
    path: the frames go through a :class:`CatchUpBuffer`, so the added delay is one or two
    frames (at most 40 ms) and a stall (a burst of late packets, a late media clock) is caught
    up within 200 ms instead of adding its length to the echo for the rest of the call.  The
    frames are the caller's payloads cut into 20 ms (``EncodedFrame``, sent back as they came
    when the codec is the same); a caller's 30/40/60 ms packets bring two or three at once,
    which the buffer keeps (``burst``), so all of the caller's audio comes back, in the packet
    time it asked for.  It never ends by itself: ``echo`` stops it after its seconds."""

    def __init__(self, buffer: CatchUpBuffer) -> None:
        self.buffer = buffer
        self.frames = buffer.frames  # forwarding waits while these are queued (fastpath.py)

    def read_frame(self):
        return self.buffer.read_frame()


def echo(call, seconds: float) -> defer.Deferred:
    """The caller's audio (and RFC 4733 digits, when negotiated) sent straight back."""
    if call.ended:
        return defer.fail(CallEnded(call.end_reason))
    rtp = call._ensure_rtp()
    buffer = CatchUpBuffer(max_waiting=ECHO_MAX_WAITING, settle_reads=ECHO_SETTLE_READS)

    def listener(frame) -> None:  # an EncodedFrame: one 20 ms frame of the caller's packet
        buffer.push(frame, frame.burst)

    def digit_back(digit):
        if call.negotiated is not None and call.negotiated.telephone_event_pt is not None:
            rtp.send_dtmf(digit).addErrback(lambda f: None)

    rtp.add_payload_listener(listener)
    call.add_digit_listener(digit_back)
    source = _EchoSource(buffer)
    d = rtp.play(source)
    rtp.forward_to(rtp, source, listener)
    # on the session's clock: forwarded packets never read the source, so it cannot count
    timer = rtp.reactor.callLater(seconds, d.cancel)
    result = defer.Deferred()

    def cleanup(outcome):
        if timer.active():
            timer.cancel()
        rtp.stop_forwarding()
        rtp.remove_payload_listener(listener)
        call.remove_digit_listener(digit_back)
        call.flush_digits()
        if call.ended:
            result.errback(CallEnded(call.end_reason))
        else:
            result.callback(None)

    d.addBoth(cleanup)
    return result


def send_digits(call, digits: str) -> defer.Deferred:
    """Send digits as RFC 4733 events; ``,`` or ``w`` pauses 500 ms between groups."""
    rtp = call._ensure_rtp()
    groups = re.split(r"[,wW]", digits)
    d = defer.succeed(None)
    for index, group in enumerate(groups):
        if index:
            d.addCallback(lambda _: _sleep(call.clock, 0.5))
        if group:
            d.addCallback(lambda _, g=group: rtp.send_dtmf(g))
    return d


def _sleep(clock, seconds: float) -> defer.Deferred:
    d = defer.Deferred()
    clock.callLater(seconds, d.callback, None)
    return d


def record_until_end(call, path: str, max_seconds: float) -> None:
    """Keep the caller's audio in a WAV file written when the call ends (or fills up)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    recorder = WavRecorder(path, max_seconds, reactor=call.clock)
    rtp = call._ensure_rtp()
    rtp.add_audio_listener(recorder)

    def finish(_):
        rtp.remove_audio_listener(recorder)
        return recorder.close()

    call.when_ended().addCallback(finish)


def refer_target(request, our_host: str) -> str | None:
    """The Refer-To of a REFER as something CallControl can dial: the user part when it
    points at this server (an extension or number), else the whole SIP URI."""
    from ..sip.uri import SipSyntaxError, SipUri, parse_name_addr
    value = request.headers.get("Refer-To")
    if not value:
        return None
    try:
        uri = parse_name_addr(value).uri
    except SipSyntaxError:
        return None
    if not isinstance(uri, SipUri):
        return None
    if uri.user and uri.host_no_brackets in (our_host, "127.0.0.1", "localhost"):
        return uri.user_unescaped
    return str(uri.__class__(uri.scheme, uri.user, None, uri.host, uri.port, uri.params, None))


def sipfrag_status(body: bytes) -> int | None:
    """``SIP/2.0 200 OK`` in a message/sipfrag body -> 200."""
    match = re.match(rb"\s*SIP/2\.0\s+(\d{3})", body or b"")
    return int(match.group(1)) if match else None
