"""C-MOVE and C-GET of the Query/Retrieve SCP (PS3.4 C.4.2 and C.4.3).

pynetdicom's own retrieve SCP wants every object as a decoded pydicom data
set and converts it on the way out; an archive sends files. So the Q/R
service class is replaced by :class:`QueryRetrieveService`, which answers
C-FIND through pynetdicom as before and runs retrieves itself: matching in
SQL on the unique keys, sub-operations through the Storage SCU
(:mod:`jivex_core.services.storage_scu`), a pending response with the counts
after each, and C-CANCEL checked before each sub-operation.

Final statuses: 0000 all stored; B000 some failed or had warnings; A702 none
could be stored; FE00 cancelled; A801 Move Destination not in the remote AE
table; A900 identifier does not fit the model; A701 more than 65,535
matches; C000 unable to process. Failures, warnings and cancels carry the
counts and the Failed SOP Instance UID List (PS3.4 C.4.2.1.6); A702 and
B000 an Error Comment (PS3.7 C.4) with the reason most sub-operations
failed for (destination unreachable or refusing, no presentation context
for a class, the status the destination answered), as do the refusals.

A server that stops lets the retrieves running finish up to its shutdown
timeout (:meth:`jivex_core.services.qr_scp.QueryRetrieveSCP.stop`); then
their associations are aborted, the requestor's and the destination's,
and no new sub-association is opened (:attr:`Retriever.stopping`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import association as association_module
from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE
from pynetdicom.dsutils import encode
from pynetdicom.service_class import QueryRetrieveServiceClass
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from jivex_core.config import Settings
from jivex_core.services import storage_scu
from jivex_core.services.association import (
    CancelRequests,
    Peer,
    error_comment,
    make_ae,
    settle_incoming,
)
from jivex_core.services.storage_scu import AssociationError, Outcome, Outgoing
from jivex_core.store import Store
from jivex_core.store.dicomfile import decode_identifier
from jivex_core.store.query import (
    LEVELS,
    UNIQUE,
    QueryError,
    key_text,
    query_level,
    retrieve_rows,
)

logger = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_PENDING = 0xFF00
STATUS_CANCELLED = 0xFE00
STATUS_WARNING = 0xB000
STATUS_TOO_MANY_MATCHES = 0xA701
STATUS_UNABLE_TO_PERFORM = 0xA702
STATUS_UNKNOWN_DESTINATION = 0xA801
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000

#: Number of ... Sub-operations are US: a retrieve cannot count beyond this.
MAX_SUBOPERATIONS = 65535
#: New sub-associations a move opens after losing one.
MAX_RECONNECTS = 3

PATIENT_ROOT = {
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
}
RETRIEVE_MODELS = {
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
}
_REQUEST_OF_MODEL: dict[str, type] = {
    PatientRootQueryRetrieveInformationModelFind: C_FIND,
    StudyRootQueryRetrieveInformationModelFind: C_FIND,
    PatientRootQueryRetrieveInformationModelMove: C_MOVE,
    StudyRootQueryRetrieveInformationModelMove: C_MOVE,
    PatientRootQueryRetrieveInformationModelGet: C_GET,
    StudyRootQueryRetrieveInformationModelGet: C_GET,
}
QUERY_RETRIEVE_MODELS = RETRIEVE_MODELS | {
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
}


class Retriever:
    """What a retrieve needs from the core: settings, store, a sending AE."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.scu_ae = make_ae(settings)
        #: Set when the server gives up waiting for retrieves at shutdown.
        self.stopping = threading.Event()

    def select(self, identifier: Dataset, patient_root: bool) -> tuple[str, list]:
        """The level and the objects a retrieve identifier asks for.

        The identifier holds the unique key of its level (one value or a
        list) and, as PS3.4 C.4.2.2.1 asks, those of the levels above; SCUs
        that leave the upper ones out are served all the same, and other
        keys are ignored. Raises QueryError naming what is wrong.
        """
        level = query_level(identifier.get("QueryRetrieveLevel"), patient_root)
        depth = LEVELS.index(level)
        matching: dict[str, str] = {}
        for index, name in enumerate(LEVELS):
            keyword = UNIQUE[name]
            value = key_text(identifier.get(keyword)).strip()
            if index > depth:
                if value:
                    raise QueryError(f"{keyword} is below the {level} level")
                continue
            if index < (0 if patient_root else 1):
                # Study Root: Patient ID is a study attribute, a plain key.
                if value and "*" not in value and "?" not in value:
                    matching[keyword] = value
                continue
            if "*" in value or "?" in value:
                raise QueryError(f"{keyword} '{value}' holds a wild card")
            if "\\" in value and keyword == "PatientID":
                # List of UID matching (PS3.4 C.2.2.2.2) is for UIDs only.
                raise QueryError(f"{keyword} '{value}' holds more than one value")
            if index == depth and not value:
                article = "an" if level == "IMAGE" else "a"
                raise QueryError(f"{article} {level} retrieve needs {keyword}")
            if value:
                matching[keyword] = value
        rows = retrieve_rows(self.store.index.engine, matching)
        data_dir = self.store.data_dir
        return level, [
            Outgoing(
                r["SOPClassUID"],
                r["SOPInstanceUID"],
                r["TransferSyntaxUID"],
                data_dir / r["path"],
                bool(r["incomplete"]),
            )
            for r in rows
        ]


