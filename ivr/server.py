"""``ivr serve``: wires the SIP stack, the media engine, the dialplans and HTTP together.

This is the only module that uses the global reactor; everything below takes it injected.
Shutdown: the first SIGINT/SIGTERM stops taking calls (new INVITEs get 503 with
Retry-After) and exits once the calls in progress have ended (or after
``--drain-timeout``); a second signal exits at once.
"""
from __future__ import annotations

import gc
import os
import signal
import socket
import sys
from pathlib import Path

from datetime import datetime, timezone

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import server as web_server

from .api.app import make_api
from .api.config import ApiConfig
from .api.config_file import load_api_config
from .api.limits import CappedRequest
from .api.metrics import Metrics
from .api.webhooks import WebhookDispatcher
from .call.call import MediaContext
from .call.control import CallControl
from .call.node import default_node_id
from .call.inband import InbandDtmfService
from .call.media_relay import RtpengineRelay
from .call.queue_dialer import QueueDialer
from .call.table import CallTable
from .call.visitors import VisitorGate, VisitorLimits
from .call.webrtc import DtlsCertificate
from .config.extensions import ExtensionsConfig, load_extensions
from .dialplan.service import DialplanInvalid, DialplanService
from .dialplan.files import DialplanFiles
from .logging import start_logging
from .media.prompts import PromptCache
from .media.asr_worker import RecognizerPool
from .media.tts import TtsEngine
from .queue import QueueEngine
from .rtp.clock import SERVER_PHASES, MediaClock
from .rtp.ports import PortAllocator
from .rtp.receiver import MediaReceiver
from .rtp.rtpengine_ng import NgClient
from .sip.connection_limits import TcpLimits
from .sip.timers import TimerConfig
from .sip.tls import TlsFileError, server_identity, server_options, tls_settings
from .sip.transport import SipTransport
from .sip.websocket import SipWebSocketResource
from .sip.ua import UserAgent
from .store.cdr import CdrStore
from .store.backend import (DatabaseSpecError, describe, load_database_file, open_database,
                            parse_database)
from .store.db import StoreUnavailable
from .store.dnd import DndList
from .server_farm import Farm, housekeep as farm_housekeep
from .server_security import sip_security
from .server_http import VENDOR_DIR, _Health, _Root, _Vendor  # noqa: F401  (re-exported)

log = Logger(namespace="ivr.server")

