"""Registrations across the nodes of a farm: two registrars, each with a SharedLocation, over
one registrations table (an in-memory stand-in for RegistrationStore whose writes and reads
complete when the test says), on ``task.Clock``."""
from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from ivr.call.farm_location import SharedLocation, from_row, to_row
from ivr.call.node import NodeCdrs, default_node_id
from ivr.sip.auth import NonceManager
from ivr.sip.registrar import Registrar
from ivr.sip.throttle import Throttle
from ivr.sip.transport import Source
from ivr.store.db import StoreUnavailable

from tests.sip.test_registrar import Phone, config, register

KAMAILIO = Source("UDP", "127.0.0.1", 5090)
PATH = "<sip:127.0.0.1:5090;lr;received=sip:192.0.2.50:40000>"


class Table:
    """The shared registrations table; operations wait in ``pending`` until ``settle``."""

    def __init__(self) -> None:
        self.rows: dict[tuple, dict] = {}
        self.pending: list = []
        self.down = False
        self.expired = 0

    def settle(self) -> None:
        while self.pending:
            self.pending.pop(0)()


class Store:
    """RegistrationStore's interface for one node, over a shared Table."""

    def __init__(self, table: Table, node: str) -> None:
        self.table, self.node = table, node

    def _later(self, work) -> Deferred:
        d = Deferred()

        def run():
            if self.table.down:
                d.errback(StoreUnavailable("database down"))
            else:
                d.callback(work())
        self.table.pending.append(run)
        return d

    def save(self, row):
        return self._later(lambda: self.table.rows.__setitem__((row["aor"], row["contact_key"]),
                                                               dict(row)))

    def remove(self, aor, key):
        return self._later(lambda: self.table.rows.pop((aor, key), None) is not None)

    def current(self, now):
        return self._later(lambda: [dict(r) for r in self.table.rows.values()
                                    if r["expires_at"] > now])

    def expire(self, now):
        def work():
            gone = [k for k, r in self.table.rows.items() if r["expires_at"] <= now]
            for k in gone:
                del self.table.rows[k]
            self.table.expired += len(gone)
            return len(gone)
        return self._later(work)


def node(table, clock, name):
    location = SharedLocation(Store(table, name), clock, name)
    registrar = Registrar(config(), NonceManager(name.encode() * 16, lifetime=300), location,
                          clock, Throttle())
    return registrar, location


def farm():
    clock = Clock()
    clock.advance(1_700_000_000)
    table = Table()
    a, la = node(table, clock, "a")
    b, lb = node(table, clock, "b")
    return clock, table, (a, la), (b, lb)


def test_a_phone_registered_on_node_a_is_found_by_node_b_after_one_refresh():
    clock, table, (a, la), (b, lb) = farm()
    assert register(a, Phone("2001", "demo2001"), KAMAILIO, extra=[("Path", PATH)]).status == 200
    table.settle()
    [row] = table.rows.values()
    assert row["node"] == "a" and row["aor"] == "2001" and row["host"] == "127.0.0.1"
    assert b.lookup("2001") == []                  # not read yet
    lb.refresh()
    table.settle()
    [binding] = b.lookup("2001")
    assert binding.node == "a" and binding.uri == "sip:2001@10.0.0.5:5060"
    assert binding.path == (PATH,) and binding.target() == ("UDP", "127.0.0.1", 5090)
    assert b.route_set_for(binding.uri) == (PATH,)  # B's INVITE goes through Kamailio
    assert binding.expires_at == a.lookup("2001")[0].expires_at


def test_deregistering_through_b_removes_it_from_a_and_expiry_is_kept():
    clock, table, (a, la), (b, lb) = farm()
    phone = Phone("2001", "demo2001")
    assert register(a, phone, KAMAILIO, expires=120).status == 200
    table.settle()
    lb.refresh()
    table.settle()
    # the phone's next REGISTER lands on B (a new challenge: nonces are per node)
    phone.call_id = "cid-2@phone"
    assert register(b, phone, KAMAILIO, expires=0).status == 200
    table.settle()
    assert table.rows == {} and b.lookup("2001") == []
    la.refresh()
    table.settle()
    assert a.lookup("2001") == []
    assert register(a, phone, KAMAILIO, expires=120).status == 200
    table.settle()
    lb.refresh()
    table.settle()
    clock.advance(120)
    assert b.lookup("2001") == [] and a.lookup("2001") == []


