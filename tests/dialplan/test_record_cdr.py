"""The ``record`` verb leaves its file's path in ``call.variables["recording"]``, which
the CDR's ``recording`` column is built from -- also when the caller hangs up mid-way
(voicemail's usual ending), before the verb's own result arrives."""
from __future__ import annotations

from tests.dialplan.helpers import start


def plan(tmp_path, extra=""):
    return f"""
        settings: {{recordings_dir: "{tmp_path / 'rec'}"}}
        flows:
          main:
            - record: {{beep: false, max_length: 30, file: "vm-{{{{call.id}}}}.wav"{extra}}}
            - hangup
        """


def test_record_sets_the_recording_variable(tmp_path):
    call, _r, _res = start(tmp_path, plan(tmp_path))
    call.clock.advance(1)
    path = str(tmp_path / "rec" / "vm-call-1.wav")
    assert call.variables["recording"] == path   # while recording already
    call.press("#")
    assert call.variables["recording"] == path
    assert call.variables["recording.path"] == path


def test_recording_is_known_when_the_caller_hangs_up(tmp_path):
    call, _r, result = start(tmp_path, plan(tmp_path, ", variable: vm"))
    call.clock.advance(2)
    call.remote_hangup()
    assert call.variables["recording"] == str(tmp_path / "rec" / "vm-call-1.wav")
