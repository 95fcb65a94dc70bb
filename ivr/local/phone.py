"""``ivr phone``: one outgoing call from this terminal (the softphone's call logic).

Signalling is the server's own SIP stack (UserAgent + SipTransport) used as a UAC; media is
an RtpSession on its own MediaClock. Audio in is the microphone (a MicSource fed by the
sound card) or a WAV file; audio out goes through a JitterBuffer to the speaker and/or into
a recording. Keys become RFC 4733 events; ``q``, ``--duration`` or the far end's BYE end
the call. Only the entry point (cli_phone) touches the global reactor.
"""
from __future__ import annotations

import random
import sys
from enum import Enum
from typing import Callable

import numpy as np
from twisted.internet import defer

from ..media.player import PcmSource
from ..rtp.session import RtpSession
from ..sdp import OfferAnswerError, SdpError, make_offer, make_reanswer, negotiate_answer, parse_sdp, serialize_sdp
from ..sip.transport import Destination, SipTransport
from ..sip.ua import UserAgent
from .keyboard import KeyEvent, KeyKind

__all__ = ["PhoneState", "Softphone", "CallResult"]

BYE_GRACE = 0.3  # seconds to let our BYE's 200 OK arrive before closing the socket


class PhoneState(Enum):
    IDLE = "idle"
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class CallResult:
    def __init__(self) -> None:
        self.answered = False
        self.status: int | None = None   # final failure status, if the call failed
        self.reason = ""
        self.digits_sent = ""
        self.heard: list[np.ndarray] = []

    @property
    def exit_code(self) -> int:
        return 0 if self.answered else 1

    def heard_audio(self) -> np.ndarray:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, dtype=np.int16)


