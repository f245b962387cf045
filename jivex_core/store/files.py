"""The file layout of the data folder and atomic writes into it.

Objects live at ``files/<Study UID>/<Series UID>/<SOP Instance UID>.dcm``.
A file is first written under ``incoming/`` (same file system), fsynced,
then renamed into place; only then does the index name it, so the index
never points at a half file. Writeback starts as soon as the bytes are
written, so that the disk works while the data set is parsed and the fsync
finds little left to do. The rename is not fsynced on its own (that would
double the cost of each object): the next fsync commits it on the journaling
file systems a data folder lives on, and should power fail first,
:meth:`FileStore.leftovers` hands the complete file back for recovery.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jivex_core.store.dicomfile import is_valid_uid

logger = logging.getLogger(__name__)


def _safe_name(value: str) -> str:
    """A file name for a UID; anything not a UID is hashed, never trusted."""
    if value and is_valid_uid(value):
        return value
    if not value:
        return "_none"
    return "x" + hashlib.sha1(value.encode("utf-8", "replace")).hexdigest()[:32]


_START_WRITEBACK = getattr(os, "POSIX_FADV_DONTNEED", None)


@dataclass
class TempFile:
    """A file being written in ``incoming/``, still open."""

    path: Path
    fd: int

    def close(self) -> None:
        """Close the descriptor (once)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileStore:
    """Writes objects into the data folder; the only writer of ``files/``."""

    def __init__(self, data_dir: Path, fsync: bool = True) -> None:
        self.root = data_dir
        self.files_dir = data_dir / "files"
        self.incoming_dir = data_dir / "incoming"
        self.fsync = fsync
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()

    def leftovers(self) -> list[Path]:
        """Files left in ``incoming/`` by a crash, for the store to recover."""
        return sorted(self.incoming_dir.glob("*.part"))

    def relative_path(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        """Where an object belongs, relative to the data folder."""
        return "/".join(
            (
                "files",
                _safe_name(study_uid),
                _safe_name(series_uid),
                _safe_name(sop_uid) + ".dcm",
            )
        )

    def write_temp(self, chunks: Iterable[bytes]) -> TempFile:
        """Write *chunks* to a new file in ``incoming/``; start its writeback."""
        path = self.incoming_dir / f"{uuid.uuid4().hex}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        temp = TempFile(path, fd)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            if self.fsync and _START_WRITEBACK is not None:
                # Linux starts writing dirty pages back, asynchronously.
                os.posix_fadvise(fd, 0, 0, _START_WRITEBACK)
        except BaseException:
            self.discard_temp(temp)
            raise
        return temp

    def place(self, temp: TempFile, relative: str) -> Path:
        """Make a temp file durable and rename it to its place in ``files/``."""
        try:
            if self.fsync:
                os.fsync(temp.fd)
        finally:
            temp.close()
        final = self.root / relative
        folder = final.parent
        if folder not in self._known_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(folder)
        try:
            os.replace(temp.path, final)
        except FileNotFoundError:
            # A removal took the emptied folder away (in another process,
            # or before this one knew of it): make it again.
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(temp.path, final)
        return final

    def remove(self, relative: str) -> Path:
        """Remove an object's file (gone already is fine); its folder."""
        path = self.root / relative
        path.unlink(missing_ok=True)
        return path.parent

    def prune(self, folders: Iterable[Path]) -> None:
        """Make removals in *folders* durable, then drop the emptied ones
        (and their study folder when it is empty too)."""
        parents: set[Path] = set()
        for folder in folders:
            self._sync_dir(folder)
            if self._drop_if_empty(folder):
                parents.add(folder.parent)
        for parent in parents:
            if parent != self.files_dir and self._drop_if_empty(parent):
                self._sync_dir(parent.parent)
            else:
                self._sync_dir(parent)

    def _drop_if_empty(self, folder: Path) -> bool:
        self._known_dirs.discard(folder)
        try:
            folder.rmdir()
        except OSError:
            return False  # not empty (or gone)
        return True

    def _sync_dir(self, folder: Path) -> None:
        if not self.fsync:
            return
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def place_leftover(self, path: Path, relative: str) -> Path:
        """Put a complete file found in ``incoming/`` at its place."""
        final = self.root / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
        return final

    def discard_temp(self, temp: TempFile) -> None:
        """Drop a temp file that will not be stored."""
        temp.close()
        temp.path.unlink(missing_ok=True)

    def discard(self, path: Path) -> None:
        """Remove a file that was not indexed after all."""
        path.unlink(missing_ok=True)

    def absolute(self, relative: str) -> Path:
        """The absolute path of a file the index names."""
        return self.root / relative
