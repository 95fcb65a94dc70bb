"""Runs the dialplans on real calls: routing, caller ID, the flow runner, live reload and
pre-rendering of every static prompt when a plan loads.

A call keeps the plan that was live when it arrived; a reload swaps the plan for new calls
only.  A reload with errors logs them and leaves the previous plan in force.
"""
from __future__ import annotations

from twisted.logger import Logger

from .http import TreqHttpClient
from .numbers import caller_id
from .reload import DialplanStore
from .router import Router
from .runner import FlowRunner
from .static import static_prompts
from ..sip.address import InviteParties, parse_party
from ..sip.message import Request
from ..call.call import Call
from ..call.table import CallTable

log = Logger(namespace="ivr.dialplan")


def headers_from(request: Request) -> str:
    return request.headers.get("From") or ""


def _dialled(party) -> str:
    """What was dialled: the Request-URI's user part, unescaped."""
    return (party.user if party is not None else None) or ""


class DialplanInvalid(Exception):
    def __init__(self, errors) -> None:
        super().__init__(f"{len(errors)} dialplan error(s)")
        self.errors = errors


class DialplanService:
    def __init__(self, reactor, dialplans_dir, prompts_dir, media, calls=None,
                 webhook_secret: bytes | None = None, *, telephony=None,
                 queues=None) -> None:
        self.reactor = reactor
        self.media = media
        # The owner of every leg (ivr/call/table.py): a call is added before its plan
        # runs, so one that the plan ends at once (reject, bad offer) still leaves it.
        self.calls = calls if calls is not None else CallTable()
        self.store = DialplanStore(dialplans_dir, prompts_dir, reactor=reactor)
        self.router: Router | None = None
        self.http = TreqHttpClient(reactor=reactor, secret=webhook_secret)  # signs flow webhooks
        self.runners: dict[str, FlowRunner] = {}
        self.telephony = telephony  # ivr.call.control.CallControl: dial, transfer
        self.queues = queues        # ivr.queue.QueueEngine: enqueue

    def start(self, watch: bool = True) -> None:
        """Load the plans (DialplanInvalid with file:line:col errors if they do not load)
        and, with ``watch``, reload them whenever a file changes."""
        self.store.on_reload(self._loaded)
        errors = self.store.reload()
        if self.store.current is None:
            raise DialplanInvalid(errors)
        if not watch:
            return
        mode = self.store.start()
        log.info("dialplans loaded from {d} ({n} routes, {f} flows); watching with {m}",
                 d=self.store.directory if hasattr(self.store, "directory") else "?",
                 n=len(self.store.current.routes), f=len(self.store.current.flows), m=mode)

    def stop(self):
        """Stop watching the plans and drop the webhook client's pooled connections."""
        self.store.stop()
        return self.http.close()

    def _loaded(self, plan) -> None:
        self.router = Router(plan)
        prompts = static_prompts(plan)
        if self.media.tts is not None and prompts:
            d = self.media.tts.prerender(prompts)
            d.addCallback(lambda failures: log.info(
                "pre-rendered {n} static prompt(s), {f} failed", n=len(prompts), f=failures))
            d.addErrback(lambda f: log.failure("pre-rendering failed", f))

    # -- calls -------------------------------------------------------------------------
    def incoming_call(self, session) -> Call:
        """The user agent's application: every INVITE it accepted becomes a leg."""
        return self.start_call(session, session.invite)

    def start_call(self, session, request: Request) -> Call:
        plan, router = self.store.current, self.router
        headers = request.headers
        authenticated = getattr(session, "caller", None)
        extension = getattr(authenticated, "extension", None)
        if extension is not None:
            return self._extension_call(session, request, plan, extension)
        # Every number the INVITE names is parsed once, here; the router, the caller ID
        # and (through the leg) the CDR read these parties.
        parties = InviteParties.parse(request.uri, headers, plan.settings.default_region)
        try:
            match = router.route_parties(parties)
        except Exception:
            log.failure("routing failed for {uri}", uri=request.uri)
            match = None
        caller = caller_id(parties.from_, parties.p_asserted_identity, parties.privacy,
                           region=plan.settings.default_region)
        if match is None:
            # Still a leg with a record: calls to numbers nobody routes are worth seeing.
            call = Call(self.media, session, caller, _dialled(parties.request_uri), {},
                        transfers=self.telephony)
            self.calls.add(call)
            log.info("call {cid} to {uri}: no route, 404", cid=request.call_id, uri=request.uri)
            call.reject(404, end_reason="no-route")
            return call
        call = Call(self.media, session, caller, match.called,
                    {"flow": match.flow, "route_source": match.source, "route": match.label},
                    transfers=self.telephony)
        self.calls.add(call)
        call.log_event("route", called=match.called, flow=match.flow, source=match.source,
                       caller=caller.number or "anonymous")
        self._run(call, plan, match.flow)
        return call

    def _extension_call(self, session, request, plan, extension) -> Call | None:
        """An authenticated extension's call runs its own (internal) flow, with the
        dialled user part in ``call.called`` (and the ``dialled`` variable)."""
        from ..call.interface import CallerId
        dialled = _dialled(parse_party(request.uri, plan.settings.default_region))
        flow = extension.context
        caller = CallerId(extension.number, extension.name, headers_from(request))
        if plan.flow(flow) is None:
            call = Call(self.media, session, caller, dialled, {"extension": extension.number},
                        transfers=self.telephony)
            self.calls.add(call)
            log.info("call {cid} from extension {ext}: no flow {f!r}, 403", cid=request.call_id,
                     ext=extension.number, f=flow)
            call.reject(403, "No dialplan for this extension", end_reason="no-flow")
            return call
        call = Call(self.media, session, caller, dialled,
                    {"flow": flow, "route_source": "extension", "route": "extension",
                     "dialled": dialled, "extension": extension.number},
                    transfers=self.telephony)
        self.calls.add(call)
        call.log_event("route", called=dialled, flow=flow, source="extension",
                       caller=extension.number)
        self._run(call, plan, flow)
        return call

    def run_flow(self, call, flow: str):
        """Run ``flow`` on an existing (for example outbound) leg with the live plan."""
        return self._run(call, self.store.current, flow)

    def _run(self, call, plan, flow: str):
        runner = FlowRunner(plan, call, http=self.http, telephony=self.telephony,
                            queues=self.queues)
        self.runners[call.call_id] = runner
        d = runner.run(flow)

        def finished(reason):
            self.runners.pop(call.call_id, None)
            return reason

        d.addBoth(finished)
        return d
