"""Verbs on a FakeCall with a task.Clock: exact timings, prompts and path-log events."""
from datetime import datetime, timezone

from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import start


def gather_plan(extra=""):
    return f"""
        flows:
          main:
            - gather:
                prompt: "Enter PIN"
                num_digits: 4
                timeout: 5
                inter_digit_timeout: 3
                retries: 1
                invalid_prompt: "Invalid"
                no_input_prompt: "Nothing"
                variable: pin
                {extra}
            - say: "PIN {{{{pin}}}}"
        """


def test_gather_success_with_barge_in(tmp_path):
    call, _r, result = start(tmp_path, gather_plan())
    assert call.actions[0] == ("answer",)             # media verbs answer first
    assert call.said() == ["Enter PIN"]
    call.clock.advance(1)
    call.press("12")                                   # barges in on the prompt
    assert ("stop_playback",) not in call.actions
    call.press("34")
    assert call.variables["pin"] == "1234"
    assert call.said() == ["Enter PIN", "PIN 1234"]
    call.clock.advance(2)                              # the last say ends: flow ends: hangup
    assert result == ["completed"] and call.actions[-1] == ("hangup", "normal")
    gathered = [f for e, f in call.events if e == "gathered"]
    assert gathered[0]["digits"] == "1234" and gathered[0]["ended_by"] == "max_digits"


def test_gather_first_digit_vs_inter_digit_timeout(tmp_path):
    call, _r, _res = start(tmp_path, gather_plan())
    call.clock.advance(2)            # prompt over, first-digit timer (5 s) running
    call.clock.advance(4.9)
    assert "pin" not in call.variables
    call.press("1")                  # now the inter-digit timer (3 s)
    call.clock.advance(2.9)
    call.press("2")
    call.clock.advance(2.99)
    assert call.said() == ["Enter PIN"]
    call.clock.advance(0.01)         # 3 s after "2": entry "12" is too short -> invalid
    assert call.said() == ["Enter PIN", "Invalid"]
    fails = [f for e, f in call.events if e == "gather_failed"]
    assert fails == [{"verb": "gather", "line": 4, "reason": "invalid", "digits": "12", "attempt": 1}]


def test_gather_retries_no_input_then_failure_branch(tmp_path):
    call, _r, result = start(tmp_path, gather_plan("on_failure: [{say: Bye}, hangup]"))
    call.clock.advance(2)            # prompt...
    call.clock.advance(5)            # ...then 5 s of nothing
    assert call.said() == ["Enter PIN", "Nothing"]
    call.clock.advance(2)            # failure prompt, then the prompt again
    assert call.said() == ["Enter PIN", "Nothing", "Enter PIN"]
    call.clock.advance(2)
    call.press("9")
    call.press("#")                  # finish key: "9" is too short
    assert call.said()[-1] == "Invalid"
    call.clock.advance(2)
    assert call.said()[-1] == "Bye" and call.variables["pin"] == ""
    call.clock.advance(2)
    assert result == ["hangup"]


def test_gather_valid_pattern_and_finish_key(tmp_path):
    call, _r, _res = start(tmp_path, """
        flows:
          main:
            - gather: {prompt: "Go", max_digits: 6, valid: "1[0-9]*", retries: 0}
        """)
    call.press("25#")
    assert call.variables["digits"] == ""
    assert [f["digits"] for e, f in call.events if e == "gather_failed"] == ["25"]


def test_menu_choice_and_inline_branch(tmp_path):
    call, _r, result = start(tmp_path, """
        flows:
          main:
            - menu:
                prompt: "Menu"
                options: {"1": sales, "2": [{say: "Support"}], "11": vip}
                inter_digit_timeout: 2
            - say: "After menu"
          sales: [{say: Sales}, hangup]
          vip: [{say: VIP}, hangup]
        """)
    call.press("1")                      # "1" is a prefix of "11": wait for more
    assert call.said() == ["Menu"]
    call.clock.advance(2)                # inter-digit timeout: "1"
    assert call.said() == ["Menu", "Sales"] and call.variables["menu"] == "1"
    assert ("menu_choice", {"verb": "menu", "line": 4, "digits": "1", "to": "sales"}) in call.events


