"""Which node of a farm this is, and the CDRs that say so.

A node's id names it in the ``registrations`` table (who took a REGISTER) and in each CDR
it writes (``extra.node``), so the records of a farm show which node handled each call.
``ivr serve --node-id NAME`` sets it; by default it is the advertised address and SIP port
(``10.0.0.5:5060``), unique per node even with several nodes on one host.
"""
from __future__ import annotations


def default_node_id(advertise: str, sip_port: int) -> str:
    host = f"[{advertise}]" if ":" in advertise and not advertise.startswith("[") else advertise
    return f"{host}:{sip_port}"


class NodeCdrs:
    """The CDR store as the call table sees it, each record tagged with ``node``."""

    def __init__(self, cdrs, node: str) -> None:
        self.cdrs, self.node = cdrs, node

    def record(self, cdr: dict, *args, **kwargs):
        return self.cdrs.record({**cdr, "node": cdr.get("node") or self.node}, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.cdrs, name)
