"""The archive: index database plus file store, and the one way in.

:meth:`Store.ingest` is the single path by which an object enters the
archive, whether it came by C-STORE or by ``jivex import``: parse, check the
space reserve, write durably, index. Nothing already stored is touched when
a new object is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jivex_core.errors import (
    CannotUnderstandError,
    DataSetMismatchError,
    OutOfResourcesError,
)
from jivex_core.store.dicomfile import (
    MEDIA_DIRECTORY_SOP_CLASS,
    encode_file_meta,
    parse_dataset,
    split_file,
)
from jivex_core.store.files import FileStore, TempFile
from jivex_core.store.index import INDEX_TAGS, Index, InstanceRecord, database_url
from jivex_core.store.removal import Removals

logger = logging.getLogger(__name__)

__all__ = ["IngestResult", "InstanceRecord", "Store"]


@dataclass(frozen=True)
class IngestResult:
    """Outcome of one :meth:`Store.ingest`."""

    record: InstanceRecord
    stored: bool  # False: an object with this SOP Instance UID was kept
    path: Path
    incomplete: bool = False  # stored although its data set ended early


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
        self.removals = Removals(self.index, self.files)

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
        origin_ae: str = "",
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
            What the C-STORE request said it carries (None for an import).
        origin_ae
            The remote AE (of the remote AE table) the object came from, ''
            when none is known: where it can be fetched again once removed.

        Raises
        ------
        CannotUnderstandError
            The bytes are not a DICOM data set with SOP Class/Instance UIDs,
            or not the SOP Instance the request names.
        DataSetMismatchError
            The data set is of another SOP Class than the request's.
        OutOfResourcesError
            Storing it would take the disk below the configured reserve.
        """
        self._check_space(len(data) + 512)
        # The file is written before the data set is parsed, named by the
        # UIDs the C-STORE request gave, so its writeback overlaps the parse.
        temp: TempFile | None = None
        if sop_class_uid and sop_instance_uid:
            temp = self._write(
                data,
                transfer_syntax,
                calling_ae,
                sop_class_uid.strip("\x00 "),
                sop_instance_uid.strip("\x00 "),
            )
        try:
            rec, stored_syntax, truncated = self._parse(
                data, transfer_syntax, sop_class_uid, sop_instance_uid
            )
            if temp is not None and stored_syntax != transfer_syntax:
                # Its bytes are in another syntax than the context's: the
                # File Meta written ahead names the wrong one.
                self.files.discard_temp(temp)
                temp = None
            relative = self.files.relative_path(
                rec.StudyInstanceUID, rec.SeriesInstanceUID, rec.SOPInstanceUID
            )
            final = self.files.absolute(relative)
            if temp is None:
                if self.index.has_instance(rec.SOPInstanceUID, complete=True):
                    return IngestResult(rec, False, final)
                temp = self._write(
                    data,
                    stored_syntax,
                    calling_ae,
                    rec.SOPClassUID,
                    rec.SOPInstanceUID,
                )
            size = os.fstat(temp.fd).st_size
            # One lock and one transaction: the unique key tells a duplicate,
            # and the row is committed only once the file is in place.
            with self.index.write_lock:
                added, replaced = self.index.add_instance(
                    rec,
                    relative,
                    size,
                    stored_syntax,
                    calling_ae,
                    truncated,
                    origin_ae,
                )
                if not added:
                    return IngestResult(rec, False, final)
                try:
                    self.files.place(temp, relative)
                    temp = None
                except BaseException:
                    self.index.rollback()
                    raise
                try:
                    self.index.commit()
                except BaseException:
                    final.unlink(missing_ok=True)
                    raise
            if replaced is not None and replaced != relative:
                self.files.absolute(replaced).unlink(missing_ok=True)
            if replaced is not None:
                logger.warning(
                    "Object '%s' received complete; it replaces the copy that "
                    "had arrived cut short",
                    rec.SOPInstanceUID,
                )
        finally:
            if temp is not None:
                self.files.discard_temp(temp)
        for listener in self._listeners:
            try:
                listener(rec, calling_ae)
            except Exception:
                logger.exception("A listener of stored objects failed")
        return IngestResult(rec, True, final, truncated)

    def _parse(
        self,
        data: bytes,
        transfer_syntax: str,
        sop_class_uid: str | None,
        sop_instance_uid: str | None,
    ) -> tuple[InstanceRecord, str, bool]:
        parsed = parse_dataset(data, transfer_syntax, INDEX_TAGS)
        try:
            rec = InstanceRecord.from_dataset(parsed.dataset)
        except Exception as exc:
            raise CannotUnderstandError(
                f"the data set's identifying attributes cannot be read: {exc}"
            ) from exc
        if rec.SOPClassUID == MEDIA_DIRECTORY_SOP_CLASS:
            raise CannotUnderstandError(
                "a DICOMDIR (media directory) is not an object to store"
            )
        requested_class = (sop_class_uid or "").strip("\x00 ")
        requested_instance = (sop_instance_uid or "").strip("\x00 ")
        if requested_class and requested_class != rec.SOPClassUID:
            raise DataSetMismatchError(
                f"the request says SOP Class '{requested_class}', the data set "
                f"is '{rec.SOPClassUID}'"
            )
        if requested_instance and requested_instance != rec.SOPInstanceUID:
            raise CannotUnderstandError(
                f"the request says SOP Instance '{requested_instance}', the data "
                f"set is '{rec.SOPInstanceUID}'"
            )
        if not rec.StudyInstanceUID or not rec.SeriesInstanceUID:
            logger.warning(
                "Object '%s' has no Study or Series Instance UID; indexed "
                "under an empty one",
                rec.SOPInstanceUID,
            )
        return rec, parsed.transfer_syntax, parsed.truncated

    def recover_incoming(self) -> None:
        """Finish or drop what a crash left in ``incoming/``.

        A complete file whose object is indexed but missing from ``files/``
        lost its rename to a power failure: it is put in place. Anything else
        there was never acknowledged as stored and is removed. Call it only
        where the data folder is owned (the engine, holding its lock): next
        to a running core, ``incoming/`` holds the files it is receiving.
        """
        for tmp in self.files.leftovers():
            placed = False
            try:
                parts = split_file(tmp.read_bytes())
                parsed = parse_dataset(parts.data, parts.transfer_syntax)
                uid = str(parsed.dataset.SOPInstanceUID)
                row = self.index.instance_path(uid)
                if row is not None and not self.files.absolute(row).exists():
                    self.files.place_leftover(tmp, row)
                    placed = True
                    logger.warning("Recovered '%s' after a crash", row)
            except Exception as exc:
                logger.debug("Left-over '%s' is incomplete: %s", tmp, exc)
            if not placed:
                logger.warning("Removing incomplete file '%s' left by a crash", tmp)
                tmp.unlink(missing_ok=True)

    def recover_removals(self) -> int:
        """Finish the removals a crash interrupted (their files); call it
        where the data folder is owned (the engine), before serving."""
        finished = self.removals.finish_pending()
        if finished:
            logger.warning(
                "Finished removing the files of %d objects: a removal had been "
                "interrupted",
                finished,
            )
        return finished

    def _check_space(self, size: int) -> None:
        free = self.free_bytes()
        if free - size < self.min_free_bytes:
            raise OutOfResourcesError(
                f"storing {size} bytes would leave {max(free - size, 0)} bytes "
                f"free, below the reserve of {self.min_free_bytes} bytes"
            )

    def _write(
        self,
        data: bytes,
        transfer_syntax: str,
        calling_ae: str,
        sop_class_uid: str,
        sop_instance_uid: str,
    ) -> TempFile:
        meta = encode_file_meta(
            sop_class_uid, sop_instance_uid, transfer_syntax, calling_ae
        )
        try:
            return self.files.write_temp((meta, data))
        except OSError as exc:
            raise OutOfResourcesError(
                f"the object cannot be written: {exc.strerror}"
            ) from exc

    def status(self) -> dict[str, Any]:
        """Counters for the client's status bar."""
        return {
            "instances": self.index.count_instances(),
            "removed": self.removals.count(),
            "data_dir": str(self.data_dir),
        }
