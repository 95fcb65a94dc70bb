"""The transaction layer: runs the pure machines of :mod:`ivr.sip.transaction` on a clock.

It matches incoming messages to transactions (RFC 3261 17.1.3 / 17.2.3), creates server
transactions for new requests, and carries out the machines' actions: ``Send`` goes to
the transport, ``StartTimer``/``CancelTimer`` become timers on one :class:`TimerQueue`
(a FIFO per distinct delay behind a single ``callLater``; see timer_queue.py for why) kept per
transaction under the timer's RFC letter, ``PassToTU``/``Timeout``/``TransportFailed``
become TU callbacks, and ``Terminated`` removes the transaction from the tables.

The clock is injected (``IReactorTime``; tests use ``twisted.internet.task.Clock``).
Nothing raised by a TU callback, the transport or a malformed message escapes into the
reactor: it is logged with ``twisted.logger``.

Transport interface: ``send_request(request, dest)``, ``send_response(response,
source)``, ``is_reliable(dest_or_source) -> bool``.  A send that raises counts as a
transport error for the transaction (17.1.4 / 17.2.4).

TU interface: ``request_received(server_txn, request, source)``, ``ack_for_2xx(request,
source)`` (an ACK that matched no transaction, or one matched in RFC 6026's Accepted
state), ``stray_response(response, source)`` (a 2xx that matched no client transaction:
a retransmitted 2xx the UAC core must re-ACK) and, optionally,
``server_timeout(server_txn)`` (Timer H: no ACK for our final response) and
``server_transport_error(server_txn)``.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

from .message import Request, Response
from .timers import TimerConfig, TimerName
from .timer_queue import QueuedTimer, TimerQueue
from .transaction import (
    CancelTimer,
    InviteServerTransaction,
    PassToTU,
    Send,
    StartTimer,
    State,
    Terminated,
    Timeout,
    TransactionError,
    TransportFailed,
    UnexpectedMessage,
    cancel_target_key,
    client_key,
    client_transaction,
    server_ack_key,
    server_key,
    server_transaction,
)
from .uas_2xx import NoAck, TwoXXRetransmitter

log = Logger(namespace="ivr.sip.transaction")


#: What a parked INVITE server transaction in Accepted is (see TransactionLayer._park).
_ACCEPTED = "accepted"
#: The timer name of a parked transaction's end (Timer J or L, moved over at parking).
_PARK_EXPIRY = "parked"
_PARKABLE = frozenset((State.ACCEPTED, State.COMPLETED))


class _Handle:
    """What the layer keeps per transaction: the machine, its timers and its peer."""

    def __init__(self, machine, peer) -> None:
        self.machine = machine
        self.peer = peer
        self.delayed: dict[TimerName, Any] = {}
        self.keys: list[tuple] = [machine.key]

    @property
    def request(self) -> Request:
        return self.machine.request

    @property
    def state(self):
        return self.machine.state

    @property
    def terminated(self) -> bool:
        return self.machine.terminated

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value}>"


class ClientTransaction(_Handle):
    def __init__(self, machine, dest, on_response, on_timeout, on_transport_error) -> None:
        super().__init__(machine, dest)
        self.dest = dest
        self.on_response = on_response
        self.on_timeout = on_timeout
        self.on_transport_error = on_transport_error


class ServerTransaction(_Handle):
    def __init__(self, machine, source) -> None:
        super().__init__(machine, source)
        self.source = source


class TransactionLayer:
    def __init__(self, clock, transport, tu, timers: TimerConfig = TimerConfig()) -> None:
        self.clock = clock
        self.transport = transport
        self.tu = tu
        self.timers = timers
        self.clients: dict[tuple, ClientTransaction] = {}
        self.servers: dict[tuple, ServerTransaction] = {}
        self.timer_queue = TimerQueue(clock, self._queued_timer_fired)
        self.parked = 0  # server transactions lingering as a compact record (see _park)

    # -- from the transport --------------------------------------------------------------
    def receive(self, message: Request | Response, source) -> None:
        """Every parsed message from the transport.  Never raises."""
        try:
            if isinstance(message, Response):
                self._receive_response(message, source)
            else:
                self._receive_request(message, source)
        except Exception:
            log.failure("transaction layer failed on {m!r} from {s!r}", m=message, s=source)

    def _receive_response(self, response: Response, source) -> None:
        try:
            key = client_key(response)
        except ValueError as exc:
            log.info("dropping response without usable Via/CSeq: {e}", e=exc)
            return
        txn = self.clients.get(key)
        if txn is None:
            if 200 <= response.status < 300:
                self._call_tu(self.tu.stray_response, response, source)
            else:
                log.debug("dropping stray response {r!r}", r=response)
            return
        self._dispatch(txn, txn.machine.receive_response, response)

    def _receive_request(self, request: Request, source) -> None:
        try:
            key = server_key(request)
        except ValueError as exc:
            log.info("dropping request without usable Via/CSeq/From/To: {e}", e=exc)
            return
        txn = self.servers.get(key)
        if txn is not None:
            if txn.__class__ is ServerTransaction:
                self._dispatch(txn, txn.machine.receive_request, request)
            else:
                self._parked_request(txn, request, source)
            return
        if request.method == "ACK":
            self._call_tu(self.tu.ack_for_2xx, request, source)
            return
        machine = server_transaction(request, self.timers, self._reliable(source))
        txn = ServerTransaction(machine, source)
        self.servers[key] = txn
        self._run(txn, machine.start())

    # -- from the TU -----------------------------------------------------------------------
    def send_request(self, request: Request, dest, on_response: Callable[[Response], Any],
                     on_timeout: Callable[[], Any] | None = None,
                     on_transport_error: Callable[[], Any] | None = None) -> ClientTransaction:
        """Start a client transaction.  ``request`` must carry its top Via with a fresh
        RFC 3261 branch.  ``on_response(response)`` gets every response passed up."""
        if request.method == "ACK":
            raise TransactionError("ACK for a 2xx is sent by the UA core, not a transaction")
        machine = client_transaction(request, self.timers, self._reliable(dest))
        if not machine.key[0]:
            raise TransactionError("request has no Via branch")
        if machine.key in self.clients:
            raise TransactionError(f"client transaction {machine.key} already exists")
        txn = ClientTransaction(machine, dest, on_response, on_timeout, on_transport_error)
        self.clients[machine.key] = txn
        self._run(txn, machine.start())
        return txn

    def respond(self, server_txn: ServerTransaction, response: Response) -> None:
        """Send ``response`` in ``server_txn``.  Raises TransactionError if its state does
        not allow it (a second final response, a terminated transaction)."""
        actions = server_txn.machine.send_response(response)
        if server_txn.request.method == "INVITE" and response.status >= 200:
            try:
                ack_key = server_ack_key(server_txn.request, response)
            except ValueError:
                ack_key = None
            if ack_key is not None and ack_key not in server_txn.keys:
                server_txn.keys.append(ack_key)  # RFC 2543 ACK matching (17.2.3)
                self.servers.setdefault(ack_key, server_txn)
        self._run(server_txn, actions)

    def cancel_matching(self, cancel_request: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (9.2), if still alive."""
        try:
            key = cancel_target_key(cancel_request)
        except ValueError:
            return None
        txn = self.servers.get(key)
        if txn is _ACCEPTED:
            return txn  # a final response went out: the CANCEL gets its 200 and does nothing
        if txn is None or txn.__class__ is not ServerTransaction or txn.terminated \
                or txn.request.method != "INVITE":
            return None
        return txn

    def retransmit_2xx(self, server_txn: ServerTransaction, response: Response,
                       on_no_ack: Callable[[], Any] | None = None) -> "Retransmission":
        """Send a 2xx to an INVITE and keep re-sending it (13.3.1.4) until the returned
        handle's ``ack_received()``; ``on_no_ack()`` after 64*T1 without ACK."""
        retransmission = Retransmission(self, server_txn, response, on_no_ack)
        retransmission.run(retransmission.machine.start())
        return retransmission

    # -- running actions -------------------------------------------------------------------
    def _reliable(self, where) -> bool:
        try:
            return bool(self.transport.is_reliable(where))
        except Exception:
            log.failure("transport.is_reliable failed for {w!r}", w=where)
            return False

    def _dispatch(self, txn: _Handle, method, message) -> None:
        try:
            actions = method(message)
        except UnexpectedMessage as exc:
            log.debug("ignoring {m!r}: {e}", m=message, e=exc)
            return
        self._run(txn, actions)

    def _run(self, txn: _Handle, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(txn, action.message)
            elif isinstance(action, StartTimer):
                self._cancel_timer(txn, action.name)
                txn.delayed[action.name] = self.timer_queue.start(action.delay, txn, action.name)
            elif isinstance(action, CancelTimer):
                self._cancel_timer(txn, action.name)
            elif isinstance(action, PassToTU):
                self._pass_up(txn, action.message)
            elif isinstance(action, Timeout):
                if isinstance(txn, ClientTransaction):
                    self._call_tu(txn.on_timeout)
                else:
                    self._call_tu(getattr(self.tu, "server_timeout", None), txn)
            elif isinstance(action, TransportFailed):
                if isinstance(txn, ClientTransaction):
                    self._call_tu(txn.on_transport_error)
                else:
                    self._call_tu(getattr(self.tu, "server_transport_error", None), txn)
            elif isinstance(action, Terminated):
                self._forget(txn)
        if txn.__class__ is ServerTransaction and txn.machine.state in _PARKABLE:
            self._park(txn)

    def _park(self, txn: ServerTransaction) -> None:
        """Replace a transaction that only waits out Timer J or L by a compact record.

        Once an INVITE server transaction is in RFC 6026's Accepted state (it absorbs
        retransmitted INVITEs and passes a matching ACK up; the UAS core's 2xx
        retransmissions reach the transport through the handle it holds), or a non-INVITE
        server transaction is in Completed (it re-sends its final response to a
        retransmitted request), it does nothing else for 32 s.  As an object each such
        transaction is a dozen objects (the machine, both messages, headers, the source,
        timers) for the cyclic garbage collector to walk, and at a few hundred calls per
        second they are most of what it walks; parked, each is a tuple of strings and
        bytes, which the collector does not track, plus its timer.
        """
        machine = txn.machine
        invite = isinstance(machine, InviteServerTransaction)
        if invite != (machine.state is State.ACCEPTED):
            return  # an INVITE's Completed (non-2xx) still retransmits on Timer G
        timer_name = TimerName.L if invite else TimerName.J
        timer = txn.delayed.get(timer_name)
        if timer is None or timer.__class__ is not QueuedTimer or not timer.active():
            return
        if machine.state is State.ACCEPTED:
            record = _ACCEPTED
        else:
            prepare = getattr(self.transport, "prepare_response", None)
            prepared = (prepare(machine.last_response, txn.source)
                        if prepare is not None and machine.last_response is not None else None)
            if prepared is None:
                return
            record = prepared  # (datagram, (host, port))
        keys = tuple(k for k in txn.keys if self.servers.get(k) is txn)
        for key in keys:
            self.servers[key] = record
        del txn.delayed[timer_name]
        timer.subject, timer.name = keys, _PARK_EXPIRY  # same deadline, same place in its queue
        self.parked += 1

    def _parked_request(self, record, request: Request, source) -> None:
        if record is _ACCEPTED:
            if request.method == "ACK":  # RFC 2543 peers reuse the INVITE's branch
                self._call_tu(self.tu.ack_for_2xx, request, source)
            return  # a retransmitted INVITE is absorbed
        data, addr = record
        try:
            self.transport.send_prepared(data, addr)
        except Exception:
            log.failure("transport failed re-sending a final response to {a!r}", a=addr)

    def _unpark(self, keys: tuple) -> None:
        for key in keys:
            record = self.servers.get(key)
            if record is not None and record.__class__ is not ServerTransaction:
                del self.servers[key]
        self.parked -= 1

    def _send(self, txn: _Handle, message) -> None:
        try:
            if isinstance(txn, ClientTransaction):
                self.transport.send_request(message, txn.dest)
            else:
                self.transport.send_response(message, txn.source)
        except Exception:
            log.failure("transport failed sending {m!r}", m=message)
            if txn.terminated:
                return
            try:
                actions = txn.machine.transport_error()
            except TransactionError:
                return  # the state has no transport-error transition: keep going
            # Carry out the error's actions after the current list (no re-entrancy).
            self.clock.callLater(0, self._run, txn, actions)

    def _pass_up(self, txn: _Handle, message) -> None:
        if isinstance(txn, ClientTransaction):
            self._call_tu(txn.on_response, message)
        elif message.method == "ACK":
            self._call_tu(self.tu.ack_for_2xx, message, txn.source)
        else:
            self._call_tu(self.tu.request_received, txn, message, txn.source)

    def _queued_timer_fired(self, subject, name: TimerName) -> None:
        if name is _PARK_EXPIRY:
            self._unpark(subject)
        elif isinstance(subject, Retransmission):
            subject._fired(name)
        else:
            self._timer_fired(subject, name)

    def _timer_fired(self, txn: _Handle, name: TimerName) -> None:
        txn.delayed.pop(name, None)
        try:
            actions = txn.machine.timer_fired(name)
        except TransactionError:
            log.failure("timer {n} fired in {t!r}", n=name.value, t=txn)
            return
        self._run(txn, actions)

    def _cancel_timer(self, txn: _Handle, name: TimerName) -> None:
        delayed = txn.delayed.pop(name, None)
        if delayed is not None and delayed.active():
            delayed.cancel()

    def _forget(self, txn: _Handle) -> None:
        for name in list(txn.delayed):
            self._cancel_timer(txn, name)
        table = self.clients if isinstance(txn, ClientTransaction) else self.servers
        for key in txn.keys:
            if table.get(key) is txn:
                del table[key]

    def _call_tu(self, callback, *args) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.failure("TU callback {c!r} failed", c=callback)


class Retransmission:
    """A running :class:`TwoXXRetransmitter`: re-sends through the INVITE server
    transaction while it is in Accepted, straight to the transport after Timer L."""

    def __init__(self, layer: TransactionLayer, server_txn: ServerTransaction,
                 response: Response, on_no_ack) -> None:
        self.layer = layer
        self.server_txn = server_txn
        self.on_no_ack = on_no_ack
        self.machine = TwoXXRetransmitter(response, layer.timers)
        self.delayed: dict[TimerName, Any] = {}

    @property
    def done(self) -> bool:
        return self.machine.done

    def ack_received(self) -> None:
        self.run(self.machine.ack_received())

    def run(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Send):
                if not self.server_txn.terminated:
                    self.layer.respond(self.server_txn, action.message)
                else:
                    try:
                        self.layer.transport.send_response(action.message, self.server_txn.source)
                    except Exception:
                        log.failure("transport failed re-sending {m!r}", m=action.message)
            elif isinstance(action, StartTimer):
                self._cancel(action.name)
                self.delayed[action.name] = self.layer.timer_queue.start(action.delay, self,
                                                                          action.name)
            elif isinstance(action, CancelTimer):
                self._cancel(action.name)
            elif isinstance(action, NoAck):
                self.layer._call_tu(self.on_no_ack)

    def _fired(self, name: TimerName) -> None:
        self.delayed.pop(name, None)
        try:
            self.run(self.machine.timer_fired(name))
        except Exception:
            log.failure("2xx retransmission failed")

    def _cancel(self, name: TimerName) -> None:
        delayed = self.delayed.pop(name, None)
        if delayed is not None and delayed.active():
            delayed.cancel()
