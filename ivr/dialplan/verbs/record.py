"""``record``: voicemail to a WAV file, with a beep, a maximum length and a finish key.

The file goes to ``settings.recordings_dir``; its path, length and how it ended are
stored in ``<variable>.path``, ``<variable>.seconds`` and ``<variable>.finished_by``.
The path also goes to ``recording`` as soon as recording starts (whatever ``variable``
says): the leg's CDR takes its ``recording`` column from there, so a caller who hangs up
mid-message (the verb is cancelled before its result) still leaves the file on record.
"""
from __future__ import annotations

import os
import re

from twisted.internet import defer

from ivr.dialplan.schema import boolean, digits_key, number, prompt, template, variable
from ivr.dialplan.templates import parse_template
from ivr.dialplan.verbs.base import Verb

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_name(name: str) -> str:
    """A file name that cannot leave the recordings directory."""
    base = _UNSAFE.sub("_", name.replace("/", "_")).lstrip(".") or "recording"
    return base if base.lower().endswith(".wav") else base + ".wav"


class Record(Verb):
    name = "record"
    needs_media = True
    FIELDS = {"prompt": prompt(), "file": template(default=parse_template("{{call.id}}.wav")),
              "max_length": number(default=120, minimum=1, maximum=3600),
              "finish_on_key": digits_key(default="#", allow_empty=True), "beep": boolean(True),
              "variable": variable(default="recording")}

    @defer.inlineCallbacks
    def execute(self, call):
        if self.args.prompt:
            yield self.play_prompts(self.args.prompt)
        call.flush_digits()
        directory = self.env.settings.recordings_dir
        if not os.path.isabs(directory):
            # Relative to the server's --data directory (the call knows it), else the cwd.
            base = getattr(getattr(call, "ctx", None), "data_dir", None)
            if base:
                directory = os.path.join(base, directory)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, safe_name(self.render(self.args.file)))
        self.log("record", path=path, max_length=self.args.max_length)
        call.variables["recording"] = path  # for the CDR (ivr/call/records.py)
        result = yield self.wait(call.record(path, self.args.max_length,
                                             finish_on_key=self.args.finish_on_key, beep=self.args.beep))
        var = self.args.variable
        call.variables[f"{var}.path"] = result.path
        call.variables[f"{var}.seconds"] = f"{result.seconds:.1f}"
        call.variables[f"{var}.finished_by"] = result.finished_by
        self.log("recorded", path=result.path, seconds=round(result.seconds, 2),
                 finished_by=result.finished_by)
        return None
