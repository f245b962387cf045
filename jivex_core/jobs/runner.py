"""Runs the jobs of the queue in worker threads of the core.

A scheduler thread claims due jobs while a worker is free and sleeps until
the next one is due or something is queued. A send or forward opens its
associations through the Storage SCU and records each object's outcome as
soon as the peer answers. When the peer cannot be reached, refuses the
association or goes away mid-way, the job is queued again after the next
delay of the peer's retry schedule (``retry_minutes``), and fails once the
schedule is used up; objects the peer refused stay failed with its status.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from pynetdicom.status import code_to_category

from jivex_core.config import RemoteNode, Settings
from jivex_core.jobs.queue import (
    CANCELLED,
    DONE,
    FAILED,
    Job,
    JobError,
    JobQueue,
    now,
)
from jivex_core.services import qr_scu, storage_scu
from jivex_core.services.association import make_ae
from jivex_core.services.storage_scu import AssociationError, Outgoing
from jivex_core.store import Store, schema

logger = logging.getLogger(__name__)

Publisher = Callable[[str, dict[str, Any]], None]

_P, _ST, _SE, _I = schema.patient, schema.study, schema.series, schema.instance


def next_time_of_day(at: str, after: dt.datetime) -> dt.datetime:
    """The first moment at *at* (``HH:MM``) not before *after*."""
    hour, minute = (int(part) for part in at.split(":"))
    moment = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return moment if moment >= after else moment + dt.timedelta(days=1)


def resolve_uids(store: Store, uids: list[str]) -> list[str]:
    """The SOP Instance UIDs that patients (by ID), studies, series or
    instances stand for, in study, series and instance order.

    Raises JobError naming the values that match nothing stored.
    """
    wanted = [u.strip() for u in uids if u.strip()]
    if not wanted:
        raise JobError("no UIDs given")
    source = (
        _P.join(_ST, _ST.c.patient_pk == _P.c.pk)
        .join(_SE, _SE.c.study_pk == _ST.c.pk)
        .join(_I, _I.c.series_pk == _SE.c.pk)
    )
    found: list[str] = []
    unknown = []
    with store.index.engine.connect() as conn:
        for value in wanted:
            rows = conn.execute(
                sa.select(_I.c.SOPInstanceUID)
                .select_from(source)
                .where(
                    sa.or_(
                        _I.c.SOPInstanceUID == value,
                        _SE.c.SeriesInstanceUID == value,
                        _ST.c.StudyInstanceUID == value,
                        _P.c.PatientID == value,
                    )
                )
                .order_by(_ST.c.pk, _SE.c.SeriesNumber, _SE.c.pk, _I.c.InstanceNumber)
            ).all()
            if not rows:
                unknown.append(value)
            found.extend(r.SOPInstanceUID for r in rows)
    if unknown:
        raise JobError("nothing stored has the UID or Patient ID " + ", ".join(unknown))
    return list(dict.fromkeys(found))


class _Stopping(Exception):
    """The core is shutting down: give the job back."""


class JobRunner:
    """The worker threads of the job queue."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: JobQueue,
        publish: Publisher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.publish = publish or (lambda _name, _data: None)
        self.ae = make_ae(settings)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.jobs.workers, thread_name_prefix="job")
        self._busy = threading.Semaphore(settings.jobs.workers)
        self._thread = threading.Thread(
            target=self._schedule, name="job-scheduler", daemon=True
        )

    # Life cycle -----------------------------------------------------------

    def start(self) -> None:
        """Queue interrupted jobs again and start scheduling."""
        self.queue.resume()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; running jobs give their job back between objects."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        """Look for due jobs now (something was queued or changed)."""
        self._wake.set()

    # Operations for clients -----------------------------------------------

    def send(self, remote_ae: str, uids: list[str]) -> Job:
        """Queue a send of what *uids* stand for to *remote_ae*."""
        node = self._node(remote_ae)
        instances = resolve_uids(self.store, uids)
        not_before = next_time_of_day(node.send_at, now()) if node.send_at else None
        job = self.queue.add(
            "send", node.ae_title, {"uids": uids}, instances, not_before
        )
        self._changed(job)
        return job

    def forward(self, remote_ae: str, sop_instance_uid: str) -> None:
        """Add one received object to the open forward job to *remote_ae*."""
        pk = self.queue.open_forward(remote_ae)
        if pk is not None and self.queue.append(pk, [sop_instance_uid]):
            return
        node = self._node(remote_ae)
        delay = dt.timedelta(seconds=self.settings.jobs.forward_delay_seconds)
        at = now() + delay
        if node.send_at:
            at = next_time_of_day(node.send_at, at)
        job = self.queue.add("forward", remote_ae, {}, [sop_instance_uid], at)
        self._changed(job)

    def move(self, remote_ae: str, level: str, keys: dict[str, str]) -> Job:
        """Queue a retrieve from *remote_ae* to our own Storage SCP."""
        node = self._node(remote_ae)
        qr_scu.identifier(level, keys)  # refuse a bad request now, not later
        job = self.queue.add(
            "move", node.ae_title, {"level": level.upper(), "keys": keys}
        )
        self._changed(job)
        return job

    def move_uids(self, remote_ae: str, level: str, uids: list[str]) -> list[Job]:
        """Queue retrieves of patients (by ID), studies or series by UID.

        Series are hierarchical below their study: the remote is asked which
        study each series belongs to, and one retrieve runs per study.
        """
        level = level.upper()
        wanted = "\\".join(u.strip() for u in uids if u.strip())
        if not wanted:
            raise JobError("no UIDs given")
        if level == "PATIENT":
            return [self.move(remote_ae, level, {"PatientID": wanted})]
        if level == "STUDY":
            return [self.move(remote_ae, level, {"StudyInstanceUID": wanted})]
        if level != "SERIES":
            raise JobError(f"level '{level}' is not patient, study or series")
        node = self._node(remote_ae)
        found = qr_scu.find(
            self.ae,
            node,
            "SERIES",
            {"SeriesInstanceUID": wanted, "StudyInstanceUID": ""},
            return_keys=(),
        )
        by_study: dict[str, list[str]] = {}
        for row in found.rows:
            by_study.setdefault(row.get("StudyInstanceUID", ""), []).append(
                row.get("SeriesInstanceUID", "")
            )
        missing = set(u.strip() for u in uids) - {
            s for series in by_study.values() for s in series
        }
        if missing:
            raise JobError(f"'{remote_ae}' has no series " + ", ".join(sorted(missing)))
        return [
            self.move(
                remote_ae,
                "SERIES",
                {"StudyInstanceUID": study, "SeriesInstanceUID": "\\".join(series)},
            )
            for study, series in by_study.items()
        ]

    def find(
        self, remote_ae: str, level: str, keys: dict[str, str], limit: int | None
    ) -> dict[str, Any]:
        """Query *remote_ae* now (queries are not queued: someone waits)."""
        node = self._node(remote_ae)
        return qr_scu.find(self.ae, node, level, keys, limit=limit).view()

    def cancel(self, pk: int) -> Job:
        """Cancel a job (see :meth:`JobQueue.cancel`)."""
        job = self.queue.cancel(pk)
        self._changed(job)
        return job

    def retry(self, pk: int) -> Job:
        """Run a job again now (see :meth:`JobQueue.retry_now`)."""
        job = self.queue.retry_now(pk)
        self._changed(job)
        return job

    def _node(self, remote_ae: str) -> RemoteNode:
        node = self.settings.remote_node(remote_ae)
        if node is None:
            known = ", ".join(n.ae_title for n in self.settings.remote) or "none"
            raise JobError(
                f"'{remote_ae}' is not in the remote AE table (known: {known})"
            )
        return node

    def _changed(self, job: Job | None) -> None:
        if job is not None:
            self.publish("job", job.view())
        self._wake.set()

    # Scheduling -----------------------------------------------------------

    def _schedule(self) -> None:
        while not self._stop.is_set():
            claimed = False
            if self._busy.acquire(blocking=False):
                try:
                    job = self.queue.claim()
                except Exception:
                    logger.exception("The job queue cannot be read")
                    job = None
                if job is None:
                    self._busy.release()
                else:
                    claimed = True
                    self._changed(job)
                    self._pool.submit(self._run, job)
            if claimed:
                continue
            due = self.queue.next_due()
            wait = 5.0
            if due is not None:
                wait = min(max((due - now()).total_seconds(), 0.05), wait)
            self._wake.wait(wait)
            self._wake.clear()

    def _run(self, job: Job) -> None:
        try:
            if job.kind in ("send", "forward"):
                self._send(job)
            elif job.kind == "move":
                self._move(job)
            else:
                self.queue.finish(job.pk, FAILED, f"'{job.kind}' jobs are not run")
        except _Stopping:
            self.queue.requeue(job.pk)
            logger.info("Job %d given back at shutdown", job.pk)
        except Exception as exc:
            logger.exception("Job %d failed", job.pk)
            self.queue.finish(job.pk, FAILED, f"internal error: {exc}")
        finally:
            self._busy.release()
            self._changed(self.queue.get(job.pk))

    def _retry_later(self, job: Job, node: RemoteNode | None, error: str) -> None:
        schedule = node.retry_minutes if node else []
        if job.attempts <= len(schedule):
            at = now() + dt.timedelta(minutes=schedule[job.attempts - 1])
            self.queue.reschedule(job.pk, at, error)
            logger.warning(
                "Job %d: %s; attempt %d of %d failed, next at %s",
                job.pk,
                error,
                job.attempts,
                len(schedule) + 1,
                at.isoformat(timespec="seconds"),
            )
        else:
            self.queue.finish(job.pk, FAILED, error)
            logger.error(
                "Job %d failed after %d attempts: %s", job.pk, job.attempts, error
            )

    # Retrieving -----------------------------------------------------------

    def _move(self, job: Job) -> None:
        node = self.settings.remote_node(job.remote_ae)
        if node is None:
            self.queue.finish(
                job.pk, FAILED, f"'{job.remote_ae}' is no longer in the remote AE table"
            )
            return
        level = str(job.request.get("level", "STUDY"))
        keys = {str(k): str(v) for k, v in job.request.get("keys", {}).items()}
        ours = self.settings.network.ae_title
        try:
            assoc, responses, cx_id = qr_scu.start_move(
                self.ae, node, level, keys, ours
            )
        except AssociationError as exc:
            self._retry_later(job, node, str(exc))
            return
        except qr_scu.QueryError as exc:
            self.queue.finish(job.pk, FAILED, str(exc))
            return
        final = None
        cancel_sent = False
        try:
            for status, answer in responses:
                if "Status" not in status:
                    break
                code = int(status.Status)
                counts = [
                    int(status.get(f"NumberOf{name}Suboperations", 0) or 0)
                    for name in ("Remaining", "Completed", "Failed", "Warning")
                ]
                remaining, completed, failed, warning = counts
                self.queue.set_counts(
                    job.pk,
                    remaining + completed + failed + warning,
                    completed,
                    failed,
                    warning,
                )
                if code_to_category(code) != "Pending":
                    final = (code, status, answer)
                    break
                self.publish("job_progress", {"id": job.pk})
                if self._stop.is_set():
                    assoc.abort()
                    raise _Stopping
                if not cancel_sent and self.queue.cancel_requested(job.pk):
                    assoc.send_c_cancel(1, cx_id)
                    cancel_sent = True
        finally:
            if assoc.is_established:
                assoc.release()
        if final is None:
            self._retry_later(
                job,
                node,
                f"'{node.ae_title}' ended the association before the final "
                "C-MOVE response",
            )
            return
        code, status, answer = final
        comment = str(status.get("ErrorComment", "") or "")
        detail = f"'{node.ae_title}' answered 0x{code:04X}" + (
            f" ({comment})" if comment else ""
        )
        if code == 0x0000:
            self.queue.finish(job.pk, DONE)
        elif code == 0xFE00:
            self.queue.finish(job.pk, CANCELLED, "cancelled")
        elif code_to_category(code) == "Warning":
            self.queue.finish(job.pk, DONE, f"{detail}: some objects failed")
        elif code == 0xA801:
            self.queue.finish(
                job.pk,
                FAILED,
                f"{detail}: it does not know our AE title '{ours}' as a move "
                "destination",
            )
        else:
            self.queue.finish(job.pk, FAILED, detail)
        logger.info(
            "Job %d (C-MOVE from '%s') ended: %s", job.pk, node.ae_title, detail
        )

    # Sending --------------------------------------------------------------

    def _outgoing(self, job: Job) -> list[tuple[int, Outgoing | None]]:
        items = self.queue.items(job.pk, "pending")
        uids = [item["SOPInstanceUID"] for item in items]
        rows: dict[str, Any] = {}
        with self.store.index.engine.connect() as conn:
            for start in range(0, len(uids), 500):
                chunk = uids[start : start + 500]
                for row in conn.execute(
                    sa.select(
                        _I.c.SOPInstanceUID,
                        _I.c.SOPClassUID,
                        _I.c.TransferSyntaxUID,
                        _I.c.path,
                    ).where(_I.c.SOPInstanceUID.in_(chunk))
                ):
                    rows[row.SOPInstanceUID] = row
        data_dir = self.store.data_dir
        out: list[tuple[int, Outgoing | None]] = []
        for item in items:
            row = rows.get(item["SOPInstanceUID"])
            obj = None
            if row is not None:
                obj = Outgoing(
                    row.SOPClassUID,
                    row.SOPInstanceUID,
                    row.TransferSyntaxUID,
                    data_dir / row.path,
                )
            out.append((item["pk"], obj))
        return out

    def _send(self, job: Job) -> None:
        node = self.settings.remote_node(job.remote_ae)
        if node is None:
            self.queue.finish(
                job.pk, FAILED, f"'{job.remote_ae}' is no longer in the remote AE table"
            )
            return
        pending = self._outgoing(job)
        objects = []
        for item_pk, obj in pending:
            if obj is None:
                self.queue.record(job.pk, item_pk, "failure", None, "no longer stored")
            else:
                objects.append((item_pk, obj))
        by_uid = {obj.sop_instance: item_pk for item_pk, obj in objects}
        msg_id = 0
        for contexts in storage_scu.plan_contexts(obj for _, obj in objects):
            classes = {str(cx.abstract_syntax) for cx in contexts}
            batch = [obj for _, obj in objects if obj.sop_class in classes]
            try:
                assoc = storage_scu.associate(self.ae, node, contexts)
            except AssociationError as exc:
                self._retry_later(job, node, str(exc))
                return
            try:
                for obj in batch:
                    if self._stop.is_set():
                        raise _Stopping
                    if self.queue.cancel_requested(job.pk):
                        self.queue.finish(job.pk, CANCELLED, "cancelled")
                        logger.info("Job %d cancelled", job.pk)
                        return
                    if not assoc.is_established:
                        self._retry_later(
                            job, node, f"'{node.ae_title}' ended the association"
                        )
                        return
                    msg_id = msg_id % 65535 + 1
                    outcome = storage_scu.store(assoc, obj, msg_id=msg_id)
                    if outcome.lost:
                        # Lost with the association: pending for the next try.
                        self._retry_later(
                            job,
                            node,
                            f"'{node.ae_title}' went away during the transfer "
                            f"({outcome.reason})",
                        )
                        return
                    self.queue.record(
                        job.pk,
                        by_uid[obj.sop_instance],
                        outcome.category,
                        outcome.status,
                        outcome.reason,
                    )
                    self.publish("job_progress", {"id": job.pk})
            finally:
                if assoc.is_established:
                    assoc.release()
        final = self.queue.get(job.pk)
        assert final is not None
        if final.failed and not (final.completed or final.warning):
            failures = self.queue.items(job.pk, "failed")
            reason = failures[0]["error"] if failures else "every object failed"
            self.queue.finish(job.pk, FAILED, reason)
        else:
            error = ""
            if final.failed:
                failures = self.queue.items(job.pk, "failed")
                error = f"{final.failed} objects failed: {failures[0]['error']}"
            self.queue.finish(job.pk, DONE, error)
        logger.info(
            "Job %d to '%s' finished: %d stored, %d warnings, %d failed",
            job.pk,
            node.ae_title,
            final.completed,
            final.warning,
            final.failed,
        )
