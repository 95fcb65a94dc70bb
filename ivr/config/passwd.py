"""``ivr passwd USER [--realm R]``: print the HA1 lines to paste into extensions.yaml.

The password is read from standard input (first line) when it is not a terminal, else
prompted for twice without echo.  It is never written anywhere; only
H(user:realm:password) for MD5 and SHA-256 is printed.
"""
from __future__ import annotations

import argparse
import getpass
import sys

from ivr.sip.auth import compute_ha1

from .extensions import HA1_KEYS, NAME_RE

DEFAULT_REALM = "ivr.local"


def ha1_lines(user: str, realm: str, password: str) -> str:
    """The YAML lines for one extension (the realm must match the file's ``realm``)."""
    lines = [f'"{user}":  # realm {realm}']
    for key, algorithm in HA1_KEYS.items():
        lines.append(f"  {key}: {compute_ha1(user, realm, password, algorithm)}")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user", help="extension number (the SIP username)")
    parser.add_argument("--realm", default=DEFAULT_REALM,
                        help=f"digest realm, as in extensions.yaml (default {DEFAULT_REALM})")


def _read_password(stdin, stderr) -> str | None:
    if stdin.isatty():
        first = getpass.getpass("Password: ", stream=stderr)
        if getpass.getpass("Again: ", stream=stderr) != first:
            print("passwords differ", file=stderr)
            return None
        return first
    line = stdin.readline()
    return line.rstrip("\r\n")


def main(args=None, *, stdin=None, stdout=None, stderr=None) -> int:
    """``args``: an argparse Namespace with ``user``/``realm``, or an argv list."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="ivr passwd", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    if not NAME_RE.match(args.user):
        print(f"bad extension number {args.user!r}", file=stderr)
        return 2
    password = _read_password(stdin, stderr)
    if not password:
        print("empty password", file=stderr)
        return 2
    stdout.write(ha1_lines(args.user, args.realm, password))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
