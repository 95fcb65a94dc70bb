"""Extensions, ring groups and trunks: ``config/extensions.yaml`` -> a frozen model.

Validated once, at load, with the admin's line numbers (``file:line:col: message``),
like the dialplans.  Passwords never appear in the file: extensions carry HA1 values
(``ivr passwd USER --realm R`` prints them) and trunks name an environment variable
holding their password (``password_env``) or carry the carrier-realm HA1.

    config, errors = load_extensions("config/extensions.yaml")
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.sip.uri import SipSyntaxError, SipUri, parse_uri

# The line-numbered YAML reader, re-exported: callers import ConfigError from here.
from .reader import _NULL, ConfigError, _addresses, _Reader  # noqa: F401
from .webrtc import WebrtcVisitorSettings, parse_webrtc
from .media_relay import MediaRelaySettings, parse_media_relay

DEFAULT_PATH = Path("config") / "extensions.yaml"
#: Digest algorithms an extension may hold an HA1 for: config key -> RFC 8760 name.
HA1_KEYS = {"ha1_sha256": "SHA-256", "ha1_md5": "MD5"}
_HEX_LEN = {"SHA-256": 64, "MD5": 32}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
_EMPTY: Mapping = MappingProxyType({})
#: ``media_encryption`` values (ivr.sdp.crypto.MediaEncryption): SRTP only, either, plain only.
MEDIA_ENCRYPTION = ("required", "optional", "off")
#: The default for extensions, trunks and everyone else: SRTP when the phone offers it over
#: TLS, plain RTP when it offers plain; we offer plain (a phone that insists on SRTP needs
#: ``required``).
DEFAULT_MEDIA_ENCRYPTION = "optional"


@dataclass(frozen=True)
class Extension:
    number: str                       # the SIP user part: REGISTER To, auth username
    ha1: Mapping[str, str] = field(repr=False)  # RFC 8760 algorithm name -> lower-case hex HA1
    name: str | None = None           # display name for caller ID
    context: str = "internal"         # dialplan flow its calls run in
    static_contacts: tuple[str, ...] = ()  # SIP URIs always rung besides registrations
    max_contacts: int = 5
    trunks: tuple[str, ...] = ()      # trunks this extension's calls may leave through
    media_encryption: str = DEFAULT_MEDIA_ENCRYPTION  # required | optional | off (SRTP)


@dataclass(frozen=True)
class RingGroup:
    name: str
    members: tuple[str, ...]
    strategy: str = "simultaneous"    # simultaneous | sequential
    ring_timeout: int = 20


@dataclass(frozen=True)
class Trunk:
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # from password_env, never the file
    realm: str | None = None                                 # carrier realm the HA1 values are for
    ha1: Mapping[str, str] = field(default_factory=lambda: _EMPTY, repr=False)
    from_domain: str | None = None
    caller_id: str | None = None
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    ca_file: str | None = None  # transport tls: CAs for its certificate (None: the system's)
    media_encryption: str = DEFAULT_MEDIA_ENCRYPTION  # required | optional | off (SRTP)

    def accepts_from(self, host: str) -> bool:
        """Is ``host`` (a packet source address) one of this trunk's ``allow_from``?"""
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self.allow_from)


@dataclass(frozen=True)
class RegistrarSettings:
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600