#: Retry-After (seconds) on the 503 new calls get while the database is unreachable.
DATABASE_RETRY_AFTER = 5
GC_THRESHOLDS = (5000, 20, 20)  # the cyclic collector's generations 0, 1, 2 (Python's: 700, 10, 10)


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
    """``ivr serve``: the settings at construction; :meth:`start` checks the configuration,
    binds the SIP port and builds the whole object graph in one pass (:meth:`_wire`),
    each part given its collaborators as constructor arguments."""

    def __init__(self, reactor, *, sip=("127.0.0.1", 5060), http=("127.0.0.1", 8080),
                 rtp_ports=(10000, 20000), advertise=None, dialplans="dialplans",
                 prompts="prompts", data="data", timers=TimerConfig(), media_timeout=30.0,
                 drain_timeout=3600.0, tts=None, config="config",
                 tcp_limits=TcpLimits(), sips=None, tls_cert=None, tls_key=None,
                 https=None, ws_origins=(), database=None, speech="pocketsphinx",
                 speech_workers=2, node_id=None) -> None:
        self.reactor = reactor
        self.node_id = node_id  # None: advertised address:SIP port (ivr/call/node.py)
        # speech input engine (ivr/media/asr_worker.py ENGINES; "off": DTMF only)
        self.speech_engine, self.speech_workers = speech, speech_workers
        self.database = database  # None: config/database.yaml, else SQLite in --data
        self.sips, self.tls_files = sips, (tls_cert, tls_key)  # SIP over TLS (--sips)
        self.https, self.ws_origins = https, tuple(ws_origins)  # HTTPS and SIP over WSS
        self.sip_addr, self.http_addr, self.rtp_ports = sip, http, rtp_ports
        self.data = Path(data)
        self.dialplans_dir, self.prompts_dir = Path(dialplans), Path(prompts)
        self.config_dir = Path(config)
        self.timers, self.media_timeout, self.drain_timeout = timers, media_timeout, drain_timeout
        self._tts = tts
        host = sip[0]
        self.advertise = advertise or (primary_address() if host in ("0.0.0.0", "") else host)
        # RTP is read by the media clock in batches, not by the reactor (rtp/receiver.py).
        receiver = MediaReceiver()
        self.media_clock = MediaClock(reactor, phases=SERVER_PHASES, receiver=receiver)
        self.ports = PortAllocator(rtp_ports[0], rtp_ports[1], reactor=reactor, receiver=receiver)
        self.transport = SipTransport(reactor, host, sip[1], self._on_sip, tcp_limits=tcp_limits)
        self.ua: UserAgent | None = None  # built by start()
        self._stopping = False
        self._http_port = None

    # -- startup -----------------------------------------------------------------------
    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "recordings").mkdir(exist_ok=True)
        directory = self._load_extensions()  # ConfigInvalid before anything is bound
        try:
            self.transport.tls = tls_settings(
                self.sips, *(self.tls_files if self.sips or not self.https else (None, None)),
                self.data, self.advertise,
                [(t.host, t.port, t.ca_file) for t in directory.trunks.values()
                 if t.transport == "tls"])
            https_identity = None
            if self.https is not None:  # the same certificate as --sips
                https_identity = self.transport.tls.identity or server_identity(
                    cert_file=self.tls_files[0], key_file=self.tls_files[1],
                    data_dir=self.data, name=self.advertise)
        except TlsFileError as exc:
            raise ConfigInvalid([str(exc)], exc.path) from None
        self.transport.start()               # the SIP port is known from here (--sip :0)
        self._wire(directory)
        site = self._site("WS")
        self._http_port = self.reactor.listenTCP(self.http_addr[1], site,
                                                 interface=self.http_addr[0])
        self.transport.ws_ports["WS"] = self._http_port.getHost().port
        if https_identity is not None:  # the API and SIP over WSS (RFC 7118) on HTTPS
            from twisted.protocols.tls import TLSMemoryBIOFactory
            secure = TLSMemoryBIOFactory(server_options(https_identity), False,
                                         self._site("WSS"))
            self._https_port = self.reactor.listenTCP(self.https[1], secure,
                                                      interface=self.https[0])
            self.transport.ws_ports["WSS"] = self._https_port.getHost().port
            log.info("HTTPS and SIP over WSS on {h}:{p}", h=self.https[0],
                     p=self.transport.ws_ports["WSS"])
        self._late_ticks_seen = 0
        self._housekeeping = LoopingCall(self._housekeep)
        self._housekeeping.clock = self.reactor
        self._housekeeping.start(2.0, now=False)
        self.reactor.addSystemEventTrigger("before", "shutdown", self._cleanup)
        log.info("server ready: SIP udp+tcp {h}:{p}, HTTP {hh}:{hp}, RTP {lo}-{hi}, "
                 "advertising {adv}", h=self.transport.host, p=self.transport.port,
                 hh=self.http_addr[0], hp=self._http_port.getHost().port,
                 lo=self.ports.low, hi=self.ports.high, adv=self.advertise)

    def _site(self, kind: str):
        """The HTTP site: the API, ``/health`` and SIP over WebSocket at ``/sip``
        (``kind`` WS on plain HTTP, WSS on HTTPS)."""
        sip = SipWebSocketResource(self.transport, self.ws_origins, kind)
        site = web_server.Site(_Root(self.api, _Health(self), sip), requestFactory=CappedRequest)
        site.noisy = False  # bodies over the API's cap are refused while they arrive
        return site

    def _wire(self, directory) -> None:
        """Build the server top-down: storage, media, SIP, call control, queues, dialplans,
        webhooks, the API.  Raises DialplanInvalid / ConfigInvalid for a bad plan or API
        configuration.  Two arrows of the running graph point up a layer, through an
        interface the lower layer declares, and are bound here, once: the user agent
        hands incoming calls to the dialplan service (its application), and call control
        starts flows through it (a REFER to an IVR leg, ``POST /v1/calls``)."""
        reactor = self.reactor
        self.extensions = directory
        self.db = self._open_database()
        self.node_id = self.node_id or default_node_id(self.advertise, self.transport.port)
        # PostgreSQL: a farm's nodes share registrations, heartbeats, the rate limits, the
        # nonce secret, bans, queues and the API's sessions (ivr/server_farm.py)
        farm = self.farm = (Farm(self.db, self.node_id, reactor)
                            if self.db.dialect == "postgresql" else None)
        self.shared_location, self.liveness, self.farm_share = (
            (farm.location, farm.liveness, farm.share) if farm else (None, None, None))
        security = sip_security(directory, reactor, self._own_addresses(), self.transport.port,
                                self.shared_location, farm and farm.nonce_secret(),
                                shared_bans=farm is not None)
        self.farm_bans = farm.bans(directory.security) if farm else None
        self._bans_exchange = None  # the farm's bans exchange in flight (server_farm.py)
        self.registrar, self.invite_auth = security.registrar, security.invite_auth
        self.throttle = security.throttle
        self.transport.on_connection_closed.append(self._flow_closed)
        self.cdrs, self.dnd, self.metrics = CdrStore(self.db), DndList(self.db), Metrics()
        # records each leg's CDR as it ends (in a farm, with the node's id: extra.node)
        self.calls = CallTable(farm.cdrs(self.cdrs) if farm else self.cdrs, self.metrics)
        self.metrics.track_active_calls(lambda: len(self.calls))
        self.media = MediaContext(
            reactor=reactor, media_clock=self.media_clock, ports=self.ports,
            advertise=self.advertise, bind_host=self.sip_addr[0] or "0.0.0.0",
            inband=InbandDtmfService(self.media_clock), media_timeout=self.media_timeout,
            recordings_dir=str(self.data / "recordings"), data_dir=str(self.data),
            metrics=self.metrics, media_encryption=directory.media_encryption,
            allow_insecure_srtp_keys=directory.allow_insecure_srtp_keys,
            # WebRTC legs' DTLS identity: browsers pin its fingerprint from our SDP.
            dtls_certificate=DtlsCertificate.generate(datetime.now(timezone.utc), days=365),
            prompts=PromptCache(self.prompts_dir, self.data / "cache" / "prompts",
                                reactor=reactor),
            tts=self._tts or TtsEngine(self.data / "cache" / "tts", reactor=reactor),
            speech=None if self.speech_engine in (None, "off") else RecognizerPool(
                reactor, engine=self.speech_engine, workers=self.speech_workers))
        relay = directory.media_relay  # bridged media: in-process, or through rtpengine
        if relay.engine == "rtpengine":
            ng = NgClient(reactor, (relay.ng_host, relay.ng_port), timeout=relay.timeout)
            ng.listen(reactor)
            self.media.media_relay = RtpengineRelay(ng)
            log.info("bridged media through rtpengine at {h}:{p}", h=relay.ng_host, p=relay.ng_port)
        self.ua = UserAgent(reactor, self.transport, None, self.advertise, self.transport.port,
                            self.timers, registrar=security.registrar,
                            invite_auth=security.invite_auth, throttle=security.throttle)
        self.control = CallControl(media=self.media, ua=self.ua, calls=self.calls,
                                   directory=directory, registrar=security.registrar)
        self.queues = None
        if directory.queues:
            dialer = QueueDialer(self.control, self.calls)
            reach = dict(is_reachable=dialer.is_reachable, is_logged_in=dialer.is_logged_in)
            engine = farm.queue_engine if farm else QueueEngine  # a farm: one line per queue
            self.queues = engine(reactor, dialer, directory.queues.values(), **reach)
        secret = self._webhook_secret()
        self.dialplan = DialplanService(reactor, self.dialplans_dir, self.prompts_dir,
                                        self.media, calls=self.calls, webhook_secret=secret,
                                        telephony=self.control, queues=self.queues)
        self.dialplan.start()  # raises DialplanInvalid with file:line:col errors
        # up: incoming calls run the plans; anonymous browser callers (SIP over WebSocket,
        # no extension) pass their limits first (ivr/call/visitors.py, `webrtc:` config)
        self.visitors = VisitorLimits(
            directory.webrtc, reactor,
            region=lambda: self.dialplan.store.current.settings.default_region,
            share=self.farm_share)  # a farm: this node's share of calls_per_minute
        self.ua.serve(VisitorGate(self.dialplan, self.visitors))
        self.control.serve_flows(self.dialplan)  # up: transfers and the API start flows
        api_file = self.config_dir / "api.yaml"
        config, errors = load_api_config(api_file, ApiConfig(
            recordings_dir=str(self.data / "recordings"),
            default_region=self.dialplan.store.current.settings.default_region))
        if errors:
            raise ConfigInvalid(errors, str(api_file))
        self.webhooks = WebhookDispatcher(secret, reactor, metrics=self.metrics,
                                          outbox=farm.outbox() if farm else None)
        if self.webhooks.outbox is not None:
            self.webhooks.outbox.start()
        plans = self.dialplan.store  # the Flow Builder edits these files (ivr/dialplan/files.py)
        dialplan_files = DialplanFiles(plans.directory, plans.prompts_dir,
                                       backups=self.data / "dialplan-backups",
                                       reload=plans.reload, current_errors=lambda: plans.errors,
                                       entries=lambda: extension_contexts(directory))
        self.api = make_api(self.control, self.cdrs, self.webhooks, config, reactor,
                            dnd=self.dnd, metrics=self.metrics, throttle=security.throttle,
                            dialplan_files=dialplan_files)
        if farm:  # the API sees the farm's sessions, calls and bans, and takes its share
            farm.share_api(self.api.api, self.farm_bans)

    def _on_sip(self, message, source) -> None:
        self.ua.receive(message, source)

    def _load_extensions(self):
        """Extensions, ring groups, trunks and queues (ConfigInvalid naming the file)."""
        path = self.config_dir / "extensions.yaml"
        if not path.exists():
            log.info("no {p}: no extensions, ring groups or trunks", p=path)
            return ExtensionsConfig()
        config, errors = load_extensions(path)
        if errors:
            raise ConfigInvalid(errors, str(path))
        log.info("{n} extension(s), {g} ring group(s), {t} trunk(s)", n=len(config.extensions),
                 g=len(config.ring_groups), t=len(config.trunks))
        if config.allow_insecure_srtp_keys:
            log.warn("allow_insecure_srtp_keys is on ({p}): SRTP keys (a=crypto) may be "
                     "offered and accepted over plain UDP/TCP, where anyone on the path can "
                     "read them", p=path)
        return config

    def _flow_closed(self, conn) -> None:
        """A SIP connection closed: the registrations made over it (and reachable only
        over it) go at once, so ring groups and queues skip those phones."""
        for binding in self.registrar.connection_closed(conn):
            log.info("registration of {aor} removed: its SIP/{kind} connection from "
                     "{host}:{port} closed ({contact})", aor=binding.aor, kind=conn.kind,
                     host=conn.peer[0], port=conn.peer[1], contact=binding.uri)

    def _own_addresses(self) -> list[str]:
        """The addresses a phone may put in its From to name us: the advertised one and
        the one we are bound to (they differ behind NAT or with --advertise)."""
        bound = self.sip_addr[0]
        return [self.advertise] + ([bound] if bound not in ("", "0.0.0.0", "::") else [])

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

    def _open_database(self):
        """SQLite in --data (the default), or PostgreSQL from --database or the config's
        database.yaml.  While PostgreSQL is unreachable new calls get 503 + Retry-After."""
        spec, path = self.database, self.config_dir / "database.yaml"
        if spec is None:
            spec, errors = load_database_file(path)
            if errors:
                raise ConfigInvalid(errors, str(path))
        try:
            spec = parse_database(spec)
        except DatabaseSpecError as exc:
            raise ConfigInvalid([f"--database: {exc}"], "--database") from None
        db = open_database(spec, self.data, reactor=self.reactor)
        log.info("database: {d}", d=describe(spec))
        db.on_availability(self._database_availability)
        return db

    def _database_availability(self, up: bool) -> None:
        """The database went away (new calls 503, as when draining) or came back."""
        self.ua.draining = self._stopping or not up
        self.ua.retry_after = 30 if self._stopping else DATABASE_RETRY_AFTER

    def _housekeep(self) -> None:
        now = self.reactor.seconds()
        self.db.heartbeat()  # PostgreSQL: notice an outage while nothing is written
        self.registrar.expire(now)
        if self.shared_location is not None:  # a farm: other nodes' registrations, bans...
            farm_housekeep(self, now)
        self.throttle.expire(now)
        if self.queues is not None:
            self.queues.agent_changed()  # registrations come and go
        late = self.media_clock.late_ticks
        if late > self._late_ticks_seen:
            self.metrics.late_ticks(late - self._late_ticks_seen)
            self._late_ticks_seen = late

    # -- shutdown ----------------------------------------------------------------------
    def _cleanup(self):
        """Flush CDRs, stop the TTS worker and the dialplan watcher, drop the webhook
        clients' pooled connections."""
        closing = [self.dialplan.stop(), self.webhooks.close()]
        if self._housekeeping.running:
            self._housekeeping.stop()
        if self.queues is not None and hasattr(self.queues, "stop"):
            self.queues.stop()  # the farm's matcher: no round after the database closes
        self.db.close()
        closing.append(self.media.tts.close())
        if self.media.speech is not None:
            closing.append(self.media.speech.close())
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


