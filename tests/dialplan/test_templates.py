import pytest

from ivr.dialplan.templates import TemplateError, Var, parse_template


def test_literal_and_names():
    t = parse_template("Hello {{ caller.name }}, you dialled {{call.called}}.")
    assert t.parts == ("Hello ", Var("caller.name"), ", you dialled ", Var("call.called"), ".")
    assert not t.is_static
    assert t.names == ("caller.name", "call.called")


def test_render_missing_is_empty_and_reported():
    missing = []
    t = parse_template("A{{x}}B{{y}}C")
    assert t.render({"x": "1"}, missing.append) == "A1BC"
    assert missing == ["y"]


def test_static():
    t = parse_template("Plain text")
    assert t.is_static and t.render({}) == "Plain text"
    assert parse_template("").parts == ()


@pytest.mark.parametrize("source,offset,message", [
    ("Hi {{name", 3, "never closed"),
    ("Hi name}}", 7, "without a matching"),
    ("{{ }}", 0, "empty"),
    ("x {{ a b }}", 2, "bad variable name"),
    ("{{ a.1 }}", 0, "bad variable name"),
    ("{{ {{a}} }}", 3, "inside"),
])
def test_errors_have_offsets(source, offset, message):
    with pytest.raises(TemplateError) as e:
        parse_template(source)
    assert e.value.offset == offset
    assert message in str(e.value)
