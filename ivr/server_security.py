"""``ivr serve``'s wiring of who may register and call: the registrar, INVITE authentication
and the failure throttle, built together over the extensions configuration so that they share
one nonce secret and one throttle (bans).  Wiring, like ``server_farm.py`` and
``server_http.py``: the sip modules it joins stay free of it."""
from __future__ import annotations

import os
from dataclasses import dataclass

from twisted.logger import Logger

from .sip.auth import NonceManager
from .sip.authenticator import InviteAuthenticator
from .sip.registrar import DigestGate, LocationService, Registrar
from .sip.throttle import Throttle

__all__ = ["SipSecurity", "sip_security"]


@dataclass(frozen=True)
class SipSecurity:
    """Who may register and call: the registrar, the INVITE authenticator and the
    failure throttle they share (bans)."""
    registrar: object
    invite_auth: object
    throttle: object


def sip_security(directory, clock, own_addresses, port: int, location=None,
                 nonce_secret: bytes | None = None, shared_bans: bool = False) -> SipSecurity:
    """The registrar, INVITE authentication and failure bans over ``directory`` (the
    extensions configuration), sharing one nonce secret (random, or the farm's) and one
    throttle (``shared_bans``: a farm's, whose journal housekeeping writes through)."""
    nonces = NonceManager(nonce_secret or os.urandom(32))
    throttle = Throttle.from_settings(directory.security,
                                      log=Logger(namespace="ivr.sip.throttle").info,
                                      shared=shared_bans)
    # the gate never counts failures from registered addresses; a farm's is shared
    location = location if location is not None else LocationService()
    gate = DigestGate(directory, nonces, throttle, location)
    registrar = Registrar(directory, nonces, location, clock, throttle, gate)
    invite_auth = InviteAuthenticator(directory, nonces, clock, throttle,
                                      local_hosts=own_addresses, gate=gate, local_port=port)
    return SipSecurity(registrar, invite_auth, throttle)