def extension_contexts(directory) -> dict[str, str]:
    """The flows extensions' own calls run in (their ``context``), for the Flow Builder:
    {flow: "context of extensions 2001, 2002"}."""
    users: dict[str, list[str]] = {}
    for name, extension in sorted(directory.extensions.items()):
        users.setdefault(extension.context, []).append(name)
    return {flow: "context of extensions " + ", ".join(names) for flow, names in users.items()}


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
                    config=args.config, tcp_limits=tcp_limits_from(args), sips=args.sips,
                    tls_cert=args.tls_cert, tls_key=args.tls_key, https=args.https,
                    ws_origins=args.ws_origin, database=args.database,
                    speech=args.speech_engine, speech_workers=args.speech_workers,
                    node_id=getattr(args, "node_id", None))
    try:
        srv.start()
    except DialplanInvalid as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        source = getattr(exc, "source", None) or "the dialplans"
        print(f"ivr: not starting: {len(exc.errors)} error(s) in {source}", file=sys.stderr)
        return 2
    except (OSError, CannotListenError, StoreUnavailable) as exc:
        print(f"ivr: cannot start: {exc}", file=sys.stderr)
        return 1
    # Everything loaded so far (modules, dialplans, prompts, config) lives as long as the
    # process: freezing it takes it out of the cyclic collector's scans, so a full collection
    # walks only the objects of the calls in progress.  (gen2 pauses of 40-100 ms with 200
    # calls up stopped every stream's packets for that long.)
    gc.collect()
    gc.freeze()
    # A finished call leaves no reference cycle (its owners drop their back-references), so
    # the young generations' scans mostly find nothing: scan them 7x less often (in-process,
    # 2000 calls: 163-231 -> 71-93 us of collector time per call; bench/README.md, B1).
    gc.set_threshold(*GC_THRESHOLDS)
    if srv.media.speech is not None:  # recognisers load now, not on a caller's first word
        reactor.callWhenRunning(srv.media.speech.start)
    # Twisted's own handlers stay (SIGCHLD reaps the TTS worker); ours replace its
    # SIGINT/SIGTERM ones once the reactor runs.
    reactor.callWhenRunning(srv.install_signal_handlers)
    reactor.run()
    return 0
