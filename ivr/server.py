"""``ivr serve``: wires the SIP stack, the media engine, the dialplans and HTTP together.

This is the only module that uses the global reactor; everything below takes it injected.
Shutdown: the first SIGINT/SIGTERM stops taking calls (new INVITEs get 503 with
Retry-After) and exits once the calls in progress have ended (or after
``--drain-timeout``); a second signal exits at once.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
from pathlib import Path

from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.web import resource, server as web_server

from .call.call import MediaContext
from .call.table import CallTable
from .dialplan.service import DialplanInvalid
from .call.inband import InbandDtmfService
from .logging import start_logging
from .rtp.clock import SERVER_PHASES, MediaClock
from .rtp.ports import PortAllocator
from .rtp.receiver import MediaReceiver
from .sip.timers import TimerConfig
from .sip.connection_limits import TcpLimits
from .sip.transport import SipTransport
from .sip.ua import UserAgent

log = Logger(namespace="ivr.server")


def primary_address() -> str:
    """This machine's outward address (no packet is sent), or 127.0.0.1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


class IvrServer:
    def __init__(self, reactor, *, sip=("127.0.0.1", 5060), http=("127.0.0.1", 8080),
                 rtp_ports=(10000, 20000), advertise=None, dialplans="dialplans",
                 prompts="prompts", data="data", timers=TimerConfig(), media_timeout=30.0,
                 drain_timeout=3600.0, tts=None, config="config",
                 tcp_limits=TcpLimits()) -> None:
        self.reactor = reactor
        self.sip_addr, self.http_addr = sip, http
        self.data = Path(data)
        self.drain_timeout = drain_timeout
        host = sip[0]
        self.advertise = advertise or (primary_address() if host in ("0.0.0.0", "") else host)
        # RTP is read by the media clock in batches, not by the reactor (rtp/receiver.py).
        self.media_receiver = MediaReceiver()
        self.media_clock = MediaClock(reactor, phases=SERVER_PHASES, receiver=self.media_receiver)
        self.ports = PortAllocator(rtp_ports[0], rtp_ports[1], reactor=reactor,
                                   receiver=self.media_receiver)
        self.inband = InbandDtmfService(self.media_clock)
        self.prompts_dir = Path(prompts)
        self.dialplans_dir = Path(dialplans)
        self.config_dir = Path(config)
        self.extensions = None
        self.registrar = None
        self.invite_auth = None
        self.throttle = None
        self._tts = tts
        self.media = MediaContext(reactor=reactor, media_clock=self.media_clock, ports=self.ports,
                                  advertise=self.advertise, bind_host=host if host else "0.0.0.0",
                                  inband=self.inband, media_timeout=media_timeout,
                                  recordings_dir=str(self.data / "recordings"),
                                  data_dir=str(self.data))
        self.transport = SipTransport(reactor, host, sip[1], self._on_sip,
                                      tcp_limits=tcp_limits)
        self.ua: UserAgent | None = None
        self.timers = timers
        self.calls = CallTable()  # every live leg; records its CDR and metrics when it ends
        self.dialplan = None  # set by start()
        self._stopping = False
        self._http_port = None

    # -- startup -----------------------------------------------------------------------
    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "recordings").mkdir(exist_ok=True)
        from .media.prompts import PromptCache
        from .media.tts import TtsEngine
        self.media.prompts = PromptCache(self.prompts_dir, self.data / "cache" / "prompts",
                                         reactor=self.reactor)
        self.media.tts = self._tts or TtsEngine(self.data / "cache" / "tts", reactor=self.reactor)
        from .dialplan.service import DialplanService
        self._start_store()
        self.dialplan = DialplanService(self.reactor, self.dialplans_dir, self.prompts_dir,
                                        self.media, calls=self.calls,
                                        webhook_secret=self._webhook_secret())
        self.dialplan.start()  # raises DialplanInvalid with file:line:col errors
        self._start_extensions()
        self.transport.start()
        self.invite_auth.local_port = self.transport.port  # known now if --sip said port 0
        self.ua = UserAgent(self.reactor, self.transport, self, self.advertise,
                            self.transport.port, self.timers)
        self.ua.registrar, self.ua.invite_auth = self.registrar, self.invite_auth
        self.ua.throttle = self.throttle
        self._start_records()
        from .api.limits import CappedRequest
        # Bodies over the API's cap are refused while they arrive, not after being
        # buffered to a temporary file.
        site = web_server.Site(self._http_root(), requestFactory=CappedRequest)
        site.noisy = False
        self._http_port = self.reactor.listenTCP(self.http_addr[1], site,
                                                 interface=self.http_addr[0])
        self.reactor.addSystemEventTrigger("before", "shutdown", self._cleanup)
        log.info("server ready: SIP udp+tcp {h}:{p}, HTTP {hh}:{hp}, RTP {lo}-{hi}, "
                 "advertising {adv}", h=self.transport.host, p=self.transport.port,
                 hh=self.http_addr[0], hp=self._http_port.getHost().port,
                 lo=self.ports.low, hi=self.ports.high, adv=self.advertise)

    def _on_sip(self, message, source) -> None:
        self.ua.receive(message, source)

    def _start_extensions(self) -> None:
        """Extensions, ring groups and trunks; the registrar and INVITE authentication."""
        from .config.extensions import ExtensionsConfig, load_extensions
        from .sip.auth import NonceManager
        from .sip.authenticator import InviteAuthenticator
        from .sip.registrar import DigestGate, LocationService, Registrar
        from .sip.throttle import Throttle
        path = self.config_dir / "extensions.yaml"
        if path.exists():
            config, errors = load_extensions(path)
            if errors:
                raise ConfigInvalid(errors, str(path))
        else:
            config = ExtensionsConfig()
            log.info("no {p}: no extensions, ring groups or trunks", p=path)
        self.extensions = config
        nonces = NonceManager(os.urandom(32))
        self.throttle = Throttle.from_settings(
            config.security, log=Logger(namespace="ivr.sip.throttle").info)
        location = LocationService()  # the gate never counts failures from registered addresses
        gate = DigestGate(config, nonces, self.throttle, location)
        self.registrar = Registrar(config, nonces, location, self.reactor,
                                   self.throttle, gate)
        self.invite_auth = InviteAuthenticator(config, nonces, self.reactor, self.throttle,
                                               local_hosts=self._own_addresses(), gate=gate,
                                               local_port=self.sip_addr[1])
        log.info("{n} extension(s), {g} ring group(s), {t} trunk(s)", n=len(config.extensions),
                 g=len(config.ring_groups), t=len(config.trunks))

    def _own_addresses(self) -> list[str]:
        """The addresses a phone may put in its From to name us: the advertised one and
        the one we are bound to (they differ behind NAT or with --advertise)."""
        bound = self.sip_addr[0]
        return [self.advertise] + ([bound] if bound not in ("", "0.0.0.0", "::") else [])

    def _start_store(self) -> None:
        """The database, CDRs and metrics: the call table records every leg's end."""
        from .api.metrics import Metrics
        from .store.cdr import CdrStore
        from .store.db import Database
        from .store.dnd import DndList
        self.db = Database(self.data / "ivr.sqlite3")
        self.cdrs = CdrStore(self.db)
        self.dnd = DndList(self.db)
        self.metrics = Metrics()
        self.metrics.track_active_calls(lambda: len(self.calls))
        self.media.metrics = self.metrics
        self.calls.cdrs, self.calls.metrics = self.cdrs, self.metrics

    def _start_records(self) -> None:
        """Webhooks and the call-control API."""
        from .api.app import make_api
        from .api.config import ApiConfig
        from .api.webhooks import WebhookDispatcher
        from .call.control import CallControl
        self.webhooks = WebhookDispatcher(self._webhook_secret(), self.reactor,
                                          metrics=self.metrics)
        self.control = CallControl(self)
        self.dialplan.telephony = self.control
        self.media.control = self.control
        if self.extensions.queues:
            from .call.queue_dialer import QueueDialer
            from .queue import QueueEngine
            dialer = QueueDialer(self.control)
            self.control.queues = QueueEngine(self.reactor, dialer,
                                              self.extensions.queues.values(),
                                              is_reachable=dialer.is_reachable,
                                              is_logged_in=dialer.is_logged_in)
        from .api.config_file import load_api_config
        config, errors = load_api_config(
            self.config_dir / "api.yaml",
            ApiConfig(recordings_dir=str(self.data / "recordings"),
                      default_region=self.dialplan.store.current.settings.default_region))
        if errors:
            raise ConfigInvalid(errors, str(self.config_dir / "api.yaml"))
        self.api = make_api(self.control, self.cdrs, self.webhooks, config, self.reactor,
                            dnd=self.dnd, metrics=self.metrics, throttle=self.throttle)
        self._late_ticks_seen = 0
        from twisted.internet.task import LoopingCall
        self._housekeeping = LoopingCall(self._housekeep)
        self._housekeeping.clock = self.reactor
        self._housekeeping.start(2.0, now=False)

    def _webhook_secret(self) -> bytes:
        """IVR_WEBHOOK_SECRET, or a random secret kept in --data so it survives restarts."""
        secret = os.environ.get("IVR_WEBHOOK_SECRET")
        if secret:
            return secret.encode()
        path = self.data / "webhook-secret"
        if not path.exists():
            path.write_text(os.urandom(32).hex())
            path.chmod(0o600)
        return path.read_text().strip().encode()

    def _housekeep(self) -> None:
        now = self.reactor.seconds()
        self.registrar.expire(now)
        self.throttle.expire(now)
        if self.control.queues is not None:
            self.control.queues.agent_changed()  # registrations come and go
        late = self.media_clock.late_ticks
        if late > self._late_ticks_seen:
            self.metrics.late_ticks(late - self._late_ticks_seen)
            self._late_ticks_seen = late

    def _http_root(self):
        return _Root(self.api, _Health(self))

    # -- calls -------------------------------------------------------------------------
    def incoming_call(self, session) -> None:
        self.dialplan.incoming_call(session)  # the leg joins self.calls before its plan runs

    # -- shutdown ----------------------------------------------------------------------
    def _cleanup(self):
        """Flush CDRs, stop the TTS worker and the dialplan watcher, drop the webhook
        clients' pooled connections."""
        from twisted.internet import defer
        closing = [self.dialplan.stop(), self.webhooks.close()]
        if self._housekeeping.running:
            self._housekeeping.stop()
        self.db.close()
        closing.append(self.media.tts.close())
        return defer.DeferredList([d for d in closing if d is not None], consumeErrors=True)

    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            self.reactor.callFromThread(self.request_stop, signum)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def request_stop(self, signum=None) -> None:
        if self._stopping:
            log.info("second signal: exiting now with {n} call(s) up", n=len(self.calls))
            self.reactor.stop()
            return
        self._stopping = True
        self.ua.draining = True
        log.info("draining: refusing new calls (503), waiting for {n} call(s) to end",
                 n=len(self.calls))
        self._deadline = self.reactor.seconds() + self.drain_timeout
        self._check_drained()

    def _check_drained(self) -> None:
        if not self.calls and self.ua.active_sessions() == 0:
            log.info("all calls ended; stopping")
            self.reactor.stop()
        elif self.reactor.seconds() >= self._deadline:
            log.info("drain timeout: stopping with {n} call(s) up", n=len(self.calls))
            for call in list(self.calls.values()):
                call.hangup("shutdown")
            self.reactor.callLater(0.5, self.reactor.stop)
        else:
            self.reactor.callLater(0.2, self._check_drained)


