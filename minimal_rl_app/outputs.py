"""Output folders that never lose a user's files.

Every file ``train`` and ``compare`` write is listed in a manifest, ``<output-dir>/minimal-rl-files.json``,
before it is written (a plain file) or right after (the files ``save_pretrained`` and TRL's checkpoints
create). ``--overwrite`` removes exactly the listed files, then the folders they leave empty; a file the
project did not write (``model/my_weights.bin``, ``sub/model/keep.bin``) is never touched, and a place the
run would write that already holds such files is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from minimal_rl_app.inputs import UsageError, check_writable_dir

MANIFEST = "minimal-rl-files.json"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """path relative to ``folder`` -> (mtime_ns, size) of every file under it."""
    if not folder.is_dir():
        return {}
    out = {}
    for f in folder.rglob("*"):
        if f.is_file():
            st = f.stat()
            out[f.relative_to(folder).as_posix()] = (st.st_mtime_ns, st.st_size)
    return out


class OutputDir:
    """A run's output folder and the manifest of the files written into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = root / MANIFEST
        self.files: list[str] = self._read()

    def _read(self) -> list[str]:
        try:
            files = json.loads(self.manifest.read_text())["files"]
            return [f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest.with_name(f".{MANIFEST}.tmp")
        tmp.write_text(json.dumps({"written_by": "minimal-rl", "files": self.files}, indent=0))
        os.replace(tmp, self.manifest)

    def owns(self, rel: str) -> bool:
        """Whether ``rel`` (a file, or a folder: any file under it) is in the manifest."""
        return rel in self.files or any(f.startswith(rel.rstrip("/") + "/") for f in self.files)

    def check(self, planned: Iterable[str], overwrite: bool, resume: bool = False, flag: str = "--output-dir") -> None:
        """Validate, touching nothing: ``planned`` are the files and folders (relative) the run will write.

        A planned path that exists but the manifest does not list is refused (it is the user's); one the
        manifest lists needs ``overwrite`` (or ``resume``)."""
        check_writable_dir(self.root, flag)
        if not self.root.exists():
            return
        foreign, ours = [], []
        for rel in planned:
            path = self.root / rel
            if not path.exists():
                continue
            if self.owns(rel):
                ours.append(rel)
            elif not path.is_dir() or any(path.iterdir()):
                foreign.append(rel)
        if foreign:
            raise UsageError(
                f"{flag} {self.root}: {', '.join(foreign[:3])} exist(s) but minimal-rl did not write them (not in "
                f"{MANIFEST}; older minimal-rl versions kept no such list): move them away or choose another folder"
            )
        if ours and not (overwrite or resume):
            raise UsageError(
                f"{flag} {self.root} already holds results ({', '.join(ours[:4])}); "
                "pass --overwrite to replace them, --resume to continue, or choose another folder"
            )

    def clear(self, planned: Iterable[str] | None = None) -> None:
        """Remove the listed files under each of ``planned`` (default: every listed file) and the folders
        that leaves empty; files the manifest does not list stay."""
        for rel in list(planned) if planned is not None else list(self.files):
            self.remove_listed(rel)

    def add(self, *rels: str) -> None:
        """List files before writing them (so an interrupted write still belongs to the run)."""
        new = [r for r in rels if r not in self.files]
        if new:
            self.files.extend(new)
            self._save()

    def write_tree(self, rel: str, write) -> None:
        """Run ``write(folder)`` (e.g. ``save_pretrained``) and list the files it created or changed."""
        folder = self.root / rel
        before = _snapshot(folder)
        write(folder)
        after = _snapshot(folder)
        self.add(*(f"{rel}/{name}" for name, stamp in sorted(after.items()) if before.get(name) != stamp))

    def adopt_tree(self, rel: str, since: dict[str, tuple[int, int]]) -> None:
        """List the files under ``rel`` that changed since the ``snapshot(rel)`` taken before writing."""
        after = _snapshot(self.root / rel)
        self.add(*(f"{rel}/{name}" for name, stamp in sorted(after.items()) if since.get(name) != stamp))

    def snapshot(self, rel: str) -> dict[str, tuple[int, int]]:
        return _snapshot(self.root / rel)

    def remove_listed(self, rel: str) -> None:
        """Remove the listed files at or under ``rel`` (e.g. an older TRL checkpoint), then the folders that
        held them if that left them empty."""
        prefix = rel.rstrip("/") + "/"
        gone = [f for f in self.files if f.startswith(prefix) or f == rel]
        for f in gone:
            (self.root / f).unlink(missing_ok=True)
        for folder in sorted({p for f in gone for p in Path(f).parents if str(p) != "."}, key=lambda p: len(p.parts), reverse=True):
            path = self.root / folder
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        if gone:
            self.files = [f for f in self.files if f not in gone]
            self._save()
