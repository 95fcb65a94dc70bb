"""speech_text: digits, numbers and spellings as words, checked by parsing them back."""

import ast
import sys
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from ivr.media import speech_text
from ivr.media.speech_text import DIGIT_WORDS, say_digits, say_number, spell

UNITS = {w: i for i, w in enumerate(DIGIT_WORDS)}
UNITS.update({w: 10 + i for i, w in enumerate(("ten", "eleven", "twelve", "thirteen", "fourteen",
              "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"))})
TENS = {w: 10 * i for i, w in enumerate(("", "", "twenty", "thirty", "forty", "fifty", "sixty",
                                          "seventy", "eighty", "ninety")) if w}
SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}


def parse_number(text: str) -> Decimal:
    """An independent reader of say_number's output."""
    words = text.split()
    sign = 1
    if words and words[0] == "minus":
        sign, words = -1, words[1:]
    frac = ""
    if "point" in words:
        i = words.index("point")
        frac = "".join(str(UNITS[w]) for w in words[i + 1:])
        words = words[:i]
    total = group = 0
    for w in words:
        if "-" in w:
            t, u = w.split("-")
            group += TENS[t] + UNITS[u]
        elif w in TENS:
            group += TENS[w]
        elif w in UNITS:
            group += UNITS[w]
        elif w == "hundred":
            group *= 100
        else:
            total += group * SCALES[w]
            group = 0
    return sign * Decimal(f"{total + group}.{frac or 0}")


@pytest.mark.parametrize("value,text", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty-two"),
    (100, "one hundred"), (105, "one hundred five"), (1234, "one thousand two hundred thirty-four"),
    (-56, "minus fifty-six"), (1_000_000, "one million"),
    (2_000_000_017, "two billion seventeen"),
    (999_999_999_999, "nine hundred ninety-nine billion nine hundred ninety-nine million "
                      "nine hundred ninety-nine thousand nine hundred ninety-nine"),
    (0.5, "zero point five"), (-2.25, "minus two point two five"), (3.14, "three point one four"),
    ("12.50", "twelve point five"), (Decimal("0.05"), "zero point zero five"), ("1e3", "one thousand"),
    (0.1, "zero point one"), (-0.0, "zero"), (" 7 ", "seven"),
])
def test_say_number_examples(value, text):
    assert say_number(value) == text


@given(st.integers(min_value=-speech_text.MAX_NUMBER, max_value=speech_text.MAX_NUMBER))
def test_say_number_integers_read_back(n):
    assert parse_number(say_number(n)) == n


@given(st.decimals(min_value=-10**9, max_value=10**9, places=3, allow_nan=False, allow_infinity=False))
def test_say_number_decimals_read_back(d):
    assert parse_number(say_number(d)) == d


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_say_number_floats_read_back(x):
    assert float(parse_number(say_number(x))) == x


def test_huge_integers_are_read_digit_by_digit():
    assert say_number(10**16) == "one " + " ".join(["zero"] * 16)


@pytest.mark.parametrize("bad", ["abc", "", float("nan"), float("inf"), True, None, "1.2.3"])
def test_say_number_rejects_non_numbers(bad):
    with pytest.raises(ValueError):
        say_number(bad)


def test_say_digits():
    assert say_digits("12345") == "one, two, three, four, five"
    assert say_digits("*72#") == "star, seven, two, pound"
    assert say_digits("+1 (555) 010-9999") == ("plus, one, five, five, five, zero, one, zero, "
                                                "nine, nine, nine, nine")
    assert say_digits("#", pound="hash") == "hash"
    assert say_digits("1A") == "one, A"
    assert say_digits("") == ""
    assert say_digits(2024) == "two, zero, two, four"


@given(st.text(alphabet="0123456789*#+", max_size=30))
def test_say_digits_one_word_per_key_and_no_numerals(keys):
    words = say_digits(keys).split(", ") if keys else []
    assert len(words) == len(keys)
    assert not any(ch.isdigit() for ch in say_digits(keys))


def test_spell():
    assert spell("AB1") == "A, B, one"
    assert spell("ab1", nato=True) == "Alfa, Bravo, one"
    assert spell("x-ray.me@a_b") == "X, dash, R, A, Y, dot, M, E, at, A, underscore, B"
    assert spell("Zé") == "Z, É"
    assert spell("a\x00!b") == "A, B"


@given(st.text(max_size=40))
def test_spell_never_crashes_and_has_no_numerals(text):
    out = spell(text, nato=True)
    assert not any(ch.isascii() and ch.isdigit() for ch in out)


def test_module_is_pure():
    tree = ast.parse(open(speech_text.__file__).read())
    imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and m.startswith("twisted") for m in imported)
