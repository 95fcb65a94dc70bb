"""The dialplan files as documents an editor can read and write safely.

    files = DialplanFiles("dialplans", "prompts", backups="data/dialplan-backups",
                          reload=store.reload)
    files.read("tollfree.yaml")              # JSON document, lines, ETag
    files.save("tollfree.yaml", doc, etag)   # checked, written atomically, reloaded

A save is checked by the same loader ``ivr check`` uses, over the whole directory with
the new text in place of the old; with errors nothing is written.  The previous text is
kept as a numbered backup first.  Only plain ``*.yaml``/``*.yml`` names directly in the
directory are files here: no paths, no dot files.  Dialplans are small; reads and writes
happen on the caller's thread like the loader's own.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ivr.dialplan.editing import EditError, apply_document, read_document
from ivr.dialplan.loader import dialplan_files, load_dialplans
from ivr.dialplan.model import DialplanError

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.ya?ml\Z")
KEEP_BACKUPS = 200


class FileProblem(Exception):
    """``kind``: not_found, bad_name, precondition_required, precondition_failed, exists,
    invalid (``errors`` holds the checker's), bad_document."""

    def __init__(self, kind: str, message: str, errors: list | None = None,
                 lines: dict | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.errors = errors or []
        self.lines = lines or {}  # the rejected text's entry lines, to place the errors


@dataclass(frozen=True)
class Saved:
    file: str
    etag: str
    backup: int | None
    reload_errors: list


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags


class DialplanFiles:
    def __init__(self, directory, prompts_dir=None, *, backups, reload: Callable | None = None,
                 current_errors: Callable[[], list] | None = None,
                 entries: Callable[[], dict] | None = None):
        self.directory = Path(directory)
        self.prompts_dir = prompts_dir
        self.backups_dir = Path(backups)
        self.reload = reload
        self.current_errors = current_errors or (lambda: [])
        # flows that run without a route: {flow: why}, e.g. the extensions' `context`
        self.entries = entries or (lambda: {})

    # -- names ------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [p.name for p in dialplan_files(self.directory) if NAME_RE.match(p.name)]

    def path(self, name: str, must_exist: bool = True) -> Path:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise FileProblem("bad_name", "a dialplan file is a name like 'menu.yaml' "
                                          "(letters, digits, '_', '-', '.'; no folders)")
        path = self.directory / name
        if must_exist and (name not in self.names() or not path.is_file()):
            raise FileProblem("not_found", f"no dialplan file {name!r}")
        return path

    def display(self, file: str) -> str:
        """A loader file name as the admin sees it here: relative to the directory."""
        p = Path(file)
        try:
            return str(p.resolve().relative_to(self.directory.resolve()))
        except ValueError:
            return p.name if p.parent.resolve() == self.directory.resolve() else file

    # -- reading --------------------------------------------------------------------
    def raw(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def read(self, name: str) -> dict:
        data = self.raw(name)
        try:
            doc, lines = read_document(data.decode("utf-8"))
        except (UnicodeDecodeError, EditError) as e:
            doc, lines = None, {}
            parse_error = str(e)
        else:
            parse_error = None
        errors = [self.error_json(e) for e in self.current_errors()
                  if self.display(e.file) == name]
        out = {"file": name, "etag": etag_of(data), "document": doc,
               "lines": {k: list(v) for k, v in lines.items()}, "errors": errors}
        if parse_error:
            out["parse_error"] = parse_error
        return out

    def error_json(self, e: DialplanError) -> dict:
        file = self.display(e.file)
        return {"file": file, "line": e.line, "col": e.col, "message": e.message,
                "text": f"{file}:{e.line}:{e.col}: {e.message}"}

    # -- checking and writing -------------------------------------------------------------
    def check(self, name: str, text: str) -> list[dict]:
        """The checker's errors for the directory with ``name`` holding ``text``."""
        with tempfile.TemporaryDirectory(prefix="ivr-check-") as tmp:
            candidate = Path(tmp) / name
            candidate.write_text(text, encoding="utf-8")
            others = [p for p in dialplan_files(self.directory) if p.name != name]
            _plan, errors = load_dialplans(others + [candidate], self.prompts_dir)
            out = []
            for e in errors:
                j = self.error_json(e)
                if Path(e.file) == candidate:
                    j["file"] = name
                    j["text"] = f"{name}:{e.line}:{e.col}: {e.message}"
                out.append(j)
            return out

    def text_for(self, name: str, document: Any, base: bytes | None) -> str:
        try:
            old = base.decode("utf-8") if base is not None else ""
            return apply_document(old, document)
        except (UnicodeDecodeError, EditError) as e:
            raise FileProblem("bad_document", str(e)) from None

    def save(self, name: str, *, document: Any = None, text: str | None = None,
             if_match: str | None = None, if_none_match: str | None = None) -> Saved:
        path = self.path(name, must_exist=False)
        exists = name in self.names()
        current = path.read_bytes() if exists else None
        if exists:
            if if_match is None:
                raise FileProblem("precondition_required",
                                  "send If-Match with the ETag you read, so another edit "
                                  "is not overwritten")
            if not _matches(if_match, etag_of(current)):
                raise FileProblem("precondition_failed",
                                  f"{name} was changed by someone else since you read it; "
                                  "reload it and make your change again")
        elif if_none_match is None or if_none_match.strip() != "*":
            if if_match is not None:
                raise FileProblem("precondition_failed", f"{name} does not exist any more")
            raise FileProblem("precondition_required",
                              "send If-None-Match: * to create a new dialplan file")
        if text is None:
            text = self.text_for(name, document, current)
        errors = self.check(name, text)
        if errors:
            try:
                lines = {k: list(v) for k, v in read_document(text)[1].items()}
            except EditError:
                lines = {}
            raise FileProblem("invalid", f"{len(errors)} error(s) in the dialplan", errors, lines)
        backup = self._backup(name, current) if current is not None else None
        data = text.encode("utf-8")
        self._write(path, data)
        reload_errors = self.reload() if self.reload is not None else []
        return Saved(name, etag_of(data), backup, [self.error_json(e) for e in reload_errors or []])

    def _write(self, path: Path, data: bytes) -> None:
        """Atomically: a hidden temporary file in the same directory, then rename."""
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=str(path.parent))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                os.chmod(tmp, path.stat().st_mode & 0o777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # -- backups --------------------------------------------------------------------------
    def _backup_dir(self, name: str) -> Path:
        return self.backups_dir / name

    def _numbers(self, name: str) -> list[int]:
        d = self._backup_dir(name)
        if not d.is_dir():
            return []
        return sorted(int(p.stem) for p in d.iterdir() if p.suffix == ".yaml" and p.stem.isdigit())

    def _backup(self, name: str, data: bytes) -> int:
        d = self._backup_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        numbers = self._numbers(name)
        n = (numbers[-1] + 1) if numbers else 1
        self._write(d / f"{n:06d}.yaml", data)
        for old in numbers[:max(0, len(numbers) + 1 - KEEP_BACKUPS)]:
            (d / f"{old:06d}.yaml").unlink(missing_ok=True)
        return n

    def backups(self, name: str) -> list[dict]:
        self.path(name, must_exist=False)
        out = []
        for n in reversed(self._numbers(name)):
            p = self._backup_dir(name) / f"{n:06d}.yaml"
            st = p.stat()
            out.append({"number": n, "saved_at": st.st_mtime, "size": st.st_size,
                        "etag": etag_of(p.read_bytes())})
        return out

    def backup_text(self, name: str, number: int) -> bytes:
        self.path(name, must_exist=False)
        p = self._backup_dir(name) / f"{number:06d}.yaml"
        if number < 1 or not p.is_file():
            raise FileProblem("not_found", f"no backup {number} of {name}")
        return p.read_bytes()

    def restore(self, name: str, number: int, if_match: str | None,
                if_none_match: str | None = None) -> Saved:
        data = self.backup_text(name, number)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FileProblem("bad_document", f"backup {number} is not UTF-8") from None
        return self.save(name, text=text, if_match=if_match, if_none_match=if_none_match)


__all__ = ["DialplanFiles", "FileProblem", "Saved", "etag_of"]
