"""PJSIP as a real peer for the interop tests: PJSUA2 (``pjsua2-python``) in a child process.

The child (``python -m tests.interop.pjsip_peer '<json options>'``) runs one PJSUA2 endpoint on
127.0.0.1 with the null sound device, reads JSON commands on stdin and writes JSON events on
stdout, one a line; PJSIP's own log (every SIP message) goes to ``pjsip.log``.  A crash of the
C library ends the child, never pytest.  ``Pjsua`` is the test side: it starts the child and
waits for its events with timeouts.
"""
from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- test side

class Pjsua:
    """One PJSUA2 user agent: ``account`` registers (or not), ``call`` dials, and incoming
    calls are answered at once.  Every call plays ``play`` (a WAV, looped) into the call and
    records what it hears into ``<dir>/rec-<n>.wav``.  ``ring`` seconds of 180 Ringing come
    before an incoming call is answered; ``prack`` and ``timer`` are PJSUA's 100rel and session
    timer use ("optional", "mandatory"/"required", ...)."""

    def __init__(self, tmp_path: Path, name: str = "pjsua", transport: str = "udp",
                 play: Path | None = None, prack: str = "optional", timer: str = "optional",
                 session_expires: int = 1800, ring: float = 0):
        try:
            import pjsua2  # noqa: F401
        except ImportError as e:  # never skipped: CI installs it
            raise AssertionError("pjsua2 is not installed: run ./scripts/setup "
                                 "(pip install -e '.[test]')") from e
        self.name = name
        self.dir = tmp_path / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "pjsip.log"
        self.options = {"dir": str(self.dir), "transport": transport,
                        "play": str(play) if play else None, "prack": prack, "timer": timer,
                        "session_expires": session_expires, "ring": ring}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, timeout: float = 15.0) -> "Pjsua":
        self._stderr = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.interop.pjsip_peer", json.dumps(self.options)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self.wait_for("ready", timeout=timeout)["port"]
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "exited"})
            self._cond.notify_all()

    def send(self, cmd: str, **args) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.diagnostics()
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def diagnostics(self) -> str:
        err = (self.dir / "stderr.log").read_text(errors="replace")
        return (f"{self.name}: events {self.events[-30:]}\nstderr:\n{err[-2000:]}\n"
                f"pjsip.log:\n{self.log()[-4000:]}")

    def wait_for(self, event: str, timeout: float = 10.0, count: int = 1, **match) -> dict:
        """The ``count``-th event named ``event`` whose fields equal ``match``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if e.get("event") == event
                         and all(e.get(k) == v for k, v in match.items())]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.events and self.events[-1].get("event") == "exited"):
                    raise AssertionError(f"no {event} {match} within {timeout}s\n"
                                         + self.diagnostics())
                self._cond.wait(min(left, 0.5))

    # -- commands
    def account(self, user: str, server_port: int, password: str | None = None,
                register: bool = True, domain: str = "127.0.0.1") -> None:
        self.send("account", user=user, password=password, server_port=server_port,
                  register=register, domain=domain)

    def registered(self, code: int = 200, timeout: float = 10.0) -> dict:
        event = self.wait_for("reg_state", timeout=timeout)
        assert event["code"] == code, self.diagnostics()
        return event

    def call(self, uri: str) -> None:
        self.send("call", uri=uri)

    def confirmed(self, timeout: float = 10.0) -> dict:
        return self.wait_for("call_state", timeout=timeout, state="CONFIRMED")

    def disconnected(self, timeout: float = 10.0) -> dict:
        return self.wait_for("call_state", timeout=timeout, state="DISCONNECTED")

    def dtmf(self, digits: str, method: str = "rfc4733") -> None:
        self.send("dtmf", digits=digits, method=method)

    def hold(self) -> None:
        self.send("hold")

    def unhold(self) -> None:
        self.send("unhold")

    def hangup(self) -> None:
        self.send("hangup")

    def recording(self, n: int = 1) -> Path:
        return self.dir / f"rec-{n}.wav"

    def sip_messages(self) -> list[str]:
        """Every SIP message PJSIP sent or received, as text after a first line "TX" or "RX"."""
        out, current = [], None
        for line in self.log().splitlines():
            mark = re.search(r"[ .](TX|RX) \d+ bytes ", line)
            if mark:
                current = [mark.group(1)]
                out.append(current)
            elif current is not None:
                if line.startswith("--end msg--"):
                    current = None
                else:
                    current.append(line)
        return ["\n".join(m) for m in out]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


# --------------------------------------------------------------------------- child side

def _child(options: dict) -> None:  # pragma: no cover - runs in the subprocess
    import pjsua2 as pj

    out = sys.stdout

    def emit(event: str, **fields) -> None:
        out.write(json.dumps({"event": event, **fields}) + "\n")
        out.flush()

    workdir = Path(options["dir"])
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "PJSUA2 interop"
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 5          # the "console" is FlushingWriter below
    log_file = open(workdir / "pjsip.log", "a", buffering=1, errors="replace")

    class FlushingWriter(pj.LogWriter):     # PJSIP's own log file is written late
        def write(self, entry):
            log_file.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
            log_file.flush()

    writer = FlushingWriter()
    cfg.logConfig.writer = writer
    cfg.medConfig.noVad = True
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    tcp = options["transport"] == "tcp"
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_TCP if tcp else pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():          # G.711 only: what the server speaks
        keep = codec.codecId.startswith(("PCMU/", "PCMA/"))
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/") else
                            (128 if keep else 0))
    port = ep.transportGetInfo(tid).localName.rsplit(":", 1)[1]

    state = {"account": None, "calls": [], "recordings": 0, "quit": False, "to_answer": [],
             "closing": []}
    keep_alive: list = []                  # players and recorders live as long as the endpoint
    suffix = ";transport=tcp" if tcp else ""

    class PeerCall(pj.Call):
        def __init__(self, acc, call_id=pj.PJSUA_INVALID_ID):
            super().__init__(acc, call_id)
            self.recorder = None
            self.player = None

        def onCallState(self, prm):
            info = self.getInfo()
            emit("call_state", state=info.stateText, code=int(info.lastStatusCode),
                 reason=info.lastReason, call_id=info.callIdString)
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                if self.recorder is not None:   # closing the recorder writes the WAV header
                    keep_alive.remove(self.recorder)
                    self.recorder = None
                    state["closing"].append((time.monotonic() + 3,
                                             workdir / f"rec-{state['recordings']}.wav"))

        def onCallMediaState(self, prm):
            info = self.getInfo()
            for i, media in enumerate(info.media):
                if media.type != pj.PJMEDIA_TYPE_AUDIO:
                    continue
                emit("media_state", status=int(media.status), dir=int(media.dir))
                if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                    continue
                aud = self.getAudioMedia(i)
                if self.recorder is None:
                    state["recordings"] += 1
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(str(workdir / f"rec-{state['recordings']}.wav"))
                    keep_alive.append(self.recorder)
                    if options["play"]:
                        self.player = pj.AudioMediaPlayer()
                        self.player.createPlayer(options["play"])
                        keep_alive.append(self.player)
                # (re)connect: a re-INVITE may give the call a new conference port
                aud.startTransmit(self.recorder)
                if self.player is not None:
                    self.player.startTransmit(aud)

        def onDtmfDigit(self, prm):
            emit("dtmf", digit=prm.digit)

    class PeerAccount(pj.Account):
        def onRegState(self, prm):
            emit("reg_state", code=int(prm.code), reason=prm.reason)

        def onIncomingCall(self, prm):
            call = PeerCall(self, prm.callId)
            state["calls"].append(call)
            emit("incoming")
            op = pj.CallOpParam()
            if options["ring"]:       # 180 Ringing first; the main loop answers later
                op.statusCode = 180
                call.answer(op)
                state["to_answer"].append((time.monotonic() + options["ring"], call))
            else:
                op.statusCode = 200
                call.answer(op)

    def current_call():
        calls = [c for c in state["calls"] if c.isActive()]
        if not calls:
            raise RuntimeError("no active call")
        return calls[-1]

    def do(command: dict) -> None:
        cmd = command["cmd"]
        if cmd == "account":
            server = f"127.0.0.1:{command['server_port']}"
            acfg = pj.AccountConfig()
            acfg.idUri = f"sip:{command['user']}@{command['domain']}"   # no port, as PJSIP does
            acfg.regConfig.registrarUri = f"sip:{server}{suffix}"
            acfg.regConfig.registerOnAdd = bool(command["register"])
            acfg.regConfig.timeoutSec = 300
            acfg.sipConfig.transportId = tid
            if command.get("password"):
                acfg.sipConfig.authCreds.append(
                    pj.AuthCredInfo("digest", "*", command["user"], 0, command["password"]))
            acfg.callConfig.prackUse = {"optional": pj.PJSUA_100REL_OPTIONAL,
                                        "mandatory": pj.PJSUA_100REL_MANDATORY,
                                        "off": pj.PJSUA_100REL_NOT_USED}[options["prack"]]
            acfg.callConfig.timerUse = {"optional": pj.PJSUA_SIP_TIMER_OPTIONAL,
                                        "required": pj.PJSUA_SIP_TIMER_REQUIRED,
                                        "always": pj.PJSUA_SIP_TIMER_ALWAYS,
                                        "off": pj.PJSUA_SIP_TIMER_INACTIVE}[options["timer"]]
            acfg.callConfig.timerSessExpiresSec = int(options["session_expires"])
            acfg.callConfig.timerMinSESec = 90
            acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
            acfg.natConfig.contactRewriteUse = 0
            acfg.natConfig.viaRewriteUse = 0
            acfg.natConfig.sdpNatRewriteUse = 0
            acc = PeerAccount()
            acc.create(acfg)
            state["account"] = acc
        elif cmd == "call":
            call = PeerCall(state["account"])
            state["calls"].append(call)
            op = pj.CallOpParam(True)
            call.makeCall(command["uri"] + suffix, op)
        elif cmd == "dtmf":
            call = current_call()
            if command["method"] == "info":
                prm = pj.CallSendDtmfParam()
                prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
                prm.digits = command["digits"]
                call.sendDtmf(prm)
            else:
                call.dialDtmf(command["digits"])
        elif cmd == "hold":
            current_call().setHold(pj.CallOpParam(True))
        elif cmd == "unhold":
            op = pj.CallOpParam(True)
            op.opt.flag = pj.PJSUA_CALL_UNHOLD
            current_call().reinvite(op)
        elif cmd == "hangup":
            op = pj.CallOpParam()
            op.statusCode = 603
            current_call().hangup(op)
        elif cmd == "quit":
            state["quit"] = True
        emit("done", cmd=cmd)

    emit("ready", port=int(port))
    stdin = sys.stdin.fileno()
    buffer = b""
    while not state["quit"]:
        ep.libHandleEvents(10)
        for due, path in list(state["closing"]):
            # the conference bridge closes the recorder a tick later, and only then are the
            # RIFF sizes in the header filled in
            with open(path, "rb") as f:
                riff = f.read(8)
            if time.monotonic() >= due or (len(riff) == 8 and int.from_bytes(riff[4:], "little")):
                state["closing"].remove((due, path))
                emit("recording_closed", path=str(path))
        for due, call in list(state["to_answer"]):
            if time.monotonic() >= due:
                state["to_answer"].remove((due, call))
                if call.isActive():
                    op = pj.CallOpParam()
                    op.statusCode = 200
                    call.answer(op)
        if select.select([stdin], [], [], 0)[0]:
            chunk = os.read(stdin, 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    do(json.loads(line))
                except Exception as e:  # a refused command is an event, not a crash
                    emit("error", cmd=line.decode(errors="replace"), error=repr(e))
    ep.hangupAllCalls()
    for _ in range(50):
        ep.libHandleEvents(10)
    keep_alive.clear()
    state["calls"].clear()
    ep.libDestroy()


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
