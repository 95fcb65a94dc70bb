"""extensions.yaml: the frozen model, file:line:col errors, HA1-only passwords, `ivr passwd`."""
import io

import pytest

from ivr.config.extensions import ConfigError, load_extensions, parse_extensions
from ivr.config.passwd import ha1_lines, main
from ivr.sip.auth import compute_ha1

MD5 = compute_ha1("2001", "ivr.local", "demo2001", "MD5")
SHA = compute_ha1("2001", "ivr.local", "demo2001", "SHA-256")


def ext(extra=""):
    return f"""realm: ivr.local
extensions:
  "2001":
    ha1_md5: {MD5}
    ha1_sha256: {SHA}
{extra}"""


def errors_of(text, **kw):
    cfg, errors = parse_extensions(text, "x.yaml", **kw)
    assert cfg is None
    return [str(e) for e in errors]


def test_bundled_config_loads():
    cfg, errors = load_extensions("config/extensions.yaml")
    assert errors == []
    assert cfg.realm == "ivr.local"
    assert set(cfg.extensions) == {"2001", "2002"}
    assert cfg.extensions["2001"].ha1["SHA-256"] == compute_ha1("2001", "ivr.local", "demo2001", "SHA-256")
    assert cfg.extensions["2002"].ha1["MD5"] == compute_ha1("2002", "ivr.local", "demo2002", "MD5")
    assert cfg.ring_groups["sales"].members == ("2001", "2002")
    assert cfg.ring_groups["support"].members == ("2002",)
    assert cfg.trunks == {}
    assert cfg.algorithms == ("SHA-256", "MD5")


def test_full_model():
    text = ext("""    name: Alice
    context: staff
    static_contacts: ["sip:desk@192.0.2.7:5062"]
    max_contacts: 2
    trunks: [carrier1]
ring_groups:
  sales: {members: ["2001"], strategy: sequential, ring_timeout: 15}
trunks:
  carrier1:
    address: "[2001:db8::1]:5080"
    transport: TCP
    username: acct
    password_env: PW
    from_domain: carrier.example
    caller_id: "+15551234567"
    allow_from: [203.0.113.10, 198.18.0.0/24]
registrar: {min_expires: 30, max_expires: 600, default_expires: 300}
security: {max_failures: 3, failure_window: 10, ban_time: 60}
require_trusted_sources: true
""")
    cfg, errors = parse_extensions(text, "x.yaml", environ={"PW": "pw"})
    assert errors == []
    e = cfg.extensions["2001"]
    assert (e.name, e.context, e.static_contacts, e.max_contacts, e.trunks) == \
        ("Alice", "staff", ("sip:desk@192.0.2.7:5062",), 2, ("carrier1",))
    g = cfg.ring_groups["sales"]
    assert (g.strategy, g.ring_timeout) == ("sequential", 15)
    t = cfg.trunks["carrier1"]
    assert (t.host, t.port, t.transport, t.username, t.password) == ("2001:db8::1", 5080, "tcp", "acct", "pw")
    assert "pw" not in repr(t) and MD5 not in repr(e)
    assert cfg.trunk_for_source("198.18.0.9") is t and cfg.trunk_for_source("198.18.1.9") is None
    assert (cfg.registrar.min_expires, cfg.security.ban_time, cfg.security.require_trusted_sources) == (30, 60, True)
    with pytest.raises(Exception):
        cfg.realm = "x"  # frozen


def test_plaintext_password_is_refused_with_a_hint():
    errors = errors_of(ext("    password: demo2001\n"))
    assert errors == ["x.yaml:6:5: plaintext 'password' is not allowed in extension '2001': "
                      "run `ivr passwd USER --realm REALM` and paste its ha1_* lines"]


def test_missing_ha1_for_an_offered_algorithm():
    text = f'realm: r\nextensions:\n  "2001":\n    ha1_md5: {MD5}\n'
    assert errors_of(text) == ["x.yaml:4:5: extension '2001' needs 'ha1_sha256' (run `ivr passwd 2001`)"]
    cfg, errors = parse_extensions(f"algorithms: [MD5]\n{text}", "x.yaml")
    assert errors == [] and cfg.algorithms == ("MD5",)