#: Attribute of an association serving a request right now: a stopping
#: server waits for those (up to its timeout), not for idle ones.
BUSY = "jivex_busy"
#: Attribute: when the association's last request ended (time.monotonic).
DONE_AT = "jivex_done_at"
#: Seconds a requestor has, after its last response, to release before a
#: stopping server aborts the association (they release at once).
RELEASE_GRACE = 1.0


def is_busy(assoc: Any) -> bool:
    """Whether *assoc* is serving a C-FIND, C-MOVE or C-GET request."""
    return bool(getattr(assoc, BUSY, False)) and assoc.is_established


def holds_on(assoc: Any) -> bool:
    """Whether a stopping server waits for *assoc*: it serves a request, or
    answered one a moment ago and its requestor is about to release."""
    if not assoc.is_established:
        return False
    done_at = getattr(assoc, DONE_AT, None)
    recent = done_at is not None and time.monotonic() - done_at < RELEASE_GRACE
    return is_busy(assoc) or recent


class QueryRetrieveService(QueryRetrieveServiceClass):
    """pynetdicom's Q/R service class with our own C-MOVE and C-GET."""

    def SCP(self, req: Any, context: Any) -> None:
        """Serve one C-FIND, C-MOVE or C-GET request."""
        cancels = self.dimse.cancel_req
        order = getattr(req, "jivex_order", None)
        if isinstance(cancels, CancelRequests) and order is not None:
            # Cancels that came before this request were for earlier ones; a
            # cancel right behind it stays and stops it (PS3.7 9.3.2.3).
            cancels.forget_before(order)
        expected = _REQUEST_OF_MODEL.get(str(context.abstract_syntax))
        if expected is not None and not isinstance(req, expected):
            # PS3.7 9.1: a request on the context of another SOP class.
            logger.warning(
                "%s from %s on a %s context refused (0x0122)",
                type(req).__name__.replace("_", "-"),
                Peer.of(self.assoc),
                context.abstract_syntax.name,
            )
            rsp = type(req)()
            rsp.MessageIDBeingRespondedTo = req.MessageID
            rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
            rsp.Status = 0x0122
            rsp.ErrorComment = error_comment(
                f"not a {context.abstract_syntax.name} request"
            )
            self.dimse.send_msg(rsp, context.context_id)
            return
        retriever = getattr(self.ae, "jivex_retriever", None)
        setattr(self.assoc, BUSY, True)
        try:
            if retriever is not None and isinstance(req, C_MOVE | C_GET):
                _Retrieve(self, retriever, req, context).run()
            else:
                super().SCP(req, context)
        finally:
            setattr(self.assoc, BUSY, False)
            setattr(self.assoc, DONE_AT, time.monotonic())


