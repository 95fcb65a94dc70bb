"""Values as speakable English text, for clear read-backs through TTS.

Pure functions, English only. Commas between items make espeak pause, and digits are
written as words so a TTS engine never reads "12345" as "twelve thousand ...".
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
          "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
MAX_NUMBER = 10**15 - 1  # beyond this say_number reads the digits one by one

KEY_WORDS = {"*": "star", "#": "pound", "+": "plus"}
SYMBOL_WORDS = {"*": "star", "#": "pound", "+": "plus", "-": "dash", ".": "dot", "@": "at",
                "_": "underscore", "/": "slash", " ": "space", ",": "comma", "&": "and"}
NATO = {
    "A": "Alfa", "B": "Bravo", "C": "Charlie", "D": "Delta", "E": "Echo", "F": "Foxtrot",
    "G": "Golf", "H": "Hotel", "I": "India", "J": "Juliett", "K": "Kilo", "L": "Lima",
    "M": "Mike", "N": "November", "O": "Oscar", "P": "Papa", "Q": "Quebec", "R": "Romeo",
    "S": "Sierra", "T": "Tango", "U": "Uniform", "V": "Victor", "W": "Whiskey", "X": "X-ray",
    "Y": "Yankee", "Z": "Zulu",
}
_DIGIT_SEPARATORS = set(" -().\t")  # formatting in phone numbers, not spoken


def say_digits(digits: str, *, pound: str = "pound", separator: str = ", ") -> str:
    """'12345' -> 'one, two, three, four, five'; '*', '#', '+' become star, pound, plus.

    Formatting characters (spaces, dashes, dots, parentheses) are skipped; letters are
    read as letters; anything else is dropped.
    """
    words = []
    for ch in str(digits):
        if ch.isascii() and ch.isdigit():
            words.append(DIGIT_WORDS[int(ch)])
        elif ch == "#":
            words.append(pound)
        elif ch in KEY_WORDS:
            words.append(KEY_WORDS[ch])
        elif ch.isascii() and ch.isalpha():
            words.append(ch.upper())
    return separator.join(words)


def _under_thousand(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [DIGIT_WORDS[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens] + (f"-{DIGIT_WORDS[ones]}" if ones else ""))
    elif rest >= 10:
        words.append(_TEENS[rest - 10])
    elif rest or not words:
        words.append(DIGIT_WORDS[rest])
    return words


def _integer_words(n: int) -> list[str]:
    if n == 0:
        return ["zero"]
    words = []
    for scale, name in _SCALES:
        count, n = divmod(n, scale)
        if count:
            words += _under_thousand(count) + [name]
    if n:
        words += _under_thousand(n)
    return words


def say_number(value: int | float | str | Decimal) -> str:
    """1234 -> 'one thousand two hundred thirty-four'; -2.5 -> 'minus two point five'.

    Accepts ints, floats (their shortest repr is read, so 0.1 is 'zero point one'),
    Decimals and numeric strings. Integers beyond ~10**15 are read digit by digit.
    Raises ValueError for anything that is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        dec = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not dec.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    sign, digits, exponent = dec.as_tuple()
    text = "".join(map(str, digits))
    if exponent >= 0:
        whole, frac = text + "0" * exponent, ""
    else:
        text = text.rjust(-exponent + 1, "0")
        whole, frac = text[:exponent], text[exponent:].rstrip("0")
    n = int(whole)
    words = ["minus"] if sign and (n or frac) else []
    if n > MAX_NUMBER:
        words.append(say_digits(whole, separator=" "))
    else:
        words += _integer_words(n)
    if frac:
        words += ["point"] + [DIGIT_WORDS[int(d)] for d in frac]
    return " ".join(words)


def spell(text: str, *, nato: bool = False, separator: str = ", ") -> str:
    """'AB1' -> 'A, B, one'; with ``nato=True`` -> 'Alfa, Bravo, one'.

    Letters are upper-cased (espeak then names the letter), digits become words,
    common symbols are named (dash, dot, at, ...); other characters are dropped.
    """
    words = []
    for ch in str(text):
        if ch.isascii() and ch.isdigit():
            words.append(DIGIT_WORDS[int(ch)])
        elif ch.isascii() and ch.isalpha():
            up = ch.upper()
            words.append(NATO[up] if nato else up)
        elif ch in SYMBOL_WORDS:
            words.append(SYMBOL_WORDS[ch])
        elif ch.isalpha():
            words.append(ch.upper())  # non-ASCII letter: let the voice name it
    return separator.join(words)
