"""The ``ivr`` command: ``serve``, ``check`` (and more as features land)."""
from __future__ import annotations

import argparse
import os
import sys


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, got {text!r}")
    low_i, high_i = int(low), int(high)
    if not 1024 <= low_i < high_i <= 65535 or high_i - low_i < 2:
        raise argparse.ArgumentTypeError(f"bad RTP port range {text!r}")
    return low_i, high_i


def non_negative(cast):
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = -1
        if not 0 <= value < float("inf"):  # also refuses nan
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
        return value
    return parse


def ws_origin(text: str) -> str:
    from .sip.websocket import OriginError, normalise_origin
    try:
        return normalise_origin(text)
    except OriginError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivr", description="Open telephony IVR and voice server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SIP/RTP server on the dialplans")
    serve.add_argument("--sip", type=host_port, default=("127.0.0.1", 5060), metavar="HOST:PORT",
                       help="SIP address, UDP and TCP (default 127.0.0.1:5060; use 0.0.0.0:5060 "
                            "to take calls from the network)")
    serve.add_argument("--sips", type=host_port, default=None, metavar="HOST:PORT",
                       help="also take SIP over TLS on this address (off by default; the "
                            "usual port is 5061)")
    serve.add_argument("--tls-cert", default=None, metavar="PEM",
                       help="certificate (and chain) for --sips; without it and --tls-key a "
                            "self-signed one is created once in DATA/tls")
    serve.add_argument("--tls-key", default=None, metavar="PEM",
                       help="the unencrypted private key of --tls-cert")
    serve.add_argument("--http", type=host_port, default=("127.0.0.1", 8080), metavar="HOST:PORT",
                       help="HTTP API address (default 127.0.0.1:8080)")
    serve.add_argument("--https", type=host_port, default=None, metavar="HOST:PORT",
                       help="also serve the HTTP API, and SIP over secure WebSocket (wss) at "
                            "/sip, over TLS on this address, with --tls-cert/--tls-key (or "
                            "the self-signed certificate); off by default")
    serve.add_argument("--ws-origin", type=ws_origin, action="append", default=[],
                       metavar="ORIGIN",
                       help="a web page origin (https://example.com[:port], or *) allowed to "
                            "open SIP WebSockets at /sip besides the server's own pages; "
                            "repeat for more")
    serve.add_argument("--rtp-ports", type=port_range, default=(10000, 20000), metavar="LOW-HIGH",
                       help="UDP port range for RTP/RTCP (default 10000-20000)")
    serve.add_argument("--advertise", default=None, metavar="IP",
                       help="address put in SDP and Contact (default: the SIP host, or this "
                            "machine's primary address when bound to 0.0.0.0)")
    serve.add_argument("--dialplans", default="dialplans", metavar="DIR")
    serve.add_argument("--config", default="config", metavar="DIR",
                       help="extensions, ring groups and trunks (DIR/extensions.yaml)")
    serve.add_argument("--prompts", default="prompts", metavar="DIR")
    serve.add_argument("--data", default="data", metavar="DIR",
                       help="state, CDRs and caches (default ./data)")
    serve.add_argument("--database", default=None, metavar="URL",
                       help="where CDRs, the DND list, registrations and click-to-call "
                            "sessions live: 'sqlite' (the default: DATA/ivr.sqlite3) or "
                            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME, shared by the "
                            "nodes of a farm (default: CONFIG/database.yaml's database:)")
    serve.add_argument("--node-id", default=None, metavar="NAME",
                       help="this node's name in a farm (PostgreSQL): who took a REGISTER, "
                            "which node wrote a CDR (default: ADVERTISE:SIP-PORT)")
    serve.add_argument("--t1", type=float, default=0.5, help=argparse.SUPPRESS)
    serve.add_argument("--media-timeout", type=float, default=30.0,
                       help="hang up after this many seconds without RTP (0: never)")
    serve.add_argument("--drain-timeout", type=float, default=3600.0,
                       help="on SIGTERM, wait at most this long for calls to finish")
    serve.add_argument("--speech-engine", default="pocketsphinx",
                       help="offline speech input engine for gather/menu (pocketsphinx; "
                            "off: DTMF only)")
    serve.add_argument("--speech-workers", type=non_negative(int), default=2, metavar="N",
                       help="recogniser worker processes (default 2)")
    serve.add_argument("--sip-tcp-max-connections", type=non_negative(int), default=1000,
                       metavar="N", help="SIP/TCP connections accepted in all; when full the "
                                         "longest-idle one is closed (default 1000; 0: no limit)")
    serve.add_argument("--sip-tcp-max-per-address", type=non_negative(int), default=50,
                       metavar="N", help="SIP/TCP connections accepted from one address "
                                         "(default 50; 0: no limit)")
    serve.add_argument("--sip-tcp-message-timeout", type=non_negative(float), default=10.0,
                       metavar="SECONDS", help="close a SIP/TCP connection whose message is "
                                               "not complete this long after its first byte "
                                               "(default 10; 0: never)")

    passwd = sub.add_parser("passwd", help="print the HA1 lines for an extension's password")
    from .config.passwd import add_arguments as passwd_arguments
    passwd_arguments(passwd)

    check = sub.add_parser("check", help="validate dialplan files")
    check.add_argument("paths", nargs="*", default=["dialplans"])
    check.add_argument("--prompts", default="prompts", metavar="DIR")

    from .local import cli_phone, cli_say
    for local in (cli_say, cli_phone):
        local.add_parser(sub).set_defaults(local_run=local.run)
    from .api import trace_cli  # ivr trace CALL_ID: a call's path through the plans
    trace_cli.add_parser(sub).set_defaults(local_run=trace_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .server import run_server
        return run_server(args)
    if args.command == "passwd":
        from .config.passwd import main as passwd_main
        return passwd_main(args)
    if args.command == "check":
        from .dialplan.check import main as check_main
        return check_main(args.paths, prompts_dir=args.prompts)
    if getattr(args, "local_run", None) is not None:
        return args.local_run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
