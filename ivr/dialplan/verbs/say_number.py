"""``say_number: "{{amount}}"``: read a number as words ("one thousand two hundred")."""
from __future__ import annotations

from ivr.dialplan.verbs.say_digits import SayDigits
from ivr.media.speech_text import say_digits, say_number


class SayNumber(SayDigits):
    name = "say_number"

    def words(self, value: str) -> str:
        try:
            return say_number(value.strip())
        except (ValueError, ArithmeticError):
            return say_digits(value)  # not a number: read what is there