def test_menu_inline_branch_continues(tmp_path):
    call, _r, _res = start(tmp_path, """
        flows:
          main:
            - menu: {prompt: "Menu", options: {"2": [{say: "Support"}]}}
            - say: "After menu"
        """)
    call.press("2")
    call.clock.advance(2)
    assert call.said() == ["Menu", "Support", "After menu"]


def test_menu_max_failures_and_timeouts(tmp_path):
    text = """
        flows:
          main:
            - menu:
                prompt: "Menu"
                options: {"1": done}
                timeout: 4
                max_failures: 2
                max_timeouts: 2
                invalid_prompt: "Invalid"
                no_input_prompt: "Timeout"
                on_failure: [{say: "Too many"}]
          done: [hangup]
        """
    call, _r, _res = start(tmp_path, text)
    call.press("7")                  # invalid (barge-in on the prompt)
    call.clock.advance(2)            # "Invalid" played, prompt again
    call.press("8")
    call.clock.advance(2)
    assert call.said() == ["Menu", "Invalid", "Menu", "Invalid", "Too many"]
    call2, _r, _res = start(tmp_path, text)
    call2.clock.advance(2)
    call2.clock.advance(4)
    assert call2.said() == ["Menu", "Timeout"]
    for step in (2, 2, 4):
        call2.clock.advance(step)
    assert call2.said() == ["Menu", "Timeout", "Menu", "Timeout"]
    call2.clock.advance(2)
    assert call2.said()[-1] == "Too many"
    assert [f["timeouts"] for e, f in call2.events if e == "menu_timeout"] == [1, 2]


def test_say_barge_in_keeps_digit_for_gather(tmp_path):
    call, _r, _res = start(tmp_path, """
        flows:
          main:
            - say: {text: "Long welcome", barge_in: true, loop: 3}
            - gather: {num_digits: 1, retries: 0}
        """)
    call.clock.advance(2.5)          # second loop of the welcome
    call.press("5")
    assert ("barge_in", {"verb": "say", "line": 4, "digit": "5"}) in call.events
    assert call.variables["digits"] == "5"
    assert call.said() == ["Long welcome", "Long welcome"]


def test_say_voice_defaults_and_templates(tmp_path):
    call = FakeCall(caller=None)
    call.variables["name"] = "Bob"
    call, _r, _res = start(tmp_path, """
        settings: {voice: v1, language: en, rate: 150}
        flows:
          main:
            - say: "Hi {{name}}, from {{caller.number}}, to {{call.called}}, {{nope}}."
            - say: {text: "Custom", voice: v2}
        """, call=call)
    assert call.actions[1] == ("say", "Hi Bob, from +12125551234, to +18005550100, .", "v1", "en",
                               150, False)
    assert ("template_missing", {"verb": "say", "line": 5, "names": "nope",
                                 "text": "Hi {{name}}, from {{caller.number}}, to {{call.called}}, {{nope}}."}) in call.events
    call.clock.advance(2)
    assert call.actions[2][1:4] == ("Custom", "v2", "en")


def test_private_caller_is_hidden(tmp_path):
    from ivr.call.interface import CallerId
    call = FakeCall(caller=CallerId("+12125551234", "Alice", "x", private=True))
    call, _r, _res = start(tmp_path, """
        flows:
          main: [{say: "[{{caller.number}}][{{caller.name}}][{{caller.private}}]"}]
        """, call=call)
    assert call.said() == ["[][][true]"]


def test_say_digits_and_number(tmp_path):
    call, _r, _res = start(tmp_path, """
        flows:
          main:
            - set: {n: "1234"}
            - say_digits: "{{n}}"
            - say_number: "{{n}}"
            - say_number: "12a"
        """)
    for _ in range(3):
        call.clock.advance(2)
    assert call.said() == ["one, two, three, four", "one thousand two hundred thirty-four",
                           "one, two, A"]


def test_set_if_switch(tmp_path):
    call, _r, result = start(tmp_path, """
        flows:
          main:
            - set: {lang: "es", n: "7"}
            - if: {var: n, greater_than: 5, then: [{set: {big: "yes"}}], else: [{set: {big: "no"}}]}
            - if: {var: lang, in: [en, fr], then: [{set: {x: "1"}}]}
            - switch: {var: lang, cases: {en: english, es: spanish}, default: english}
          english: [{set: {greeting: "Hello"}}]
          spanish: [{set: {greeting: "Hola {{big}}"}}]
        """)
    assert call.variables == {"lang": "es", "n": "7", "big": "yes", "greeting": "Hola yes"}
    assert result == ["completed"]
    assert call.actions == [("reject", 480, None)]   # never answered: 480 at the end
    branches = [f for e, f in call.events if e == "branch"]
    assert [b["to"] for b in branches] == [f"inline steps at {tmp_path / 'plan.yaml'}:5:43",
                                           "next", "spanish"]


