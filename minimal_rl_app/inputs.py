"""Checks of what a user hands the commands: JSONL problem files, model folders, places to write.

Every check raises `UsageError` with one line that names the file (and line) and what is wrong; the
commands print it and exit with status 2 before anything is written or deleted.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class UsageError(Exception):
    """Bad arguments or inputs: printed as one line, exit status 2."""


def jsonl_files(paths: list[str], flag: str = "--data") -> list[Path]:
    """The files behind ``paths`` (a folder contributes every *.jsonl in it)."""
    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise UsageError(f"{flag}: no .jsonl files in {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{flag}: {path} does not exist")
    return files


def read_problem_file(path: Path) -> list[dict]:
    """Rows ``{"problem": str, "answer": str}`` of one JSONL file; any malformed line is a UsageError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{n}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{n}: expected a JSON object with `problem` and `answer`, got {type(row).__name__}")
        for key in ("problem", "answer"):
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                what = "missing" if key not in row else f"{json.dumps(value)[:40]} (needs a string or number)"
                raise UsageError(f"{path}:{n}: `{key}` is {what}")
            if not str(value).strip():
                raise UsageError(f"{path}:{n}: `{key}` is empty")
        rows.append({"problem": str(row["problem"]), "answer": str(row["answer"])})
    if not rows:
        raise UsageError(f"{path} has no rows")
    return rows


def read_jsonl(paths: list[str], flag: str = "--data") -> list[dict]:
    """Rows with `problem` and `answer` from JSONL files (or every *.jsonl in a folder)."""
    return [row for f in jsonl_files(paths, flag) for row in read_problem_file(f)]


def looks_like_path(model: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (``/x``, ``./x``, ``a/b/c``, ``~/x``) is a folder."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model


def check_model(model: str, flag: str = "--model") -> None:
    """A local model must be a folder holding a ``config.json``; a hub id is left to transformers."""
    path = Path(model).expanduser()
    if path.exists() or looks_like_path(model):
        if not path.is_dir():
            raise UsageError(f"{flag} {model}: no such folder" if not path.exists() else f"{flag} {model}: not a folder")
        if not (path / "config.json").is_file():
            raise UsageError(f"{flag} {model}: no config.json in this folder (not a saved transformers model)")


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, then removed: root ignores permission bits)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".minimal-rl-probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def check_writable_dir(path: Path, flag: str) -> None:
    """``path`` is a writable folder, or can be created (its nearest existing parent is writable)."""
    path = path.expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{flag} {path} exists and is not a folder")
        if not _can_write_in(path):
            raise UsageError(f"{flag} {path}: folder is not writable")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is not a folder")
    if not _can_write_in(parent):
        raise UsageError(f"{flag} {path}: cannot create it ({parent} is not writable)")


def check_writable_file(path: Path, flag: str) -> None:
    """``path`` can be written: its folder exists and is writable, and it is not a folder itself."""
    path = path.expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: folder {path.parent} does not exist")
    if not _can_write_in(path.parent) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path}: not writable")