def test_a_write_still_in_flight_is_not_undone_by_an_older_read():
    clock, table, (a, la), (b, lb) = farm()
    la.refresh()                       # a read that will see the table as it is now (empty)
    read = table.pending.pop(0)
    assert register(a, Phone("2001", "demo2001"), KAMAILIO).status == 200
    read()                             # the empty snapshot arrives before the write commits
    assert len(a.lookup("2001")) == 1  # kept: this node wrote it since the read began
    table.settle()
    la.refresh()
    table.settle()
    assert len(a.lookup("2001")) == 1 and len(table.rows) == 1


def test_writes_that_fail_while_the_database_is_down_are_done_again():
    clock, table, (a, la), (b, lb) = farm()
    table.down = True
    assert register(a, Phone("2001", "demo2001"), KAMAILIO).status == 200  # still answered
    table.settle()
    assert table.rows == {} and len(a.lookup("2001")) == 1
    la.refresh()
    table.settle()                     # the read fails too: nothing is dropped
    assert len(a.lookup("2001")) == 1
    table.down = False
    la.refresh()                       # writes the binding again, then reads
    table.settle()
    assert len(table.rows) == 1 and len(a.lookup("2001")) == 1
    lb.refresh()
    table.settle()
    assert len(b.lookup("2001")) == 1


def test_websocket_bindings_of_another_node_are_not_mirrored_and_a_restart_recovers_its_own():
    clock, table, (a, la), (b, lb) = farm()
    ws = Source("WS", "203.0.113.4", 51000)
    phone = Phone("2002", "demo2002", contact="<sip:abc@xyz.invalid;transport=ws>")
    assert register(a, phone, ws).status == 200
    table.settle()
    lb.refresh()
    table.settle()
    assert [x.uri for x in b.lookup("2002")] == ["sip:desk@192.0.2.7:5062"]  # static only
    # node a restarts: a fresh location reads its own rows back
    a2, la2 = node(table, clock, "a")
    la2.refresh()
    table.settle()
    [binding] = [x for x in a2.lookup("2002") if not x.static]
    assert binding.node == "" and binding.received.transport == "WS"


def test_expired_rows_are_deleted_now_and_then():
    clock, table, (a, la), (b, lb) = farm()
    assert register(a, Phone("2001", "demo2001"), KAMAILIO, expires=60).status == 200
    table.settle()
    clock.advance(61)
    for _ in range(15):
        la.refresh()
        table.settle()
    assert table.expired == 1 and table.rows == {}


def test_rows_round_trip_and_bad_rows_are_skipped():
    clock, table, (a, la), (b, lb) = farm()
    assert register(a, Phone("2001", "demo2001"), KAMAILIO, extra=[("Path", PATH)]).status == 200
    [binding] = a.lookup("2001")
    again = from_row(to_row(binding, "a"))
    assert again.contact == binding.contact and again.path == (PATH,)
    assert again.received == binding.received and again.node == "a"
    assert from_row({**to_row(binding, "a"), "contact": "<<nonsense"}) is None


def test_node_ids_and_tagged_cdrs():
    assert default_node_id("10.0.0.5", 5060) == "10.0.0.5:5060"
    assert default_node_id("2001:db8::1", 5070) == "[2001:db8::1]:5070"
    got = []

    class Cdrs:
        def record(self, cdr, overwrite=True):
            got.append((cdr, overwrite))
            return succeed(cdr["leg_id"])
        limit = 7
    tagged = NodeCdrs(Cdrs(), "n1")
    tagged.record({"leg_id": "x"})
    tagged.record({"leg_id": "y", "node": "other"}, overwrite=False)
    assert got == [({"leg_id": "x", "node": "n1"}, True), ({"leg_id": "y", "node": "other"}, False)]
    assert tagged.limit == 7
