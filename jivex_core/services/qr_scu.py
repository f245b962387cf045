"""JiveX Client Communication Service (statement 3.2.6): C-FIND and C-MOVE.

Queries go to the archives of the remote AE table. The association proposes
Study Root and Patient Root; the model is chosen from what the peer accepts
and the level asked for (PATIENT needs Patient Root). Each answer becomes a
row of strings keyed by DICOM keyword, as ``jivex ls --json`` has them. When
the answers outnumber the node's ``max_query_results`` (or the caller's
cancel event is set), a C-FIND-CANCEL is sent and the result says it was cut.
A broken identifier in one answer is reported and skipped, not fatal: each
is decoded strictly from the bytes received (the Q/R SCP's own decoder,
:func:`jivex_core.store.dicomfile.decode_identifier`), so a value running
past the end, garbage or an answer with no attribute at all is named, never
turned into a row of what pydicom could make of it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import build_context, build_role
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import QR_MOVE_SERVICE_CLASS_STATUS, code_to_category

from jivex_core.config import RemoteNode, Settings
from jivex_core.jobs.runner import JobContext, JobRunner, RetryLater, Stopping
from jivex_core.services.association import make_ae
from jivex_core.services.origins import Origins
from jivex_core.services.storage_scp import store_received
from jivex_core.services.storage_scu import MAX_CONTEXTS, AssociationError, associate
from jivex_core.sopclasses import STORAGE_SOP_CLASSES
from jivex_core.store import Store
from jivex_core.store.dicomfile import decode_identifier
from jivex_core.store.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    JobError,
    name_list,
)
from jivex_core.store.query import KEYS as INDEX_KEYS
from jivex_core.store.query import check_key_level

logger = logging.getLogger(__name__)

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

#: The return keys of table 26 asked at each level, unless the caller names
#: its own; matching keys come on top.
RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
    ),
    "STUDY": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyInstanceUID",
        "ReferringPhysicianName",
        "StudyDescription",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
    ),
}


_FIND = {
    True: PatientRootQueryRetrieveInformationModelFind,
    False: StudyRootQueryRetrieveInformationModelFind,
}
_MOVE = {
    True: PatientRootQueryRetrieveInformationModelMove,
    False: StudyRootQueryRetrieveInformationModelMove,
}
_GET = {
    True: PatientRootQueryRetrieveInformationModelGet,
    False: StudyRootQueryRetrieveInformationModelGet,
}
_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian]
#: What C-MOVE and C-GET statuses mean (the two tables differ in none we
#: name), for answers that carry no Error Comment.
_RETRIEVE_STATUS = QR_MOVE_SERVICE_CLASS_STATUS


class QueryError(ValueError):
    """A query or retrieve that cannot be sent; the message names why."""


@dataclass
class FindResult:
    """What a remote C-FIND answered."""

    rows: list[dict[str, str]] = field(default_factory=list)
    status: int | None = None
    truncated: bool = False
    #: Cut short because the caller asked, not because of the limit.
    cancelled: bool = False
    errors: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """For the link and ``jivex find --json``."""
        return {
            "rows": self.rows,
            "status": self.status,
            "truncated": self.truncated,
            "cancelled": self.cancelled,
            "errors": self.errors,
        }


def identifier(
    level: str, keys: dict[str, str], extra: tuple[str, ...] = ()
) -> Dataset:
    """A C-FIND or C-MOVE identifier from keywords and values.

    Raises QueryError for an unknown level or keyword.
    """
    level = level.upper()
    if level not in LEVELS:
        raise QueryError(f"level '{level}' is not one of {', '.join(LEVELS)}")
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    text = []
    for keyword, value in {**dict.fromkeys(extra, ""), **keys}.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise QueryError(f"'{keyword}' is not a DICOM keyword")
        if keyword in keys:
            # The level rules our own SCP applies: a peer would refuse the
            # query (A900) or match it in its own way.
            try:
                check_key_level(keyword, level)
            except ValueError as exc:
                raise QueryError(
                    f"{exc} (query at the {INDEX_KEYS[keyword].level.lower()} "
                    "level for it)"
                ) from None
        vr = dictionary_VR(tag)
        if vr == "SQ":
            raise QueryError(f"'{keyword}' is a sequence; give its items' keys")
        value = str(value)
        text.append(value)
        if vr in ("US", "UL", "SS", "SL", "FL", "FD") and value:
            raise QueryError(f"'{keyword}' ({vr}) cannot be a matching key here")
        ds.add_new(tag, vr, value or None)
    if any(not value.isascii() for value in text):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_string(v) for v in value)
    return str(value)


def _row(ds: Dataset) -> dict[str, str]:
    row: dict[str, str] = {}
    for elem in ds:
        if elem.keyword in ("", "SpecificCharacterSet", "QueryRetrieveLevel"):
            continue
        if elem.VR == "SQ":
            continue
        row[elem.keyword] = _string(elem.value).strip()
    return row


class _RawAnswers:
    """The identifiers of the C-FIND responses an association receives, as
    bytes, in order: pynetdicom hands over only what pydicom made of them.

    Bound to EVT_DIMSE_RECV, which fires before the response is queued for
    the caller, so an answer's bytes are here when its status is.
    """

    def __init__(self) -> None:
        self.pending: deque[bytes] = deque()

    def __call__(self, event: Any) -> None:
        message = event.message
        if type(message).__name__ != "C_FIND_RSP":
            return
        status = message.command_set.get("Status")
        if status is None or code_to_category(int(status)) != "Pending":
            return
        data = message.data_set.getvalue() if message.data_set is not None else b""
        self.pending.append(data)

    def row(self, assoc: Association, cx_id: int) -> dict[str, str]:
        """The next answer as a row; ValueError names what is wrong."""
        data = self.pending.popleft() if self.pending else b""
        (context,) = [cx for cx in assoc.accepted_contexts if cx.context_id == cx_id]
        ts = context.transfer_syntax[0]
        try:
            answer = decode_identifier(data, ts.is_implicit_VR, ts.is_little_endian)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("malformed identifier: ")) from None
        row = _row(answer)
        if not row:
            raise ValueError("no attribute that a row can show")
        return row


def _model(assoc: Association, models: dict[bool, str], level: str) -> tuple[str, int]:
    accepted = {
        str(cx.abstract_syntax): cx.context_id for cx in assoc.accepted_contexts
    }
    order = [True] if level == "PATIENT" else [False, True]
    for patient_root in order:
        uid = models[patient_root]
        if uid in accepted:
            return uid, accepted[uid]
    assoc.release()
    wanted = " or ".join(models[p].name for p in order)
    raise QueryError(f"the peer accepted no context for {wanted}")


def find(
    ae: AE,
    node: RemoteNode,
    level: str,
    keys: dict[str, str],
    *,
    return_keys: tuple[str, ...] | None = None,
    limit: int | None = None,
    cancel: threading.Event | None = None,
) -> FindResult:
    """Query *node*; QueryError when the query cannot be sent at all."""
    level = level.upper()
    extra = RETURN_KEYS.get(level, ()) if return_keys is None else return_keys
    if level == "IMAGE" and return_keys is None:
        extra = (*extra, *node.optional_keys)
    request = identifier(level, keys, extra)
    limit = limit or node.max_query_results
    contexts = [build_context(_FIND[p], _SYNTAXES) for p in (False, True)]
    raw = _RawAnswers()
    try:
        assoc = associate(ae, node, contexts, handlers=[(evt.EVT_DIMSE_RECV, raw)])
    except AssociationError as exc:
        raise QueryError(str(exc)) from None
    result = FindResult()
    try:
        model, cx_id = _model(assoc, _FIND, level)
        cancelled = False
        number = 0
        previous = None
        for status, _decoded in assoc.send_c_find(request, model, msg_id=1):
            if status is previous:
                # pynetdicom yields an answer it could not decode twice.
                continue
            previous = status
            if "Status" not in status:
                result.errors.append("the peer sent no final response")
                break
            code = int(status.Status)
            category = code_to_category(code)
            if category != "Pending":
                result.status = code
                if category == "Failure":
                    comment = str(status.get("ErrorComment", "") or "")
                    raise QueryError(
                        f"'{node.ae_title}' answered 0x{code:04X}"
                        + (f": {comment}" if comment else "")
                    )
                break
            number += 1
            try:
                row = raw.row(assoc, cx_id)
            except Exception as exc:
                if result.truncated:
                    continue
                result.errors.append(f"answer {number}: broken identifier ({exc})")
                logger.warning(
                    "C-FIND answer %d from '%s' is broken: %s",
                    number,
                    node.ae_title,
                    exc,
                )
            else:
                if result.truncated:
                    continue  # answers the peer sent before it saw the cancel
                result.rows.append(row)
            asked_to_stop = bool(cancel and cancel.is_set())
            if (len(result.rows) >= limit or asked_to_stop) and not cancelled:
                assoc.send_c_cancel(1, cx_id)
                cancelled = True
                result.truncated = True
                result.cancelled = asked_to_stop
    finally:
        if assoc.is_established:
            assoc.release()
    logger.info(
        "C-FIND at %s level to '%s': %d answers%s",
        level,
        node.ae_title,
        len(result.rows),
        " (cancelled)" if result.truncated else "",
    )
    return result


#: What C-GET proposes for the objects to come back on its association: the
#: storage classes of table 3, each with the syntaxes an archive keeps.
_GET_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]


def start_get(
    ae: AE, node: RemoteNode, level: str, keys: dict[str, str], on_store: Any
) -> tuple[Association, Any, int]:
    """Open a C-GET association and send the request.

    The storage contexts carry SCP/SCU Role Selection items asking for the
    SCP role (PS3.4 C.4.3.1): without them a peer may not send anything
    back. *on_store* handles each C-STORE that arrives. Errors as for
    :func:`start_move`.
    """
    request = identifier(level, keys)
    storage = list(STORAGE_SOP_CLASSES)[: MAX_CONTEXTS - 2]
    contexts = [build_context(_GET[p], _SYNTAXES) for p in (False, True)]
    contexts += [build_context(uid, _GET_SYNTAXES) for uid in storage]
    roles = [build_role(uid, scp_role=True) for uid in storage]
    assoc = associate(
        ae, node, contexts, ext_neg=roles, handlers=[(evt.EVT_C_STORE, on_store)]
    )
    model, cx_id = _model(assoc, _GET, level.upper())
    responses = assoc.send_c_get(request, model, msg_id=1)
    return assoc, responses, cx_id


def move_contexts() -> list:
    """The presentation contexts of a C-MOVE association (table 29)."""
    return [build_context(_MOVE[p], _SYNTAXES) for p in (False, True)]


def start_move(
    ae: AE,
    node: RemoteNode,
    level: str,
    keys: dict[str, str],
    destination: str,
    msg_id: int = 1,
) -> tuple[Association, Any, int]:
    """Open the association and send the C-MOVE; returns the association,
    the response iterator and the context ID (for C-MOVE-CANCEL).

    The archive's C-STORE sub-operations carry *msg_id* as Move Originator
    Message ID (PS3.4 C.4.2.2.2): it tells our Storage SCP which retrieve
    an object belongs to. AssociationError when the peer cannot be reached
    or refuses (worth a retry), QueryError when the request itself is wrong.
    """
    request = identifier(level, keys)
    assoc = associate(ae, node, move_contexts())
    model, cx_id = _model(assoc, _MOVE, level.upper())
    responses = assoc.send_c_move(request, destination, model, msg_id=msg_id)
    return assoc, responses, cx_id


#: UIDs per C-MOVE (and per C-FIND that checks them): an archive may give up
#: on a longer list (dcmqrscp then matched everything).
MOVE_CHUNK = 500


def _chunks(values: list[str], size: int = MOVE_CHUNK) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _retrieve_key(remote_ae: str, request: dict[str, Any]) -> tuple[str, str, str]:
    """What tells two retrieves of the same objects from the same node."""
    keys = json.dumps(request.get("keys") or {}, sort_keys=True)
    return remote_ae, str(request.get("level", "STUDY")).upper(), keys


class RetrieveJobs:
    """Queues and runs retrieves (C-MOVE to our own Storage SCP) and answers
    queries, which nobody queues: someone waits for them."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        runner: JobRunner,
        origins: Origins | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.ae = make_ae(settings)
        #: Shared with the Storage SCP: which retrieve an arriving object is of.
        self.origins = origins if origins is not None else Origins(settings)
        self._queries: dict[str, threading.Event] = {}
        runner.register("move", self)

    def find(
        self,
        remote_ae: str,
        level: str,
        keys: dict[str, str],
        limit: int | None,
        query_id: str = "",
    ) -> dict[str, Any]:
        """Query *remote_ae* now; QueryError or JobError say what is wrong.

        With a *query_id*, :meth:`cancel_find` can stop it between answers.
        """
        node = self.runner.node(remote_ae)
        stop = threading.Event()
        if query_id:
            self._queries[query_id] = stop
        try:
            return find(self.ae, node, level, keys, limit=limit, cancel=stop).view()
        finally:
            self._queries.pop(query_id, None)

    def cancel_find(self, query_id: str) -> bool:
        """Ask a running query to stop (C-FIND-CANCEL); False if none runs."""
        stop = self._queries.get(query_id)
        if stop is None:
            return False
        stop.set()
        return True

    def queue(
        self,
        remote_ae: str,
        level: str,
        keys: dict[str, str],
        extra: dict[str, Any] | None = None,
    ) -> Job:
        """Queue one C-MOVE of what *keys* select at *level*; *extra* goes
        into the job's request (``reload``: the objects it brings back)."""
        identifier(level, keys)  # refuse a bad request now, not at its turn
        return self.runner.submit(
            "move", remote_ae, {"level": level.upper(), "keys": keys, **(extra or {})}
        )

    def reload(self, values: list[str]) -> dict[str, Any]:
        """Queue the retrieves that fetch removed objects (patients by ID,
        studies, series, instances) again from the remote AE each came from.

        Returns ``{"jobs": [...], "instances": n, "errors": [{uid, error}]}``;
        JobError when nothing can be reloaded (its message names each input
        and why). A reload asked again while the same retrieve is queued or
        running reuses it; one waiting for its next attempt runs now.
        """
        if not any(v.strip() for v in values):
            raise JobError("no UIDs given")
        known = {node.ae_title for node in self.settings.remote}
        plan = self.store.removals.plan_reload(values, known)
        if not plan.requests:
            raise JobError("; ".join(p.error for p in plan.problems))
        active = {
            _retrieve_key(job.remote_ae, job.request): job
            for job in self.runner.queue.list(1000, (QUEUED, RUNNING))
            if job.kind == "move"
        }
        jobs = []
        for request in plan.requests:
            wanted = {"level": request.level, "keys": request.keys}
            job = active.get(_retrieve_key(request.origin_ae, wanted))
            if job is None:
                job = self.queue(
                    request.origin_ae,
                    request.level,
                    request.keys,
                    {"reload": request.instances},
                )
            elif job.state == QUEUED:
                job = self.runner.retry(job.pk)
            jobs.append(job)
        for job, request in zip(jobs, plan.requests, strict=True):
            logger.info(
                "Job %d reloads %d removed objects from '%s' (%s level)",
                job.pk,
                request.instances,
                request.origin_ae,
                request.level,
            )
        return {
            "jobs": [job.view() for job in jobs],
            "instances": sum(r.instances for r in plan.requests),
            "errors": [p.view() for p in plan.problems],
        }

    def queue_uids(
        self,
        remote_ae: str,
        level: str,
        uids: list[str],
        study: str = "",
        check: bool = False,
    ) -> dict[str, Any]:
        """Queue retrieves of patients (by ID), studies or series by UID.

        Series are hierarchical below their study: given *study*, they are
        retrieved from it; else the remote is asked which study each series
        belongs to (an archive that answers only hierarchical queries refuses
        that), and one retrieve runs per study. UID lists go out in C-MOVEs
        of at most :data:`MOVE_CHUNK` UIDs: an archive may give up matching
        a longer list, or match everything.

        With *check*, a C-FIND asks first which inputs the remote has; those
        it does not have are named under ``errors`` and not asked for (a
        C-MOVE's counts cannot say which of a list matched). When that C-FIND
        fails, the retrieves are queued unchecked and ``note`` says so.
        Returns ``{"jobs": [Job], "errors": [{uid, error}], "note": str}``;
        JobError when no input can be retrieved.
        """
        level = level.upper()
        values = list(dict.fromkeys(u.strip() for u in uids if u.strip()))
        if not values:
            raise JobError("no UIDs given")
        if level not in ("PATIENT", "STUDY", "SERIES"):
            raise JobError(f"level '{level}' is not patient, study or series")
        node = self.runner.node(remote_ae)
        note = ""
        if level == "SERIES" and not study:
            by_study = self._studies_of_series(node, values)
            known = {uid for series in by_study.values() for uid in series}
        else:
            by_study = {}
            known = set(values)
            if check:
                try:
                    known = self._known(node, level, values, study)
                except QueryError as exc:
                    note = (
                        f"could not ask '{remote_ae}' which of the inputs it has "
                        f"({exc}); all are asked for"
                    )
        missing = [v for v in values if v not in known]
        what = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series"}[level]
        if missing and (not check or len(missing) == len(values)):
            hint = ""
            if check and not (level == "SERIES" and not study):
                # An archive may hide what it has from an AE it does not know.
                hint = " (its C-FIND found none; jivex move --no-check asks anyway)"
            raise JobError(f"'{remote_ae}' has no {what} " + name_list(missing) + hint)
        wanted = [v for v in values if v in known]
        jobs: list[Job] = []
        if level == "PATIENT":
            # Patient IDs are no UIDs: no list matching, one retrieve each.
            jobs = [self.queue(remote_ae, level, {"PatientID": v}) for v in wanted]
        elif level == "STUDY":
            jobs = [
                self.queue(remote_ae, level, {"StudyInstanceUID": "\\".join(chunk)})
                for chunk in _chunks(wanted)
            ]
        else:
            groups = by_study or {study: wanted}
            for study_uid, series in groups.items():
                for chunk in _chunks(series):
                    keys = {
                        "StudyInstanceUID": study_uid,
                        "SeriesInstanceUID": "\\".join(chunk),
                    }
                    jobs.append(self.queue(remote_ae, "SERIES", keys))
        return {
            "jobs": jobs,
            "errors": [
                {"uid": uid, "error": f"'{remote_ae}' has no {what} '{uid}'"}
                for uid in missing
            ],
            "note": note,
        }

    def _studies_of_series(
        self, node: RemoteNode, values: list[str]
    ) -> dict[str, list[str]]:
        """The study of each series the remote knows, by C-FIND."""
        by_study: dict[str, list[str]] = {}
        for chunk in _chunks(values):
            try:
                found = find(
                    self.ae,
                    node,
                    "SERIES",
                    {"SeriesInstanceUID": "\\".join(chunk), "StudyInstanceUID": ""},
                    return_keys=(),
                    limit=len(chunk) + 1,
                )
            except QueryError as exc:
                raise JobError(
                    f"{exc}; give the series' study (jivex move --study UID)"
                ) from None
            for row in found.rows:
                series = row.get("SeriesInstanceUID", "")
                if series in chunk:
                    by_study.setdefault(row.get("StudyInstanceUID", ""), []).append(
                        series
                    )
        return by_study

    def _known(
        self, node: RemoteNode, level: str, values: list[str], study: str
    ) -> set[str]:
        """Which of *values* the remote has, by C-FIND; QueryError when it
        cannot be asked."""
        known: set[str] = set()
        if level == "PATIENT":
            # Study Root at study level: every archive answers it.
            for value in values:
                found = find(
                    self.ae,
                    node,
                    "STUDY",
                    {"PatientID": value, "StudyInstanceUID": ""},
                    return_keys=(),
                    limit=1,
                )
                if found.rows:
                    known.add(value)
            return known
        key = "StudyInstanceUID" if level == "STUDY" else "SeriesInstanceUID"
        for chunk in _chunks(values):
            keys = {key: "\\".join(chunk)}
            if level == "SERIES":
                keys["StudyInstanceUID"] = study
            found = find(
                self.ae, node, level, keys, return_keys=(), limit=len(chunk) + 1
            )
            known.update(row.get(key, "") for row in found.rows)
        return known & set(values)

    def __call__(self, ctx: JobContext) -> None:
        job, node = ctx.job, ctx.node
        level = str(job.request.get("level", "STUDY"))
        keys = {str(k): str(v) for k, v in job.request.get("keys", {}).items()}
        get = node.retrieve == "get"
        msg_id = 1 if get else self.origins.start_move(node.ae_title)
        try:
            try:
                if get:
                    assoc, responses, cx_id = start_get(
                        self.ae, node, level, keys, self._on_c_store(node)
                    )
                else:
                    assoc, responses, cx_id = start_move(
                        self.ae,
                        node,
                        level,
                        keys,
                        self.settings.network.ae_title,
                        msg_id,
                    )
            except AssociationError as exc:
                raise RetryLater(str(exc)) from None
            except QueryError as exc:
                ctx.finish(FAILED, str(exc))
                return
            name = "C-GET" if get else "C-MOVE"
            self._follow(ctx, assoc, responses, cx_id, name, msg_id)
        finally:
            if not get:
                self.origins.end_move(msg_id)

    def _on_c_store(self, node: RemoteNode) -> Any:
        label = f"'{node.ae_title}' (C-GET)"

        def handler(event: Any) -> int:
            return store_received(
                self.store, event, node.ae_title, label, node.ae_title
            )

        return handler

    def _follow(
        self,
        ctx: JobContext,
        assoc: Association,
        responses: Any,
        cx_id: int,
        name: str,
        msg_id: int = 1,
    ) -> None:
        """Count the pending responses of a retrieve until its final one."""
        job, node = ctx.job, ctx.node
        final = None
        cancel_sent = False
        try:
            for status, _answer in responses:
                if "Status" not in status:
                    break
                code = int(status.Status)
                remaining, completed, failed, warning = (
                    int(status.get(f"NumberOf{part}Suboperations", 0) or 0)
                    for part in ("Remaining", "Completed", "Failed", "Warning")
                )
                ctx.queue.set_counts(
                    job.pk,
                    remaining + completed + failed + warning,
                    completed,
                    failed,
                    warning,
                )
                if code_to_category(code) != "Pending":
                    final = (code, status)
                    break
                ctx.progress()
                try:
                    wants_cancel = ctx.check()
                except Stopping:
                    assoc.abort()
                    raise
                if wants_cancel and not cancel_sent:
                    assoc.send_c_cancel(msg_id, cx_id)
                    cancel_sent = True
        finally:
            if assoc.is_established:
                assoc.release()
        if final is None:
            raise RetryLater(
                f"'{node.ae_title}' ended the association before the final "
                f"{name} response"
            )
        code, status = final
        comment = str(status.get("ErrorComment", "") or "").strip()
        if not comment and code not in (0x0000, 0xFE00):
            # No comment of the archive's: what the status means (PS3.4
            # C.4.2.1.5, C.4.3.1.4), so a failure never reads as nothing.
            comment = _RETRIEVE_STATUS.get(code, ("", ""))[1]
        detail = f"'{node.ae_title}' answered 0x{code:04X}" + (
            f" ({comment})" if comment else ""
        )
        ours = self.settings.network.ae_title
        if code == 0x0000:
            ctx.finish(DONE)
        elif code == 0xFE00:
            ctx.finish(CANCELLED, "cancelled")
        elif code_to_category(code) == "Warning":
            ctx.finish(DONE, f"{detail}: some objects failed")
        elif code == 0xA801:
            ctx.finish(
                FAILED,
                f"{detail}: it does not know our AE title '{ours}' as a move "
                "destination",
            )
        else:
            ctx.finish(FAILED, detail)
        logger.info(
            "Job %d (%s from '%s') ended: %s", job.pk, name, node.ae_title, detail
        )
