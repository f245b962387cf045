"""Importing files into the archive: ``jivex import`` and the link's
``import`` method.

Each file goes through :meth:`Store.ingest`, the path of C-STORE: routing
rules, ``instance_stored`` events and the single writer of the index and the
files all apply when the core that serves the data folder imports it. What
the store logs about a file (a data set cut short, a copy replaced) comes
back with the file's outcome, so the command line can print it next to the
file's name wherever the import ran.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from jivex_core.errors import CannotUnderstandError, JivexError
from jivex_core.store import Store
from jivex_core.store.dicomfile import MEDIA_DIRECTORY_SOP_CLASS, split_file

logger = logging.getLogger(__name__)

#: The outcomes of one file.
STORED, KEPT, SKIPPED, FAILED = "stored", "kept", "skipped", "failed"


class _ThreadWarnings(logging.Handler):
    """Collects what the store logs at WARNING and above in one thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def import_file(store: Store, path: Path) -> dict[str, Any]:
    """Import one file; never raises for the file's own faults.

    Returns ``{"path", "outcome", "uid", "message", "warnings"}``: outcome
    ``stored``, ``kept`` (already stored), ``skipped`` (not a DICOM object
    to store) or ``failed`` (cannot be read, or the store refused it), the
    SOP Instance UID when known, the reason when not stored, and what the
    store logged about it.
    """
    watcher = _ThreadWarnings()
    store_logger = logging.getLogger("jivex_core.store")
    store_logger.addHandler(watcher)
    try:
        outcome, uid, message = _import(store, path)
    finally:
        store_logger.removeHandler(watcher)
    return {
        "path": str(path),
        "outcome": outcome,
        "uid": uid,
        "message": message,
        "warnings": watcher.messages,
    }


def _import(store: Store, path: Path) -> tuple[str, str, str]:
    try:
        if not path.is_file():
            kind = "does not exist" if not path.exists() else "is not a regular file"
            return FAILED, "", kind
        raw = path.read_bytes()
    except OSError as exc:
        return FAILED, "", f"cannot be read: {exc.strerror}"
    try:
        parts = split_file(raw)
    except CannotUnderstandError as exc:
        return SKIPPED, "", str(exc)
    if parts.media_sop_class == MEDIA_DIRECTORY_SOP_CLASS or parts.is_dicomdir:
        return SKIPPED, "", "a DICOMDIR (media directory), not an object to store"
    try:
        result = store.ingest(parts.data, parts.transfer_syntax, "")
    except CannotUnderstandError as exc:
        return SKIPPED, "", f"not a storable DICOM object: {exc}"
    except JivexError as exc:
        return FAILED, "", str(exc)
    uid = result.record.SOPInstanceUID
    if not result.stored:
        return KEPT, uid, ""
    if result.incomplete:
        return STORED, uid, "incomplete: its data set ends early"
    return STORED, uid, ""