class Softphone:
    def __init__(self, reactor, media_clock, *, target: str, server: tuple[str, int], local_host: str,
                 mic=None, input_audio: np.ndarray | None = None, jitter=None,
                 duration: float | None = None, digits: str = "", digit_delay: float = 1.0,
                 codecs=("PCMU", "PCMA"), answer_timeout: float | None = 60.0, show: Callable[[str], None] | None = None) -> None:
        self.reactor = reactor
        self.media_clock = media_clock
        self.target = target
        self.server = server
        self.local_host = local_host
        self.mic = mic                  # a MicSource or None
        self.input_audio = input_audio  # 8 kHz int16 played instead of the microphone
        self.jitter = jitter            # JitterBuffer for the speaker, or None
        self.duration = duration
        self.digits = digits
        self.digit_delay = digit_delay
        self.codecs = codecs
        self.answer_timeout = answer_timeout
        self.show = show or (lambda text: print(text, flush=True))
        self.state = PhoneState.IDLE
        self.result = CallResult()
        self.done = defer.Deferred()    # fires with the CallResult
        self.transport = None
        self.ua = None
        self.rtp = None
        self.session = None
        self._offer = None
        self._local_sdp = None
        self._timers: list = []
        self._finished = False

    # -- start / stop ------------------------------------------------------------------
    def call(self) -> defer.Deferred:
        self.transport = SipTransport(self.reactor, self.local_host, 0, self._on_sip)
        self.transport.start()
        self.ua = UserAgent(self.reactor, self.transport, self, self.local_host, self.transport.port)
        self.rtp = RtpSession(self.reactor, self.media_clock, self.local_host)
        self._offer = make_offer(self.local_host, self.rtp.local_port, self.codecs,
                                 session_id=random.randrange(1, 2**31), version=1)
        self._local_sdp = self._offer
        self._set_state(PhoneState.CALLING, f"calling {self.target}")
        dest = Destination("UDP", self.server[0], self.server[1])
        self.session = self.ua.invite(self.target, self, serialize_sdp(self._offer), from_user="phone",
                                      from_display="ivr phone", dest=dest)
        if self.answer_timeout:
            self._later(self.answer_timeout, self._no_answer)
        return self.done

    def _no_answer(self) -> None:
        if self.state in (PhoneState.CALLING, PhoneState.RINGING):
            self.hangup(f"no answer in {self.answer_timeout:g} s")

    def _on_sip(self, message, source) -> None:
        self.ua.receive(message, source)

    def hangup(self, why: str = "hung up") -> None:
        if self._finished or self.session is None:
            return
        self.show(f"hanging up ({why})")
        self.session.bye(reason="local-bye")  # CANCEL when not answered yet
        if self.state is PhoneState.ANSWERED:
            self._finish("local hangup", delay=BYE_GRACE)
        else:
            self.reactor.callLater(5.0, self._finish, "cancelled (no answer to the CANCEL)")

    def _finish(self, reason: str, delay: float = 0.0) -> None:
        if self._finished:
            return
        self._finished = True
        self._set_state(PhoneState.ENDED, f"call ended: {reason}")
        for t in self._timers:
            if t.active():
                t.cancel()
        if self.rtp is not None:
            self.rtp.close()

        def close():
            d = self.transport.stop() if self.transport is not None else defer.succeed(None)
            d.addBoth(lambda _: self.done.callback(self.result))
        if delay:
            self.reactor.callLater(delay, close)
        else:
            close()

    def _later(self, seconds, fn, *args):
        t = self.reactor.callLater(seconds, fn, *args)
        self._timers.append(t)
        return t

    def _set_state(self, state: PhoneState, text: str) -> None:
        self.state = state
        self.show(f"[{state.value}] {text}")

    # -- keys --------------------------------------------------------------------------
    def on_key(self, event: KeyEvent) -> None:
        if event.kind is KeyKind.HANGUP:
            self.hangup("q pressed")
        elif self.state is PhoneState.ANSWERED:
            self.send_digits(event.digit)
        else:
            self.show(f"digit {event.digit} ignored: the call is {self.state.value}")

    def send_digits(self, digits: str) -> None:
        if self._finished:
            return
        for digit in digits:
            d = self.rtp.send_dtmf(digit)
            d.addCallbacks(self._digit_sent, self._digit_failed, callbackArgs=(digit,),
                           errbackArgs=(digit,))

    def _digit_sent(self, _, digit: str) -> None:
        self.result.digits_sent += digit
        self.show(f"sent digit {digit}  (digits so far: {self.result.digits_sent})")

    def _digit_failed(self, failure, digit: str) -> None:
        self.show(f"digit {digit} not sent: {failure.getErrorMessage() or failure.type.__name__}")

    # -- audio -------------------------------------------------------------------------
    def _heard(self, frame: np.ndarray) -> None:
        self.result.heard.append(frame.copy())
        if self.jitter is not None:
            self.jitter.push(frame)

    def _start_media(self, negotiated) -> None:
        rtp = self.rtp
        rtp.set_remote(negotiated.remote_ip, negotiated.remote_port, negotiated.payload_type,
                       negotiated.codec, negotiated.telephone_event_pt)
        rtp.set_direction(negotiated.direction.value)
        rtp.add_audio_listener(self._heard)
        rtp.on_dtmf(lambda digit, source=None: self.show(f"received digit {digit}"))
        if self.input_audio is not None:
            rtp.play(PcmSource(self.input_audio)).addErrback(lambda f: None)
        elif self.mic is not None:
            rtp.play(self.mic).addErrback(lambda f: None)

    # -- Application (incoming calls) --------------------------------------------------
    def incoming_call(self, session) -> None:
        session.reject(486, "Busy Here")

    # -- SessionListener ---------------------------------------------------------------
    def on_progress(self, session, response) -> None:
        if response.status in (180, 183) and self.state is PhoneState.CALLING:
            self._set_state(PhoneState.RINGING, f"{response.status} {response.reason}")

    def on_answered(self, session, response) -> bytes | None:
        if self.state is PhoneState.ANSWERED:  # a second 2xx (forking): keep the first
            return None
        try:
            negotiated = negotiate_answer(self._offer, parse_sdp(response.body))
        except (SdpError, OfferAnswerError, ValueError) as e:
            self._set_state(PhoneState.ANSWERED, f"{response.status} {response.reason}")
            self.show(f"bad SDP answer ({e}); hanging up")
            self.reactor.callLater(0, self.hangup, "unusable SDP answer")
            self.result.answered = True
            return None
        self.result.answered = True
        self._start_media(negotiated)
        dtmf = "RFC 4733 DTMF" if negotiated.telephone_event_pt is not None else "no DTMF"
        self._set_state(PhoneState.ANSWERED, f"{response.status} {response.reason}: {negotiated.codec}, "
                        f"{dtmf}, media {negotiated.remote_ip}:{negotiated.remote_port}")
        if self.duration is not None:
            self._later(self.duration, self.hangup, f"--duration {self.duration:g} s")
        if self.digits:
            self._later(self.digit_delay, self.send_digits, self.digits)
        return None

    def on_failed(self, session, status: int, reason: str) -> None:
        self.result.status, self.result.reason = status, reason
        self._finish(f"{status} {reason}")

    def on_terminated(self, session, reason: str) -> None:
        self.result.reason = reason
        if reason == "remote-bye":
            self._finish("the far end hung up")
        elif not self._finished and reason != "local-bye":
            self._finish(reason)

    def on_confirmed(self, session, ack) -> None:
        pass

    def on_offer(self, session, sdp: bytes | None) -> bytes:
        """A re-INVITE/UPDATE (hold, unhold, new address): answer and follow it."""
        from ..sip.session import OfferRejected
        if not sdp:
            return serialize_sdp(self._local_sdp)
        try:
            answer, negotiated = make_reanswer(parse_sdp(sdp), self._local_sdp, self.local_host,
                                               self.rtp.local_port, self.codecs)
        except (SdpError, OfferAnswerError, ValueError) as e:
            raise OfferRejected(str(e)) from None
        self._local_sdp = answer
        self.rtp.set_remote(negotiated.remote_ip, negotiated.remote_port, negotiated.payload_type,
                            negotiated.codec, negotiated.telephone_event_pt)
        self.rtp.set_direction(negotiated.direction.value)
        self.show("the far end put the call on hold" if negotiated.on_hold else "media updated")
        return serialize_sdp(answer)

    def on_answer(self, session, sdp: bytes) -> None:
        pass

    def on_info(self, session, request) -> int:
        body = request.body.decode("utf-8", "replace").strip()
        if body:
            self.show(f"INFO from the far end: {body.splitlines()[0][:60]}")
        return 200


def print_to(stream=None) -> Callable[[str], None]:
    stream = stream or sys.stdout

    def show(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()
    return show