@dataclass(frozen=True)
class SecuritySettings:
    max_failures: int = 5       # failed authentications from one IP ...
    failure_window: int = 60    # ... within this many seconds ...
    ban_time: int = 300         # ... get the IP ignored for this long
    require_trusted_sources: bool = False  # inbound INVITEs only from trunks / extensions
    #: SIP proxies in front of us (Kamailio of a farm): never banned; what they relay is
    #: counted against the client they recorded in its Via (ivr/sip/throttle.py)
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtensionsConfig:
    realm: str = "ivr.local"
    domains: tuple[str, ...] = ()            # From hosts that claim to be one of ours
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")  # challenge order (RFC 8760: strongest first)
    #: User-Agent regexes of clients that give up on any non-MD5 challenge (RFC 8760 says
    #: they should skip it): they are offered MD5 only.  Chosen by User-Agent, never by user.
    md5_only_user_agents: tuple[re.Pattern, ...] = ()
    extensions: Mapping[str, Extension] = field(default_factory=lambda: _EMPTY)
    ring_groups: Mapping[str, RingGroup] = field(default_factory=lambda: _EMPTY)
    trunks: Mapping[str, Trunk] = field(default_factory=lambda: _EMPTY)
    queues: Mapping[str, object] = field(default_factory=lambda: _EMPTY)  # name -> QueueConfig
    registrar: RegistrarSettings = field(default_factory=RegistrarSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    file: str = "<none>"
    #: SRTP policy for calls from anyone who is neither an extension nor a trunk, and for
    #: calls we place to plain SIP URIs.
    media_encryption: str = DEFAULT_MEDIA_ENCRYPTION
    #: Offer and accept SDES keys (a=crypto) over plain UDP/TCP too: anyone on the path
    #: reads them.  Off by default; logged at start and on every call that uses it.
    allow_insecure_srtp_keys: bool = False
    #: What anonymous browser callers (SIP over WebSocket, no extension) may call.
    webrtc: WebrtcVisitorSettings = field(default_factory=WebrtcVisitorSettings)
    #: Who relays bridged media: the server itself (default) or rtpengine.
    media_relay: MediaRelaySettings = field(default_factory=MediaRelaySettings)

    def trunk_for_source(self, host: str) -> Trunk | None:
        for trunk in self.trunks.values():
            if trunk.accepts_from(host):
                return trunk
        return None


# -- reading ---------------------------------------------------------------------------------

def _ha1(r: _Reader, fields: dict, what: str) -> dict[str, str]:
    out = {}
    for key, algorithm in HA1_KEYS.items():
        if key in fields:
            knode, vnode = fields[key]
            value = r.string(vnode, f"{what} {key}")
            if value is None:
                continue
            if not re.fullmatch(f"[0-9a-fA-F]{{{_HEX_LEN[algorithm]}}}", value):
                r.error(vnode, f"{what} {key} must be {_HEX_LEN[algorithm]} hex digits "
                               "(the output of `ivr passwd`)")
                continue
            out[algorithm] = value.lower()
    return out


_EXT_KEYS = ("name", "context", "static_contacts", "max_contacts", "trunks", "media_encryption",
             *HA1_KEYS)


def _media_encryption(r: "_Reader", f, what: str) -> str:
    """``media_encryption`` (required | optional | off), or the default when absent."""
    if "media_encryption" not in f:
        return DEFAULT_MEDIA_ENCRYPTION
    node = f["media_encryption"][1]
    # YAML 1.1 reads a bare off as false: take it as the word the admin wrote
    value = node.value.lower() if isinstance(node, ScalarNode) and node.tag != _NULL else None
    if value not in MEDIA_ENCRYPTION:
        r.error(node, f"{what}media_encryption must be required, optional or off")
        return DEFAULT_MEDIA_ENCRYPTION
    return value


def _extension(r: _Reader, number: str, knode: Node, vnode: Node,
               algorithms: tuple[str, ...]) -> Extension | None:
    what = f"extension '{number}'"
    if not NAME_RE.match(number):
        r.error(knode, f"{what}: extension numbers may use letters, digits and . _ + - only")
        return None
    f = r.mapping(vnode, what, _EXT_KEYS)
    ha1 = _ha1(r, f, what)
    for algorithm in algorithms:
        key = next(k for k, a in HA1_KEYS.items() if a == algorithm)
        if algorithm not in ha1 and key not in f:
            r.error(vnode, f"{what} needs '{key}' (run `ivr passwd {number}`)")
    contacts = r.strings(f["static_contacts"][1], f"{what} static_contacts") if "static_contacts" in f else ()
    for i, text in enumerate(contacts):
        try:
            uri = parse_uri(text)
        except SipSyntaxError:
            uri = None
        if not isinstance(uri, SipUri):
            r.error(f["static_contacts"][1], f"{what} static contact {text!r} is not a sip: URI")
    return Extension(
        number=number, ha1=MappingProxyType(ha1),
        name=r.string(f["name"][1], f"{what} name") if "name" in f else None,
        context=(r.string(f["context"][1], f"{what} context") if "context" in f else None) or "internal",
        static_contacts=contacts,
        max_contacts=(r.integer(f["max_contacts"][1], f"{what} max_contacts", 1, 100)
                      if "max_contacts" in f else None) or 5,
        trunks=r.strings(f["trunks"][1], f"{what} trunks") if "trunks" in f else (),
        media_encryption=_media_encryption(r, f, f"{what} "))


def _ring_group(r: _Reader, name: str, vnode: Node, numbers) -> RingGroup | None:
    what = f"ring group '{name}'"
    f = r.mapping(vnode, what, ("members", "strategy", "ring_timeout"))
    if "members" not in f:
        r.error(vnode, f"{what} needs 'members'")
        return None
    members = r.strings(f["members"][1], f"{what} members")
    for member, node in zip(members, f["members"][1].value if isinstance(f["members"][1], SequenceNode)
                            else [f["members"][1]]):
        if member not in numbers:
            r.error(node, f"{what}: member '{member}' is not a configured extension")
    strategy = "simultaneous"
    if "strategy" in f:
        strategy = r.string(f["strategy"][1], f"{what} strategy") or strategy
        if strategy not in ("simultaneous", "sequential"):
            r.error(f["strategy"][1], f"{what} strategy must be simultaneous or sequential")
    timeout = r.integer(f["ring_timeout"][1], f"{what} ring_timeout", 1, 600) if "ring_timeout" in f else 20
    return RingGroup(name, members, strategy, timeout or 20)


_TRUNK_KEYS = ("address", "transport", "ca_file", "username", "password_env", "realm", "from_domain",
               "caller_id", "allow_from", "media_encryption", *HA1_KEYS)


def _trunk(r: _Reader, name: str, vnode: Node) -> Trunk | None:
    what = f"trunk '{name}'"
    f = r.mapping(vnode, what, _TRUNK_KEYS)
    if "address" not in f:
        r.error(vnode, f"{what} needs 'address' (host or host:port)")
        return None
    address = r.string(f["address"][1], f"{what} address") or ""
    host, port = address, 5060
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?", address)
    if address and (m is None or (m.group(2) and not 0 < int(m.group(2)) < 65536)):
        r.error(f["address"][1], f"{what} address must be host or host:port")
    elif m:
        host, port = m.group(1).strip("[]"), int(m.group(2) or 5060)
    transport = "udp"
    if "transport" in f:
        transport = (r.string(f["transport"][1], f"{what} transport") or "udp").lower()
        if transport not in ("udp", "tcp", "tls"):
            r.error(f["transport"][1], f"{what} transport must be udp, tcp or tls")
    if transport == "tls" and m and not m.group(2):
        port = 5061  # RFC 3261 26.2
    ca_file = _ca_file(r, f, what, transport)
    password = None
    if "password_env" in f:
        env = r.string(f["password_env"][1], f"{what} password_env")
        if env is not None:
            password = r.environ.get(env)
            if password is None:
                r.error(f["password_env"][1], f"{what}: environment variable {env} is not set")
    ha1 = _ha1(r, f, what)
    if ha1 and "realm" not in f:
        r.error(vnode, f"{what}: ha1 values need the carrier's 'realm'")
    if ha1 and "password_env" in f:
        r.error(vnode, f"{what}: give password_env or ha1_*, not both")
    if (password is not None or ha1) and "username" not in f:
        r.error(vnode, f"{what} has credentials but no 'username'")
    nets = []
    if "allow_from" in f:
        for text, node in zip(r.strings(f["allow_from"][1], f"{what} allow_from"),
                              f["allow_from"][1].value if isinstance(f["allow_from"][1], SequenceNode)
                              else [f["allow_from"][1]]):
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                r.error(node, f"{what} allow_from {text!r} is not an IP address or network")

    def opt(key):
        return r.string(f[key][1], f"{what} {key}") if key in f else None
    return Trunk(name, host, port, transport, opt("username"), password, opt("realm"),
                 MappingProxyType(ha1), opt("from_domain"), opt("caller_id"), tuple(nets),
                 ca_file, _media_encryption(r, f, f"{what} "))


def _ca_file(r: "_Reader", f, what: str, transport: str) -> str | None:
    """A trunk's ``ca_file``: a readable PEM file of CA certificates (relative to the
    config file's directory), only with ``transport: tls``."""
    if "ca_file" not in f:
        return None
    node = f["ca_file"][1]
    text = r.string(node, f"{what} ca_file")
    if text is None:
        return None
    if transport != "tls":
        r.error(node, f"{what}: ca_file is for transport: tls")
        return None
    path = Path(text)
    if not path.is_absolute() and r.file not in ("<string>", "<none>"):
        path = Path(r.file).parent / path
    try:
        data = path.read_bytes()
    except OSError as e:
        r.error(node, f"{what} ca_file {path}: cannot read: {e.strerror or e}")
        return None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        r.error(node, f"{what} ca_file {path}: no PEM certificate in it")
        return None
    return str(path)


_TOP_KEYS = ("realm", "domains", "algorithms", "md5_only_user_agents", "extensions", "ring_groups", "trunks",
             "queues", "registrar", "security", "require_trusted_sources", "media_encryption",
             "allow_insecure_srtp_keys", "webrtc", "media_relay")


def _queue(r: "_Reader", name: str, vnode: Node, numbers):
    """A call queue (ivr/queue/model.py validates the settings; we add positions and
    check that its agents are configured extensions)."""
    from ..queue.model import queue_config_from_dict
    fields = r.mapping(vnode, f"queue '{name}'")
    if not fields and not isinstance(vnode, MappingNode):
        return None
    data = yaml.SafeLoader("").construct_document(vnode)
    result = queue_config_from_dict({"name": name, **data})
    if isinstance(result, list):
        for error in result:
            node = fields.get(error.key, (vnode, vnode))[0]
            r.error(node, f"queue '{name}': {error.message}")
        return None
    agents_node = fields.get("agents", (vnode, vnode))[1]
    for agent in result.agents:
        if agent not in numbers:
            r.error(agents_node, f"queue '{name}': agent '{agent}' is not a configured extension")
    return result


def parse_extensions(text: str, file: str = "<string>", environ: Mapping[str, str] | None = None
                     ) -> tuple[ExtensionsConfig | None, list[ConfigError]]:
    """Validate YAML text; the config, or None and every error found (sorted by position)."""
    r = _Reader(file, os.environ if environ is None else environ)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [ConfigError(file, line, col, f"YAML: {e.problem or e.context}")]
    except yaml.YAMLError as e:
        return None, [ConfigError(file, 1, 1, f"YAML: {e}")]
    if root is None:
        return ExtensionsConfig(file=file), []
    top = r.mapping(root, "the extensions file", _TOP_KEYS)
    realm = r.string(top["realm"][1], "realm") if "realm" in top else "ivr.local"
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    if "algorithms" in top:
        algorithms = r.strings(top["algorithms"][1], "algorithms")
        bad = [a for a in algorithms if a not in HA1_KEYS.values()]
        if bad or not algorithms:
            r.error(top["algorithms"][1], "algorithms must be a list of SHA-256 and/or MD5")
    extensions, ext_nodes = {}, {}
    for number, (knode, vnode) in r.mapping(top["extensions"][1] if "extensions" in top else None,
                                             "extensions").items():
        ext = _extension(r, number, knode, vnode, algorithms)
        if ext is not None:
            extensions[number], ext_nodes[number] = ext, vnode
    groups = {}
    for name, (knode, vnode) in r.mapping(top["ring_groups"][1] if "ring_groups" in top else None,
                                           "ring_groups").items():
        if name in extensions:
            r.error(knode, f"ring group '{name}' has the same name as an extension")
        group = _ring_group(r, name, vnode, extensions)
        if group is not None:
            groups[name] = group
    queues = {}
    for name, (knode, vnode) in r.mapping(top["queues"][1] if "queues" in top else None,
                                           "queues").items():
        queue = _queue(r, name, vnode, extensions)
        if queue is not None:
            queues[name] = queue
    insecure_keys = False
    if "allow_insecure_srtp_keys" in top:
        insecure_keys = bool(r.boolean(top["allow_insecure_srtp_keys"][1],
                                       "allow_insecure_srtp_keys"))
    trunks = {}
    for name, (knode, vnode) in r.mapping(top["trunks"][1] if "trunks" in top else None,
                                           "trunks").items():
        trunk = _trunk(r, name, vnode)
        if trunk is not None:
            trunks[name] = trunk
            if (trunk.media_encryption == "required" and trunk.transport != "tls"
                    and not insecure_keys and isinstance(vnode, MappingNode)):
                node = dict((k.value, v) for k, v in vnode.value)["media_encryption"]
                r.error(node, f"trunk '{name}': media_encryption required needs transport: tls "
                              "(SRTP keys travel in the SIP messages) or "
                              "allow_insecure_srtp_keys: true")
    for number, ext in extensions.items():
        for t in ext.trunks:
            if t not in trunks:
                r.error(ext_nodes[number], f"extension '{number}' may use trunk '{t}', "
                                           "which is not configured")
    registrar = RegistrarSettings()
    if "registrar" in top:
        f = r.mapping(top["registrar"][1], "registrar", ("min_expires", "max_expires", "default_expires"))
        vals = {k: r.integer(v, f"registrar {k}", 1, 86400 * 7) for k, (_, v) in f.items()}
        registrar = RegistrarSettings(**{k: v for k, v in vals.items() if v is not None})
        if not registrar.min_expires <= registrar.default_expires <= registrar.max_expires:
            r.error(top["registrar"][1], "registrar needs min_expires <= default_expires <= max_expires")
    security = SecuritySettings()
    sec: dict = {}
    if "security" in top:
        f = r.mapping(top["security"][1], "security", ("max_failures", "failure_window", "ban_time",
                                                       "trusted_proxies"))
        sec = {k: r.integer(v, f"security {k}", 1, 86400 * 7) for k, (_, v) in f.items()
               if k != "trusted_proxies"}
        if "trusted_proxies" in f:
            sec["trusted_proxies"] = _addresses(r, f["trusted_proxies"][1], "security trusted_proxies")
    if "require_trusted_sources" in top:
        sec["require_trusted_sources"] = r.boolean(top["require_trusted_sources"][1],
                                                   "require_trusted_sources")
    security = SecuritySettings(**{k: v for k, v in sec.items() if v is not None})
    domains = r.strings(top["domains"][1], "domains") if "domains" in top else ()
    legacy = []
    if "md5_only_user_agents" in top:
        node = top["md5_only_user_agents"][1]
        for text, item in zip(r.strings(node, "md5_only_user_agents"),
                              node.value if isinstance(node, SequenceNode) else [node]):
            try:
                legacy.append(re.compile(text, re.I))
            except re.error as e:
                r.error(item, f"md5_only_user_agents: bad regular expression {text!r}: {e}")
    media_encryption = _media_encryption(r, top, "")
    webrtc = (parse_webrtc(r, top["webrtc"][1]) if "webrtc" in top
              else WebrtcVisitorSettings())
    media_relay = (parse_media_relay(r, top["media_relay"][1]) if "media_relay" in top
                   else MediaRelaySettings())
    if r.errors:
        return None, sorted(r.errors, key=lambda e: (e.line, e.col))
    return ExtensionsConfig(realm or "ivr.local", tuple(d.lower() for d in domains), algorithms,
                            tuple(legacy),
                            MappingProxyType(extensions), MappingProxyType(groups),
                            MappingProxyType(trunks), MappingProxyType(queues), registrar, security,
                            file, media_encryption, insecure_keys, webrtc, media_relay), []


def load_extensions(path: str | os.PathLike = DEFAULT_PATH, environ: Mapping[str, str] | None = None
                    ) -> tuple[ExtensionsConfig | None, list[ConfigError]]:
    """Read and validate ``path``; the config, or None and the errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return None, [ConfigError(str(path), 1, 1, f"cannot read: {e}")]
    return parse_extensions(text, str(path), environ)
