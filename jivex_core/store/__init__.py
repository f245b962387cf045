"""The archive: index database plus file store, and the one way in.

:meth:`Store.ingest` is the single path by which an object enters the
archive, whether it came by C-STORE or by ``jivex import``: parse, check the
space reserve, write durably, index. Nothing already stored is touched when
a new object is refused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jivex_core.errors import CannotUnderstandError, OutOfResourcesError
from jivex_core.store.dicomfile import encode_file_meta, parse_dataset
from jivex_core.store.files import FileStore
from jivex_core.store.index import Index, InstanceRecord, database_url

logger = logging.getLogger(__name__)

__all__ = ["IngestResult", "InstanceRecord", "Store"]


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one :meth:`Store.ingest`."""

    record: InstanceRecord
    stored: bool  # False: an object with this SOP Instance UID was kept
    path: Path
    warning: str = ""


StoredListener = Callable[[InstanceRecord, str], None]


class Store:
    """The data folder: ``index.sqlite``, ``files/`` and ``incoming/``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        min_free_bytes: int = 500 * 2**20,
        fsync: bool = True,
        database: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.files = FileStore(data_dir, fsync=fsync)
        self.index = Index(database or database_url(data_dir))
        self.min_free_bytes = min_free_bytes
        self._listeners: list[StoredListener] = []

    def close(self) -> None:
        """Close the index."""
        self.index.close()

    def add_listener(self, listener: StoredListener) -> None:
        """Call *listener(record, calling_ae)* after each newly stored object."""
        self._listeners.append(listener)

    def free_bytes(self) -> int:
        """Free space of the file system that holds the data folder."""
        return shutil.disk_usage(self.data_dir).free

    def ingest(
        self,
        data: bytes,
        transfer_syntax: str,
        calling_ae: str = "",
        *,
        sop_class_uid: str | None = None,
        sop_instance_uid: str | None = None,
    ) -> IngestResult:
        """Store one data set, given as the bytes it arrived in.

        Parameters
        ----------
        data
            The data set, encoded in *transfer_syntax*, without File Meta.
        transfer_syntax
            The transfer syntax of *data* (the accepted presentation context's,
            or the file's).
        calling_ae
            The sender, recorded as Source Application Entity Title.
        sop_class_uid, sop_instance_uid
            What the C-STORE request said it carries; a mismatch with the data
            set is logged, and the data set's own UIDs are used.

        Raises
        ------
        CannotUnderstandError
            The bytes are not a DICOM data set with SOP Class/Instance UIDs.
        OutOfResourcesError
            Storing it would take the disk below the configured reserve.
        """
        ds = parse_dataset(data, transfer_syntax)
        try:
            rec = InstanceRecord.from_dataset(ds)
        except Exception as exc:
            raise CannotUnderstandError(
                f"the data set's identifying attributes cannot be read: {exc}"
            ) from exc
        warning = ""
        if sop_instance_uid and sop_instance_uid.strip("\x00 ") != rec.SOPInstanceUID:
            warning = (
                f"Affected SOP Instance UID '{sop_instance_uid}' differs from the "
                f"data set's '{rec.SOPInstanceUID}'"
            )
        elif sop_class_uid and sop_class_uid.strip("\x00 ") != rec.SOPClassUID:
            warning = (
                f"Affected SOP Class UID '{sop_class_uid}' differs from the "
                f"data set's '{rec.SOPClassUID}'"
            )
        if warning:
            logger.warning("%s; stored under the data set's UIDs", warning)
        if not rec.StudyInstanceUID or not rec.SeriesInstanceUID:
            logger.warning(
                "Object '%s' has no Study or Series Instance UID; indexed "
                "under an empty one",
                rec.SOPInstanceUID,
            )

        relative = self.files.relative_path(
            rec.StudyInstanceUID, rec.SeriesInstanceUID, rec.SOPInstanceUID
        )
        final = self.files.absolute(relative)
        if self.index.has_instance(rec.SOPInstanceUID):
            return IngestResult(rec, False, final, warning)

        meta = encode_file_meta(
            rec.SOPClassUID, rec.SOPInstanceUID, transfer_syntax, calling_ae
        )
        size = len(meta) + len(data)
        free = self.free_bytes()
        if free - size < self.min_free_bytes:
            raise OutOfResourcesError(
                f"storing {size} bytes would leave {max(free - size, 0)} bytes "
                f"free, below the reserve of {self.min_free_bytes} bytes"
            )
        try:
            tmp = self.files.write_temp((meta, data))
        except OSError as exc:
            raise OutOfResourcesError(
                f"the object cannot be written: {exc.strerror}"
            ) from exc

        with self.index.write_lock:
            if self.index.has_instance(rec.SOPInstanceUID):
                self.files.discard(tmp)
                return IngestResult(rec, False, final, warning)
            self.files.commit(tmp, relative)
            try:
                self.index.add_instance(
                    rec, relative, size, transfer_syntax, calling_ae
                )
            except BaseException:
                self.files.discard(final)
                raise
        for listener in self._listeners:
            try:
                listener(rec, calling_ae)
            except Exception:
                logger.exception("A listener of stored objects failed")
        return IngestResult(rec, True, final, warning)

    def status(self) -> dict[str, Any]:
        """Counters for the client's status bar."""
        return {
            "instances": self.index.count_instances(),
            "data_dir": str(self.data_dir),
        }