class _Retrieve:
    """One C-MOVE or C-GET request, from identifier to final response."""

    def __init__(
        self,
        service: QueryRetrieveService,
        retriever: Retriever,
        req: C_MOVE | C_GET,
        context: Any,
    ) -> None:
        self.service = service
        self.retriever = retriever
        self.req = req
        self.context = context
        self.is_move = isinstance(req, C_MOVE)
        self.name = "C-MOVE" if self.is_move else "C-GET"
        self.peer = Peer.of(service.assoc)
        self.remaining = 0
        self.completed = 0
        self.failed = 0
        self.warning = 0
        self.failed_uids: list[str] = []
        #: Why sub-operations failed, as Error Comment text, with counts.
        self.reasons: Counter[str] = Counter()
        self.cancelled = False
        self._msg_id = int(req.MessageID)
        #: Who the sub-operations go to, as comments name it.
        self.who = "the requestor"
        self._classes: dict[str, str] = {}

    # Responses -------------------------------------------------------------

    def _response(self, status: int) -> C_MOVE | C_GET:
        rsp = C_MOVE() if self.is_move else C_GET()
        rsp.MessageIDBeingRespondedTo = self.req.MessageID
        rsp.AffectedSOPClassUID = self.req.AffectedSOPClassUID
        rsp.Status = status
        return rsp

    def _send(self, rsp: C_MOVE | C_GET) -> None:
        self.service.dimse.send_msg(rsp, self.context.context_id)
        # The requestor only listens during a long retrieve: what we send
        # counts as traffic, or its association would time out under us.
        self.service.assoc.dul._idle_timer.restart()

    def _refuse(self, status: int, comment: str) -> None:
        # Refusals answer the peer's request: warnings, not our errors.
        logger.warning(
            "%s from %s refused with 0x%04X: %s", self.name, self.peer, status, comment
        )
        rsp = self._response(status)
        rsp.ErrorComment = error_comment(comment)
        self._send(rsp)

    def _comment(self) -> str:
        """Why sub-operations failed: the most frequent reason first."""
        if not self.reasons:
            return ""
        (reason, _count), *others = self.reasons.most_common()
        if others:
            more = len(others)
            reason += f" (and {more} other reason{'s' if more > 1 else ''})"
        return reason

    def _counted(self, status: int, *, remaining: bool) -> None:
        rsp = self._response(status)
        if status in (STATUS_UNABLE_TO_PERFORM, STATUS_WARNING) and self.reasons:
            rsp.ErrorComment = error_comment(self._comment())
        if remaining:
            rsp.NumberOfRemainingSuboperations = self.remaining
        rsp.NumberOfCompletedSuboperations = self.completed
        rsp.NumberOfFailedSuboperations = self.failed
        rsp.NumberOfWarningSuboperations = self.warning
        if status not in (STATUS_PENDING, STATUS_SUCCESS) and self.failed_uids:
            ds = Dataset()
            ds.FailedSOPInstanceUIDList = self.failed_uids
            ts = self.context.transfer_syntax[0]
            raw = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
            rsp.Identifier = BytesIO(raw or b"")
        self._send(rsp)

    # The request -----------------------------------------------------------

    def run(self) -> None:
        """Answer the request; never raises into pynetdicom."""
        try:
            self._run()
        except Exception as exc:
            logger.exception("%s from %s failed", self.name, self.peer)
            if self.service.assoc.is_established:
                self._refuse(STATUS_UNABLE_TO_PROCESS, f"retrieve failed: {exc}")

    def _run(self) -> None:
        ts = self.context.transfer_syntax[0]
        try:
            identifier = decode_identifier(
                self.req.Identifier.getvalue(), ts.is_implicit_VR, ts.is_little_endian
            )
        except ValueError as exc:
            self._refuse(STATUS_UNABLE_TO_PROCESS, str(exc))
            return
        node = None
        if self.is_move:
            destination = str(self.req.MoveDestination or "").strip()
            node = self.retriever.settings.remote_node(destination)
            if node is None:
                self._refuse(
                    STATUS_UNKNOWN_DESTINATION,
                    f"Move Destination '{destination}' is not a known AE",
                )
                return
            self.who = f"'{node.ae_title}'"
        patient_root = self.req.AffectedSOPClassUID in PATIENT_ROOT
        try:
            level, objects = self.retriever.select(identifier, patient_root)
        except QueryError as exc:
            self._refuse(STATUS_IDENTIFIER_MISMATCH, str(exc))
            return
        if len(objects) > MAX_SUBOPERATIONS:
            self._refuse(
                STATUS_TOO_MANY_MATCHES,
                f"{len(objects)} instances match; at most 65535 per retrieve",
            )
            return
        self.remaining = len(objects)
        self._classes = {obj.sop_instance: obj.sop_class for obj in objects}
        if self.is_move:
            self._move(objects, node)
        else:
            self._deliver(self.service.assoc, objects, originator=None)
        self._finish(level, node.ae_title if node else "")

    def _cancelled(self) -> bool:
        settle_incoming(self.service.assoc)
        return self.service.is_cancelled(self.req.MessageID)

    def _next_msg_id(self) -> int:
        self._msg_id = self._msg_id % 65535 + 1
        return self._msg_id

    def _reason(self, outcome: Outcome) -> str:
        """Why *outcome* failed, as an Error Comment says it."""
        name = UID(self._sop_class(outcome)).name
        if outcome.no_context:
            if self.is_move:
                return f"{self.who} accepted no context for {name}"
            # PS3.4 C.4.3.1: the requestor proposes it with the SCP role.
            return f"no context with the SCP role for {name}"
        if outcome.status is not None:
            return f"{self.who} answered {outcome.reason.removeprefix('status ')}"
        if outcome.reason == "no C-STORE response":
            return f"{self.who} sent no C-STORE response"
        return outcome.reason

    def _sop_class(self, outcome: Outcome) -> str:
        return self._classes.get(outcome.sop_instance, "")

    def _record(self, outcome: Outcome, log: bool = True) -> None:
        self.remaining -= 1
        if outcome.category == "success":
            self.completed += 1
        elif outcome.category == "warning":
            self.warning += 1
        else:
            self.failed += 1
            self.failed_uids.append(outcome.sop_instance)
            if log:
                self.reasons[self._reason(outcome)] += 1
                hint = ""
                if outcome.no_context and not self.is_move:
                    hint = " (a C-GET requestor must propose it with the SCP role)"
                logger.warning(
                    "%s sub-operation for %s failed: %s%s",
                    self.name,
                    outcome.sop_instance,
                    outcome.reason,
                    hint,
                )

    def _fail_all(self, objects: list[Outgoing], reason: str, brief: str) -> None:
        logger.warning(
            "%s: %d sub-operations failed: %s", self.name, len(objects), reason
        )
        self.reasons[brief] += len(objects)
        for obj in objects:
            self._record(Outcome(obj.sop_instance, None, "failure", reason), False)

    def _deliver(
        self, assoc: Any, objects: list[Outgoing], originator: tuple | None
    ) -> bool | int:
        """Send *objects* on *assoc*: True when all were tried, False when
        cancelled or the requestor went away, or the index of the first
        object not tried when the association was lost."""
        for index, obj in enumerate(objects):
            if self._cancelled():
                self.cancelled = True
                return False
            if self._requestor_gone():
                # The requestor went away, or the server is stopping: the
                # statement stops transmitting then (3.2.2).
                return False
            if not assoc.is_established:
                return index
            outcome = storage_scu.store(
                assoc, obj, msg_id=self._next_msg_id(), move_originator=originator
            )
            if outcome.lost and self._requestor_gone():
                return False  # we cut it: the server is stopping
            if outcome.lost:
                outcome = Outcome(
                    obj.sop_instance,
                    None,
                    "failure",
                    f"the destination ended the association during it "
                    f"({outcome.reason})",
                )
                self._record(outcome, log=False)
                self.reasons[f"{self.who} ended the association during a C-STORE"] += 1
                logger.warning(
                    "%s sub-operation for %s failed: %s",
                    self.name,
                    obj.sop_instance,
                    outcome.reason,
                )
                self._counted(STATUS_PENDING, remaining=True)
                return index + 1
            self._record(outcome)
            if not self._requestor_gone():
                self._counted(STATUS_PENDING, remaining=True)
        return True

    def _move(self, objects: list[Outgoing], node: Any) -> None:
        originator = (self.service.assoc.requestor.ae_title, self.req.MessageID)
        ae = self.retriever.scu_ae
        reconnects = 0
        for contexts in storage_scu.plan_contexts(objects):
            classes = {str(cx.abstract_syntax) for cx in contexts}
            batch = [obj for obj in objects if obj.sop_class in classes]
            while batch:
                if self._cancelled():
                    self.cancelled = True
                    return
                if self._requestor_gone():
                    return
                try:
                    assoc = storage_scu.associate(ae, node, contexts)
                except AssociationError as exc:
                    self._fail_all(batch, str(exc), exc.brief)
                    break
                try:
                    result = self._deliver(assoc, batch, originator)
                finally:
                    if self.retriever.stopping.is_set():
                        # The server aborts it: a release would wait for an
                        # answer that never comes.
                        assoc.abort()
                    elif assoc.is_established:
                        assoc.release()
                if result is False:
                    return
                if result is True:
                    break
                if self._requestor_gone():
                    return
                # Lost with one object (a peer that aborts on it): the rest
                # go on a new association, a few times at most.
                batch = batch[result:]
                reconnects += 1
                if reconnects > MAX_RECONNECTS:
                    self._fail_all(
                        batch,
                        "the destination keeps ending associations",
                        f"{self.who} keeps ending associations",
                    )
                    break
                logger.warning(
                    "%s to '%s': association lost, %d objects go on a new one",
                    self.name,
                    node.ae_title,
                    len(batch),
                )

    def _requestor_gone(self) -> bool:
        """The requestor's association ended (the reactor notices later),
        or the server stopped waiting for retrieves to finish."""
        assoc = self.service.assoc
        return (
            self.retriever.stopping.is_set()
            or not assoc.is_established
            or assoc.acse.is_aborted()
            or not assoc.dul.is_alive()
        )

    def _finish(self, level: str, destination: str) -> None:
        if self._requestor_gone():
            logger.warning(
                "%s from %s stopped: %s after %d sub-operations, %d not done",
                self.name,
                self.peer,
                "the server is stopping"
                if self.retriever.stopping.is_set()
                else "the requestor's association ended",
                self.completed + self.failed + self.warning,
                self.remaining,
            )
            return
        if self.cancelled:
            status = STATUS_CANCELLED
        elif not self.failed and not self.warning:
            status = STATUS_SUCCESS
        elif not self.completed and not self.warning:
            status = STATUS_UNABLE_TO_PERFORM
        else:
            status = STATUS_WARNING
        logger.info(
            "%s from %s%s at %s level: %d completed, %d failed, %d warnings, "
            "%d remaining (0x%04X)%s",
            self.name,
            self.peer,
            f" to '{destination}'" if destination else "",
            level,
            self.completed,
            self.failed,
            self.warning,
            self.remaining,
            status,
            f": {self._comment()}" if self.failed else "",
        )
        self._counted(status, remaining=status == STATUS_CANCELLED)


_original_service_class = association_module.uid_to_service_class


def _service_class_for(uid: str) -> Any:
    if uid in QUERY_RETRIEVE_MODELS:
        return QueryRetrieveService
    return _original_service_class(uid)


# pynetdicom's association picks the service class by this name.
association_module.uid_to_service_class = _service_class_for
