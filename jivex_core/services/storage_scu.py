"""JiveX DICOM Storage SCU Service (statement 3.2.5): sending stored objects.

Used by C-MOVE sub-operations and by the send and forward jobs. For each
SOP class to send, the association proposes one context per stored transfer
syntax, plus Explicit and Implicit VR Little Endian as fallbacks (Implicit
VR Little Endian is the one syntax every SCP accepts). An object goes out as
stored, byte for byte from its file, when the peer accepted that syntax; when
it accepted only an uncompressed one, the object is decoded, its pixel data
decompressed, and the data set otherwise sent unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.status import code_to_category

from jivex_core.config import RemoteNode, Settings
from jivex_core.jobs.runner import JobContext, JobRunner, RetryLater, Stopping
from jivex_core.services import store_requests
from jivex_core.services.association import make_ae, set_nodelay
from jivex_core.store import Store
from jivex_core.store.jobs import (
    CANCELLED,
    DONE,
    FAILED,
    Job,
    JobError,
    resolve_known,
    resolve_uids,
    stored_objects,
    unknown_message,
)

logger = logging.getLogger(__name__)

# Objects sent as stored are streamed from their files after the File Meta
# instead of being decoded by pydicom and encoded again.
_config.STORE_SEND_CHUNKED_DATASET = True

#: A-ASSOCIATE-RQ carries at most 128 presentation contexts (PS3.8 9.3.2.2:
#: odd context IDs 1-255).
MAX_CONTEXTS = 128

UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


@dataclass(frozen=True)
class Outgoing:
    """One stored object to send."""

    sop_class: str
    sop_instance: str
    transfer_syntax: str
    path: Path
    #: Stored cut short as received: it is not sent (the peer would read a
    #: length past the end of the data and abort the association).
    incomplete: bool = False


@dataclass(frozen=True)
class Outcome:
    """The result of one C-STORE sub-operation."""

    sop_instance: str
    status: int | None  # None: no C-STORE-RSP (not sent, or no answer)
    category: str  # "success", "warning" or "failure"
    reason: str = ""
    #: The association ended before an answer: whether the peer stored the
    #: object is unknown, so it is to be sent again rather than failed.
    lost: bool = False
    #: Not sent: no accepted presentation context can carry the object.
    no_context: bool = False

    @property
    def stored(self) -> bool:
        """Warnings (B000, B006, B007) mean the peer stored the object."""
        return self.category in ("success", "warning")


class AssociationError(Exception):
    """The peer could not be reached or refused the association.

    The message names the peer with its address, for logs and jobs;
    :attr:`brief` without it, for an Error Comment's 64 characters.
    """

    def __init__(self, message: str, brief: str = "") -> None:
        super().__init__(message)
        self.brief = brief or message


def plan_contexts(objects: Iterable[Outgoing]) -> list[list[PresentationContext]]:
    """Presentation contexts for *objects*, split into associations of 128.

    An object's SOP class keeps all its contexts in the same association, so
    each object can be sent on one of the associations.
    """
    by_class: dict[str, list[str]] = {}
    for obj in objects:
        syntaxes = by_class.setdefault(obj.sop_class, [])
        if obj.transfer_syntax not in syntaxes:
            syntaxes.append(obj.transfer_syntax)
    batches: list[list[PresentationContext]] = [[]]
    for sop_class, syntaxes in by_class.items():
        fallbacks = [ts for ts in UNCOMPRESSED if ts not in syntaxes]
        contexts = [build_context(sop_class, ts) for ts in [*syntaxes, *fallbacks]]
        if len(batches[-1]) + len(contexts) > MAX_CONTEXTS:
            batches.append([])
        batches[-1].extend(contexts)
    return [batch for batch in batches if batch]


def associate(
    ae: AE,
    node: RemoteNode,
    contexts: list[PresentationContext],
    ext_neg: list[Any] | None = None,
    handlers: list[Any] | None = None,
) -> Association:
    """Open an association to *node*; AssociationError says why not.

    A rejection is recognised by the A-ASSOCIATE-RJ PDU itself: when the
    peer closes the connection right after rejecting (DCMTK does),
    pynetdicom's ACSE may see the closed socket first and report an abort.
    """
    connected: list[bool] = []
    accepted: list[bool] = []
    rejections: list[A_ASSOCIATE_RJ] = []

    def on_pdu(event: Any) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu)
        elif isinstance(event.pdu, A_ASSOCIATE_AC):
            accepted.append(True)

    assoc = ae.associate(
        node.host,
        node.port,
        contexts=contexts,
        ae_title=node.ae_title,
        max_pdu=node.max_pdu,
        ext_neg=ext_neg,
        evt_handlers=[
            (evt.EVT_CONN_OPEN, lambda _event: connected.append(True)),
            (evt.EVT_ACCEPTED, lambda _event: accepted.append(True)),
            (evt.EVT_PDU_RECV, on_pdu),
            *(handlers or []),
        ],
    )
    if assoc.is_established:
        set_nodelay(assoc)
        return assoc
    if assoc.is_rejected or rejections:
        reason = "rejected the association"
        rsp = rejections[0] if rejections else assoc.acceptor.primitive
        if rsp is not None and getattr(rsp, "reason_str", None):
            reason += f" ({rsp.reason_str})"
    elif not connected:
        reason = "could not be reached"
    elif accepted:
        # pynetdicom aborts an association whose contexts were all refused.
        reason = "accepted no presentation context"
    else:
        reason = "aborted the association request"
    raise AssociationError(
        f"'{node.ae_title}' at {node.host}:{node.port} {reason}",
        f"'{node.ae_title}' {reason}",
    )


def _context_for(assoc: Association, sop_class: str, syntaxes: Iterable[str]) -> Any:
    for ts in syntaxes:
        for cx in assoc.accepted_contexts:
            if (
                cx.abstract_syntax == sop_class
                and cx.transfer_syntax[0] == ts
                and cx.as_scu
            ):
                return cx
    return None


def converted(obj: Outgoing, transfer_syntax: str) -> Dataset:
    """*obj* decoded and re-encoded for an uncompressed *transfer_syntax*.

    Pixel data are decompressed (or byte-swapped from big endian); every other
    element is sent as stored.
    """
    ds = dcmread(obj.path)
    # Convert every raw element now, so that its VR is known when it is
    # encoded in another syntax (implicit VR elements carry none).
    for _elem in ds.iterall():
        pass
    stored = UID(obj.transfer_syntax)
    if stored.is_compressed and "PixelData" in ds:
        # The same object, decoded: its SOP Instance UID stays.
        ds.decompress(generate_instance_uid=False)
    elif stored == ExplicitVRBigEndian and "PixelData" in ds:
        bits = int(ds.get("BitsAllocated", 8) or 8)
        if bits > 8:
            dtype = np.dtype(f">u{bits // 8}")
            ds.PixelData = np.frombuffer(ds.PixelData, dtype).byteswap().tobytes()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    # Every element is decoded now, so the data set can be written in the
    # target's encoding; say so, or pynetdicom refuses the mismatch.
    ds.set_original_encoding(
        transfer_syntax == ImplicitVRLittleEndian, True, ds.original_character_set
    )
    return ds


def _send_file(
    assoc: Association,
    context: Any,
    obj: Outgoing,
    offset: int,
    msg_id: int,
    move_originator: tuple[str, int] | None,
) -> Dataset:
    """One C-STORE of a stored file on an association we opened.

    What ``send_c_store`` does, without reading the File Meta again with
    pydicom and without pausing the association's reactor: on our own
    associations the reactor leaves responses to the sender
    (:mod:`jivex_core.services.association`). An empty Dataset when no
    response came.
    """
    req = C_STORE()
    req.MessageID = msg_id
    req.Priority = 2
    req.AffectedSOPClassUID = obj.sop_class
    req.AffectedSOPInstanceUID = obj.sop_instance
    if move_originator:
        req.MoveOriginatorApplicationEntityTitle = move_originator[0]
        req.MoveOriginatorMessageID = move_originator[1]
    req._dataset_path = (obj.path, offset)
    assoc.dimse.send_msg(req, context.context_id)
    _cx, rsp = assoc.dimse.get_msg(block=True)
    if rsp is None:
        assoc._handle_no_response()
        return Dataset()
    return assoc._check_received_status(rsp)


def store(
    assoc: Association,
    obj: Outgoing,
    *,
    msg_id: int,
    move_originator: tuple[str, int] | None = None,
) -> Outcome:
    """Send *obj* on *assoc* with one C-STORE; never raises."""
    if obj.incomplete:
        return Outcome(
            obj.sop_instance,
            None,
            "failure",
            "stored incomplete (its data set was cut short when received)",
        )
    exact = _context_for(assoc, obj.sop_class, [obj.transfer_syntax])
    fallback = None if exact else _context_for(assoc, obj.sop_class, UNCOMPRESSED)
    if exact is None and fallback is None:
        return Outcome(
            obj.sop_instance,
            None,
            "failure",
            f"no presentation context for {UID(obj.sop_class).name} was accepted",
            no_context=True,
        )
    originator_ae, originator_id = move_originator or (None, None)
    try:
        offset = store_requests.dataset_offset(obj.path) if exact else None
        if offset is not None and assoc.is_requestor:
            status_ds = _send_file(assoc, exact, obj, offset, msg_id, move_originator)
        else:
            payload: Path | Dataset = obj.path
            if exact is None:
                payload = converted(obj, fallback.transfer_syntax[0])
            status_ds = assoc.send_c_store(
                payload,
                msg_id=msg_id,
                originator_aet=originator_ae,
                originator_id=originator_id,
            )
    except Exception as exc:  # unreadable file, undecodable pixel data...
        if not assoc.is_established:
            return Outcome(obj.sop_instance, None, "failure", str(exc), lost=True)
        logger.warning("C-STORE of %s not sent: %s", obj.sop_instance, exc)
        return Outcome(obj.sop_instance, None, "failure", f"not sent: {exc}")
    status = status_ds.get("Status") if status_ds is not None else None
    if status is None:
        return Outcome(
            obj.sop_instance, None, "failure", "no C-STORE response", lost=True
        )
    category = code_to_category(int(status)).lower()
    if category not in ("success", "warning"):
        comment = str(status_ds.get("ErrorComment", "") or "")
        reason = f"status 0x{int(status):04X}" + (f": {comment}" if comment else "")
        return Outcome(obj.sop_instance, int(status), "failure", reason)
    return Outcome(obj.sop_instance, int(status), category)


class SendJobs:
    """Runs send and forward jobs: the objects of a job, over as few
    associations as their presentation contexts allow."""

    def __init__(self, settings: Settings, store: Store, runner: JobRunner) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.ae = make_ae(settings)
        runner.register("send", self)
        runner.register("forward", self)

    def queue(self, remote_ae: str, uids: list[str]) -> Job:
        """Queue a send of what *uids* stand for (patients by ID, studies,
        series, instances) to *remote_ae*; JobError says what is wrong."""
        self.runner.node(remote_ae)
        instances = resolve_uids(self.store.index.engine, uids)
        return self.runner.submit("send", remote_ae, {"uids": uids}, instances)

    def queue_known(self, remote_ae: str, uids: list[str]) -> tuple[Job, list[str]]:
        """Queue a send of what the *uids* that name stored objects stand
        for; returns the job and the inputs that name nothing stored (as
        ``delete`` does). JobError when none names anything stored."""
        self.runner.node(remote_ae)
        instances, unknown = resolve_known(self.store.index.engine, uids)
        if not instances:
            raise JobError(unknown_message(unknown))
        known = [u for u in uids if u.strip() not in unknown]
        job = self.runner.submit("send", remote_ae, {"uids": known}, instances)
        return job, unknown

    def __call__(self, ctx: JobContext) -> None:
        job, node, queue = ctx.job, ctx.node, ctx.queue
        pending = queue.items(job.pk, "pending")
        found = stored_objects(
            self.store.index.engine, [item["SOPInstanceUID"] for item in pending]
        )
        objects: list[tuple[int, Outgoing]] = []
        gone: list[tuple[int, str, int | None, str]] = []
        for item in pending:
            kept = found.get(item["SOPInstanceUID"])
            if kept is None:
                gone.append((item["pk"], "failure", None, "no longer stored"))
                continue
            path = self.store.data_dir / kept.path
            obj = Outgoing(
                kept.sop_class,
                kept.sop_instance,
                kept.transfer_syntax,
                path,
                kept.incomplete,
            )
            objects.append((item["pk"], obj))
        queue.record_many(job.pk, gone)
        item_of = {obj.sop_instance: pk for pk, obj in objects}
        batch = _Outcomes(ctx)
        msg_id = 0
        try:
            for contexts in plan_contexts(obj for _, obj in objects):
                classes = {str(cx.abstract_syntax) for cx in contexts}
                try:
                    assoc = associate(self.ae, node, contexts)
                except AssociationError as exc:
                    raise RetryLater(str(exc)) from None
                try:
                    for _, obj in objects:
                        if obj.sop_class not in classes:
                            continue
                        if batch.cancelled():
                            batch.flush()
                            ctx.finish(CANCELLED, "cancelled")
                            logger.info("Job %d cancelled", job.pk)
                            return
                        msg_id = msg_id % 65535 + 1
                        outcome = store(assoc, obj, msg_id=msg_id)
                        if outcome.lost:
                            # Unconfirmed: pending for the next attempt.
                            raise RetryLater(
                                f"'{node.ae_title}' went away during the transfer "
                                f"({outcome.reason})"
                            )
                        batch.add(item_of[obj.sop_instance], outcome)
                finally:
                    if assoc.is_established:
                        assoc.release()
        finally:
            batch.flush()
        final = queue.get(job.pk)
        assert final is not None
        failures = queue.items(job.pk, "failed") if final.failed else []
        if final.failed and not (final.completed or final.warning):
            ctx.finish(FAILED, failures[0]["error"])
        elif failures:
            ctx.finish(DONE, f"{final.failed} objects failed: {failures[0]['error']}")
        else:
            ctx.finish(DONE)
        logger.info(
            "Job %d to '%s' finished: %d stored, %d warnings, %d failed",
            job.pk,
            node.ae_title,
            final.completed,
            final.warning,
            final.failed,
        )


class _Outcomes:
    """Outcomes of a send, written to the queue in batches.

    One transaction per object would cost about as much as sending a small
    one. A crash loses at most the last batch of confirmations: those
    objects are sent again after the restart, none is ever marked sent
    without its confirmation. Cancel requests are looked at per batch too.
    """

    def __init__(self, ctx: JobContext, size: int = 64, seconds: float = 0.25) -> None:
        self.ctx = ctx
        self.size = size
        self.seconds = seconds
        self.pending: list[tuple[int, str, int | None, str]] = []
        self.flushed = time.monotonic()
        self._cancel = False

    def add(self, item_pk: int, outcome: Outcome) -> None:
        self.pending.append((item_pk, outcome.category, outcome.status, outcome.reason))
        if len(self.pending) >= self.size or self._due():
            self.flush()

    def _due(self) -> bool:
        return time.monotonic() - self.flushed >= self.seconds

    def flush(self) -> None:
        if self.pending:
            self.ctx.queue.record_many(self.ctx.job.pk, self.pending)
            self.pending = []
            self.ctx.progress()
        self.flushed = time.monotonic()
        self._cancel = self.ctx.check()

    def cancelled(self) -> bool:
        """Whether to stop (checked at the last flush); raises Stopping."""
        if self.ctx.runner.stopping:
            raise Stopping
        return self._cancel
