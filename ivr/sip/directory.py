"""What the registrar and the INVITE authenticator need to know about the extensions,
trunks and security settings: the SIP layer states it here, and the validated
configuration (:mod:`ivr.config.extensions`, a layer above) provides it.  Pure typing."""
from __future__ import annotations

import re
from typing import Mapping, Protocol


class Extension(Protocol):
    number: str                        # the SIP user part: REGISTER To, auth username
    ha1: Mapping[str, str]             # RFC 8760 algorithm name -> lower-case hex HA1
    name: str | None
    context: str                       # the dialplan flow its calls run in
    static_contacts: tuple[str, ...]
    max_contacts: int
    trunks: tuple[str, ...]


class Trunk(Protocol):
    name: str

    def accepts_from(self, host: str) -> bool: ...


class RegistrarSettings(Protocol):
    min_expires: int
    max_expires: int
    default_expires: int


class SecuritySettings(Protocol):
    max_failures: int
    failure_window: int
    ban_time: int
    require_trusted_sources: bool


class Directory(Protocol):
    realm: str
    domains: tuple[str, ...]
    algorithms: tuple[str, ...]
    md5_only_user_agents: tuple[re.Pattern, ...]
    extensions: Mapping[str, Extension]
    trunks: Mapping[str, Trunk]
    registrar: RegistrarSettings
    security: SecuritySettings

    def trunk_for_source(self, host: str) -> Trunk | None: ...