class _Root(resource.Resource):
    """``/health`` here; everything else (``/v1``, ``/metrics``, ``/demo``) to the API."""

    def __init__(self, api, health) -> None:
        super().__init__()
        self.api = api
        self.health = health

    def getChild(self, name, request):
        if name == b"health":
            return self.health
        request.postpath.insert(0, name)
        request.prepath.pop()
        return self.api


class _Health(resource.Resource):
    isLeaf = True

    def __init__(self, server: IvrServer) -> None:
        super().__init__()
        self.server = server

    def render(self, request):
        if request.method in (b"GET", b"HEAD"):
            return super().render(request)
        # twisted.web's own answer would be an HTML 405, or a 501 for a method it knows no
        # render_ for: a 5xx to a client's request (issue #13).  JSON like the API's.
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET, HEAD")
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"error": {"code": "method_not_allowed",
                                     "message": "method not allowed"}}).encode()

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        body = {"status": "draining" if self.server._stopping else "ok",
                "calls": len(self.server.calls),
                "late_ticks": self.server.media_clock.late_ticks}
        return json.dumps(body).encode()


def tcp_limits_from(args) -> TcpLimits:
    """The SIP/TCP limits given by ``ivr serve``'s flags."""
    return TcpLimits(max_connections=args.sip_tcp_max_connections,
                     max_per_address=args.sip_tcp_max_per_address,
                     message_timeout=args.sip_tcp_message_timeout)