def test_time_condition_with_fixed_now(tmp_path):
    text = """
        flows:
          main:
            - time:
                timezone: America/New_York
                when: [{days: mon-fri, hours: "09:00-17:00"}]
                holidays: ["12-25"]
                then: [{set: {state: open}}]
                else: [{set: {state: closed}}]
        """
    cases = [
        (datetime(2025, 3, 5, 14, 0, tzinfo=timezone.utc), "open"),    # Wed 09:00 EST
        (datetime(2025, 3, 5, 13, 59, tzinfo=timezone.utc), "closed"),  # Wed 08:59 EST
        (datetime(2025, 7, 2, 20, 59, tzinfo=timezone.utc), "open"),   # Wed 16:59 EDT
        (datetime(2025, 7, 2, 21, 0, tzinfo=timezone.utc), "closed"),  # Wed 17:00 EDT
        (datetime(2025, 3, 8, 16, 0, tzinfo=timezone.utc), "closed"),  # Saturday
        (datetime(2025, 12, 25, 16, 0, tzinfo=timezone.utc), "closed"),  # Thursday, holiday
    ]
    for now, expected in cases:
        call, _r, _res = start(tmp_path, text, now=lambda now=now: now)
        assert call.variables["state"] == expected, now


def test_time_condition_reads_the_call_clock(tmp_path):
    call = FakeCall()
    call.clock.advance(datetime(2025, 3, 5, 15, 0, tzinfo=timezone.utc).timestamp())
    call, _r, _res = start(tmp_path, """
        settings: {timezone: Europe/London}
        flows:
          main:
            - time: {when: {hours: "15:00-16:00"}, then: [{set: {s: open}}], else: [{set: {s: shut}}]}
        """, call=call)
    assert call.variables["s"] == "open"


def test_record_voicemail(tmp_path):
    call, _r, _res = start(tmp_path, f"""
        settings: {{recordings_dir: "{tmp_path / 'rec'}"}}
        flows:
          main:
            - record: {{prompt: "After the tone", max_length: 30, file: "vm-{{{{call.id}}}}/../x.wav"}}
            - say: "Got {{{{recording.seconds}}}} by {{{{recording.finished_by}}}}"
        """)
    call.clock.advance(2)
    rec = call.actions[-1]
    assert rec == ("record", str(tmp_path / "rec" / "vm-call-1_.._x.wav"), 30, "#", True)
    call.clock.advance(3)
    call.press("#")
    assert call.said()[-1] == "Got 3.0 by key"
    assert (tmp_path / "rec").is_dir()


def test_reject_and_ring(tmp_path):
    call, _r, result = start(tmp_path, """
        flows:
          main:
            - ring: {seconds: 3, early_media: false}
            - reject: busy
        """)
    assert call.actions == [("ring", False)]
    call.clock.advance(3)
    assert call.actions == [("ring", False), ("reject", 486, "Busy Here")]
    assert result == ["reject"]


def test_reject_after_answer_hangs_up(tmp_path):
    call, _r, result = start(tmp_path, "flows:\n  main: [answer, {reject: 603}]\n")
    assert call.actions == [("answer",), ("hangup", "rejected")] and result == ["reject"]


def test_early_media_plays_without_answer(tmp_path):
    call, _r, _res = start(tmp_path, """
        flows:
          main:
            - ring: {early_media: true}
            - say: "Announcement"
            - reject: unavailable
        """)
    call.clock.advance(2)
    assert call.actions == [("ring", True), ("say", "Announcement", None, None, None, False),
                            ("reject", 480, "Temporarily Unavailable")]


def test_echo_and_pause(tmp_path):
    call, _r, result = start(tmp_path, "flows:\n  main: [{pause: 1.5}, {echo: 30}]\n")
    call.clock.advance(1.5)
    assert call.actions == [("answer",), ("echo", 30)]
    call.clock.advance(30)
    assert result == ["completed"] and call.actions[-1] == ("hangup", "normal")