def test_errors_carry_line_and_column():
    text = ext("""    max_contacts: lots
    colour: blue
ring_groups:
  sales: {members: ["2001", "2999"], strategy: random}
trunks:
  t1: {address: "host:99999", allow_from: [not-an-ip], password_env: NOPE}
""")
    assert errors_of(text, environ={}) == [
        "x.yaml:6:19: extension '2001' max_contacts must be a whole number",
        "x.yaml:7:5: unknown key 'colour' in extension '2001'",
        "x.yaml:9:29: ring group 'sales': member '2999' is not a configured extension",
        "x.yaml:9:48: ring group 'sales' strategy must be simultaneous or sequential",
        "x.yaml:11:17: trunk 't1' address must be host or host:port",
        "x.yaml:11:44: trunk 't1' allow_from 'not-an-ip' is not an IP address or network",
        "x.yaml:11:70: trunk 't1': environment variable NOPE is not set",
    ]


def test_bad_ha1_and_bad_static_contact_and_unknown_trunk():
    text = f'''realm: r
extensions:
  "2001":
    ha1_md5: nothex
    ha1_sha256: {SHA}
    static_contacts: ["tel:+1555"]
    trunks: [nosuch]
'''
    errs = errors_of(text)
    assert "x.yaml:4:14: extension '2001' ha1_md5 must be 32 hex digits (the output of `ivr passwd`)" in errs
    assert "x.yaml:6:22: extension '2001' static contact 'tel:+1555' is not a sip: URI" in errs
    assert "x.yaml:4:5: extension '2001' may use trunk 'nosuch', which is not configured" in errs


def test_yaml_syntax_error_and_duplicates_and_unreadable(tmp_path):
    assert errors_of("extensions: [\n") [0].startswith("x.yaml:2:1: YAML:")
    dup = ext(f'  "2001":\n    ha1_md5: {MD5}\n    ha1_sha256: {SHA}\n')
    assert errors_of(dup) == ["x.yaml:6:3: duplicate key '2001' in extensions (first at line 3)"]
    cfg, errors = load_extensions(tmp_path / "missing.yaml")
    assert cfg is None and errors[0].message.startswith("cannot read")
    assert isinstance(errors[0], ConfigError)


def test_empty_file_is_an_empty_config():
    cfg, errors = parse_extensions("", "x.yaml")
    assert errors == [] and cfg.extensions == {} and cfg.realm == "ivr.local"


def test_ring_group_may_not_shadow_an_extension():
    text = ext('ring_groups:\n  "2001": {members: ["2001"]}\n')
    assert errors_of(text) == ["x.yaml:7:3: ring group '2001' has the same name as an extension"]


def test_passwd_prints_lines_that_load():
    out = io.StringIO()
    assert main(["2001", "--realm", "ivr.local"], stdin=io.StringIO("demo2001\n"), stdout=out) == 0
    assert out.getvalue() == ha1_lines("2001", "ivr.local", "demo2001")
    assert f"ha1_md5: {MD5}" in out.getvalue() and f"ha1_sha256: {SHA}" in out.getvalue()
    block = "\n".join("  " + line for line in out.getvalue().splitlines())
    cfg, errors = parse_extensions(f"realm: ivr.local\nextensions:\n{block}\n", "p.yaml")
    assert errors == [] and cfg.extensions["2001"].ha1 == {"MD5": MD5, "SHA-256": SHA}


def test_passwd_refuses_empty_password_and_bad_user():
    err = io.StringIO()
    assert main(["2001"], stdin=io.StringIO("\n"), stdout=io.StringIO(), stderr=err) == 2
    assert main(["a:b"], stdin=io.StringIO("x\n"), stdout=io.StringIO(), stderr=err) == 2


def test_md5_only_user_agents_are_validated_regexes():
    cfg, errors = load_extensions("config/extensions.yaml")
    assert [p.pattern for p in cfg.md5_only_user_agents] == [r"^baresip v[01]\."]
    assert errors_of(ext("md5_only_user_agents: ['(']\n")) == [
        "x.yaml:6:24: md5_only_user_agents: bad regular expression '(': "
        "missing ), unterminated subpattern at position 0"]