class ConfigInvalid(DialplanInvalid):
    """Errors in a configuration file other than the dialplans; ``source`` names it, so
    the admin reads "errors in config/api.yaml", not "in the dialplans"."""

    def __init__(self, errors, source: str) -> None:
        super().__init__(errors)
        self.source = source


def raise_open_file_limit() -> tuple[int, int]:
    """Lift the soft open-file limit to the hard one (two RTP sockets per call, SIP/TCP
    connections, the database: 1024, a common default, holds only a few hundred calls).
    Returns the (old, new) soft limit."""
    import resource
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return soft, target
        return soft, soft
    except (OSError, ValueError):
        return -1, -1


def run_server(args) -> int:
    from twisted.internet import reactor

    raise_open_file_limit()
    start_logging()
    srv = IvrServer(reactor, sip=args.sip, http=args.http, rtp_ports=args.rtp_ports,
                    advertise=args.advertise, dialplans=args.dialplans, prompts=args.prompts,
                    data=args.data, timers=TimerConfig(t1=args.t1),
                    media_timeout=args.media_timeout, drain_timeout=args.drain_timeout,
                    config=args.config, tcp_limits=tcp_limits_from(args))
    try:
        srv.start()
    except DialplanInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        source = getattr(exc, "source", None) or "the dialplans"
        print(f"ivr: not starting: {len(exc.errors)} error(s) in {source}", file=sys.stderr)
        return 2
    except (OSError, CannotListenError) as exc:
        print(f"ivr: cannot start: {exc}", file=sys.stderr)
        return 1
    # Everything loaded so far (modules, dialplans, prompts, config) lives as long as the
    # process: freezing it takes it out of the cyclic collector's scans, so a full collection
    # walks only the objects of the calls in progress.  (gen2 pauses of 40-100 ms with 200
    # calls up stopped every stream's packets for that long.)
    gc.collect()
    gc.freeze()
    # Twisted's own handlers stay (SIGCHLD reaps the TTS worker); ours replace its
    # SIGINT/SIGTERM ones once the reactor runs.
    reactor.callWhenRunning(srv.install_signal_handlers)
    reactor.run()
    return 0
