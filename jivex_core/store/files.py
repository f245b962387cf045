"""The file layout of the data folder and atomic writes into it.

Objects live at ``files/<Study UID>/<Series UID>/<SOP Instance UID>.dcm``.
A file is first written and fsynced under ``incoming/`` (same file system),
then renamed into place and its folder fsynced, so a crash leaves either the
whole file or none: never a half file where the index points.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
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
        self._clean_incoming()

    def _clean_incoming(self) -> None:
        # Left-overs of a crash are incomplete by definition: nothing indexed
        # points at them.
        for leftover in self.incoming_dir.glob("*.part"):
            logger.warning("Removing incomplete file '%s' left by a crash", leftover)
            leftover.unlink(missing_ok=True)

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

    def write_temp(self, chunks: Iterable[bytes]) -> Path:
        """Write *chunks* to a new file in ``incoming/`` and make it durable."""
        tmp = self.incoming_dir / f"{uuid.uuid4().hex}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def commit(self, tmp: Path, relative: str) -> Path:
        """Rename a durable temp file to its place; fsync the folder."""
        final = self.root / relative
        folder = final.parent
        if folder not in self._known_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(folder)
        os.replace(tmp, final)
        if self.fsync:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return final

    def discard(self, path: Path) -> None:
        """Remove a file that was not indexed after all."""
        path.unlink(missing_ok=True)

    def absolute(self, relative: str) -> Path:
        """The absolute path of a file the index names."""
        return self.root / relative
