"""The message protocol between the core process and its clients.

The core listens on a loopback TCP port of its own choosing and writes where
to find it to ``<data folder>/core-link.json`` (:class:`LinkInfo`, readable
only by the user). A client connects and exchanges messages, one JSON object
per line, UTF-8:

``{"type": "hello", "token": T, "version": 1}``
    First message from the client; *T* is the token of the link file. The core
    answers ``{"type": "welcome", "version": 1, "pid": P, "ae_title": A}`` or
    closes the connection.
``{"type": "request", "id": N, "method": M, "params": {...}}``
    A request; *N* is chosen by the client and echoed in the reply.
``{"type": "reply", "id": N, "result": ...}``
``{"type": "reply", "id": N, "error": {"code": C, "message": S}}``
    The answer to request *N*, in any order relative to other replies.
``{"type": "event", "name": E, "data": {...}}``
    Sent by the core to every connected client, unasked.

Methods (``params`` → ``result``):

``ping`` → ``{"pid": int, "version": str}``
``status`` → ``{"ae_title", "storage_port", "query_port", "data_dir",
    "instances": int, "removed": int}`` (removed: references kept)
``list_studies`` ``{"limit": int?, "removed": bool?}`` → list of study rows:
    PatientName, PatientID, PatientBirthDate, PatientSex, StudyInstanceUID,
    StudyDate, StudyTime, StudyDescription, AccessionNumber,
    ModalitiesInStudy (list), NumberOfStudyRelatedSeries,
    NumberOfStudyRelatedInstances, LastReceived (ISO date-time). With
    *removed*, each row adds ``Removed`` (false), ``RemovedInstances`` (how
    many of its objects were removed locally), ``RemovedAt`` and
    ``RemovedFrom`` (their origins); then come the studies removed whole,
    with ``Removed`` true and the counts of what was removed.
``list_series`` ``{"StudyInstanceUID": str, "removed": bool?}`` → series
    rows: SeriesInstanceUID, Modality, SeriesNumber, SeriesDescription,
    NumberOfSeriesRelatedInstances; with *removed*, ``Removed`` and
    ``RemovedInstances`` as for studies, and the series removed whole
``list_instances`` ``{"SeriesInstanceUID": str}`` → instance rows:
    SOPInstanceUID, SOPClassUID, InstanceNumber, NumberOfFrames, path
    (absolute), in display order (Instance Number, then receive order)

``remotes`` → the remote AE table (``[[remote]]`` and ``--remote``), in the
    configuration's order: list of {ae_title, host, port}
``send`` ``{"to": AET, "uids": [str]}`` → job (see ``jobs``) with
    ``errors``: [{uid, error}] for the inputs that name nothing stored (the
    others are sent); an error when none names anything stored
``find`` ``{"from": AET, "level": str, "keys": {keyword: value}, "limit": int?,
    "query_id": str?}`` → ``{"rows": [{keyword: str}], "status": int,
    "truncated": bool, "cancelled": bool, "errors": [str]}``
``cancel_find`` ``{"query_id": str}`` → ``{"cancelled": bool}``: stops the
    running ``find`` of that id between two answers (C-FIND-CANCEL)
``move`` ``{"from": AET, "level": str, "uids": [str], "study": str?}`` →
    list of jobs (one per 500 UIDs). With ``"check": bool`` given: ``{"jobs":
    [job], "errors": [{uid, error}], "note": str}``; when true, a C-FIND
    first asks which inputs the remote has, the others are errors (an error
    when it has none), and *note* says when that C-FIND failed
``import`` ``{"paths": [absolute path]}`` → per file ``{"path", "outcome":
    "stored"|"kept"|"skipped"|"failed", "uid", "message", "warnings":
    [str]}``: the core imports the files (routing, ``instance_stored``) as
    ``jivex import`` does
``delete`` ``{"uids": [str], "dry_run": bool?}`` → what was (would be)
    removed locally: ``{"studies": [{StudyInstanceUID, StudyDate,
    StudyDescription, PatientName, PatientID, instances, of, size, origins,
    not_reloadable}], "patients", "series", "instances", "size",
    "not_reloadable", "origins", "errors": [{uid, error}], "dry_run"}``;
    an error when no input names anything stored. Patients by Patient ID,
    studies, series or instances by UID, as ``send`` takes them.
``reload`` ``{"uids": [str]}`` → ``{"jobs": [job], "instances": int,
    "errors": [{uid, error}]}``: retrieves (kind ``move``, ``request.reload``
    = objects expected) from the remote AE each removed object came from;
    an error when nothing can be reloaded (not removed, no origin, origin no
    longer in the remote AE table). The same retrieve already queued or
    running is returned instead of a new one (a queued one runs now).
``list_removed`` ``{"uids": [str]?}`` → references (all, or those of the
    given patients, studies, series, instances): the keys of ``jivex ls
    --removed --level instance``
``jobs`` ``{"states": [str]?, "limit": int?}`` → jobs, newest first: id,
    kind, state, remote_ae, created_at, updated_at, next_attempt_at, attempts,
    last_error, total, completed, failed, warning, remaining, request
``job`` ``{"id": int, "items": bool?}`` → one job (with its objects)
``cancel_job`` / ``retry_job`` ``{"id": int}`` → the job

``save_presentation`` ``{"state": dict}`` → ``{"SOPInstanceUID",
    "SeriesInstanceUID", "StudyInstanceUID", "path"}``: *state* is
    :func:`jivex_core.imaging.presentation.state_to_dict` of the state; the
    core reads the referenced images from the archive, writes a Grayscale
    Softcopy Presentation State (:mod:`jivex_core.imaging.gsps`) and stores
    it like a received object (``instance_stored`` follows), in the study's
    PR series of this station (Series Number 9001 or the next free one).
    An image not in the archive, a colour image or a malformed state is a
    ``bad_params`` error whose message names it.
``save_key_objects`` ``{"selection": dict}`` → the same: *selection* is
    :func:`~jivex_core.imaging.presentation.selection_to_dict`; images may
    leave SOPClassUID empty (the archive knows it); the document goes to
    the study's KO series of this station (9101 on).
``study_documents`` ``{"StudyInstanceUID": str}`` → every presentation
    state and key object document of the study, oldest first: SOPClassUID,
    SOPInstanceUID, SeriesInstanceUID, Modality, SeriesNumber,
    InstanceNumber, path (absolute), label (Content Label, or the KO
    title's meaning), title ([value, scheme, meaning] for a KO, else
    null), description (Content Description, or the KO's text), creator,
    date and time (of creation, or of the KO's content), references (the
    SOP Instance UIDs the object applies to or flags), and error when the
    file could not be read. Open one by reading its file with
    :func:`jivex_core.imaging.gsps.presentation_from_dataset` or
    :func:`jivex_core.imaging.ko.key_objects_from_dataset`.

Events:

``instance_stored`` ``{PatientID, PatientName, StudyInstanceUID,
    SeriesInstanceUID, SOPInstanceUID, SOPClassUID, Modality, calling_ae}``
``service_state`` ``{"service": str, "state": "running"|"stopped",
    "port": int?, "error": str?}``
``core_stopping`` ``{}``
``job`` a job, as ``jobs`` lists it, whenever its state changes
``job_progress`` ``{"id": int}`` after each object of a running job
``removed`` ``{"StudyInstanceUIDs": [str], "instances": int, "reason":
    "delete"|"lifetime"}`` after objects were removed locally (references
    go away unannounced: the object's ``instance_stored`` says it is back)

Dates are DICOM strings (``YYYYMMDD``) so that rows read the same as
``jivex ls --json``. Names are Unicode, already decoded from the object's
Specific Character Set.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = 1
LINK_FILE_NAME = "core-link.json"

#: Error codes of replies.
ERR_UNKNOWN_METHOD = "unknown_method"
ERR_BAD_PARAMS = "bad_params"
ERR_INTERNAL = "internal"


def encode(message: dict[str, Any]) -> bytes:
    """Encode one message as a line of JSON."""
    return (
        json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        + b"\n"
    )


def decode(line: bytes) -> dict[str, Any]:
    """Decode one line; raise ValueError when it is not a JSON object."""
    message = json.loads(line.decode("utf-8"))
    if not isinstance(message, dict) or "type" not in message:
        raise ValueError("a protocol message is a JSON object with a 'type'")
    return message


def request(msg_id: int, method: str, params: dict[str, Any] | None = None) -> dict:
    """Build a request message."""
    return {"type": "request", "id": msg_id, "method": method, "params": params or {}}


def event(name: str, data: dict[str, Any]) -> dict:
    """Build an event message."""
    return {"type": "event", "name": name, "data": data}


@dataclass(frozen=True)
class LinkInfo:
    """Where a running core listens for clients, as written to the link file."""

    host: str
    port: int
    token: str
    pid: int

    @staticmethod
    def new_token() -> str:
        """Return a fresh random token for a core's link."""
        return secrets.token_urlsafe(24)

    def write(self, data_dir: Path) -> Path:
        """Write the link file atomically, readable by the owner only."""
        path = data_dir / LINK_FILE_NAME
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh)
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, data_dir: Path) -> LinkInfo | None:
        """Read the link file of *data_dir*, or None when there is none."""
        try:
            with open(data_dir / LINK_FILE_NAME, encoding="utf-8") as fh:
                raw = json.load(fh)
            return cls(
                str(raw["host"]), int(raw["port"]), str(raw["token"]), int(raw["pid"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
