"""The durable job queue, kept in the index database (see jivex_core.jobs).

A job is a send, a forward or a retrieve, with its state, attempts, next
attempt time and last error. Its items are the objects it moves, each marked
done only once the peer confirmed it, so that a job interrupted by a crash is
resumed where it stopped and never reports an object sent that was not.
Times are local and naive, like the index's ``received_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jivex_core.store import schema
from jivex_core.store.query import SENDING_COLUMNS

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = (
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
)
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)

KINDS = ("send", "forward", "move")

_J, _ITEM = schema.job, schema.job_item


class JobError(ValueError):
    """A job request that cannot be queued; the message names why."""


@dataclass(frozen=True)
class Job:
    """One row of the queue, as the runner and the clients see it."""

    pk: int
    kind: str
    state: str
    remote_ae: str
    request: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    next_attempt_at: dt.datetime
    attempts: int
    last_error: str
    total: int
    completed: int
    failed: int
    warning: int
    cancel_requested: bool

    @classmethod
    def of(cls, row: Any) -> Job:
        """A job from its table row."""
        values = dict(row._mapping)
        values["request"] = json.loads(values["request"] or "{}")
        return cls(**values)

    def view(self) -> dict[str, Any]:
        """What ``jivex jobs --json`` and the client show."""
        return {
            "id": self.pk,
            "kind": self.kind,
            "state": self.state,
            "remote_ae": self.remote_ae,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "updated_at": self.updated_at.isoformat(timespec="seconds"),
            "next_attempt_at": (
                self.next_attempt_at.isoformat(timespec="seconds")
                if self.state == QUEUED
                else None
            ),
            "attempts": self.attempts,
            "last_error": self.last_error,
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "warning": self.warning,
            "remaining": max(
                self.total - self.completed - self.failed - self.warning, 0
            ),
            "request": self.request,
        }


def now() -> dt.datetime:
    """The queue's clock (local, naive, second resolution is plenty)."""
    return dt.datetime.now()


class JobQueue:
    """Reads and writes the job tables; safe to use from several threads."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # SQLite has one writer; serialising ours avoids busy waits.
        self._lock = threading.Lock()

    # Creating ------------------------------------------------------------

    def add(
        self,
        kind: str,
        remote_ae: str,
        request: dict[str, Any],
        sop_instance_uids: Iterable[str] = (),
        not_before: dt.datetime | None = None,
    ) -> Job:
        """Queue a job with its objects; returns it."""
        if kind not in KINDS:
            raise JobError(f"'{kind}' is not a job kind ({', '.join(KINDS)})")
        uids = list(dict.fromkeys(sop_instance_uids))
        stamp = now()
        with self._lock, self.engine.begin() as conn:
            pk = conn.execute(
                sa.insert(_J).values(
                    kind=kind,
                    state=QUEUED,
                    remote_ae=remote_ae,
                    request=json.dumps(request),
                    created_at=stamp,
                    updated_at=stamp,
                    next_attempt_at=not_before or stamp,
                    attempts=0,
                    last_error="",
                    total=len(uids),
                    completed=0,
                    failed=0,
                    warning=0,
                    cancel_requested=False,
                )
            ).inserted_primary_key[0]
            if uids:
                conn.execute(
                    sa.insert(_ITEM),
                    [
                        {"job_pk": pk, "SOPInstanceUID": u, "state": "pending"}
                        | {"error": ""}
                        for u in uids
                    ],
                )
        logger.info(
            "Job %d queued: %s to/from '%s', %d objects", pk, kind, remote_ae, len(uids)
        )
        job = self.get(pk)
        assert job is not None
        return job

    def append(self, pk: int, sop_instance_uids: Iterable[str]) -> bool:
        """Add objects to a queued job not yet started; False if it started."""
        uids = list(sop_instance_uids)
        with self._lock, self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk, _J.c.state == QUEUED, _J.c.attempts == 0)
                .values(total=_J.c.total + len(uids), updated_at=now())
            ).rowcount
            if not changed:
                return False
            conn.execute(
                sa.insert(_ITEM),
                [
                    {"job_pk": pk, "SOPInstanceUID": u, "state": "pending", "error": ""}
                    for u in uids
                ],
            )
        return True

    def open_forward(self, remote_ae: str) -> int | None:
        """A forward job to *remote_ae* that has not started yet, if any."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(_J.c.pk)
                .where(
                    _J.c.kind == "forward",
                    _J.c.remote_ae == remote_ae,
                    _J.c.state == QUEUED,
                    _J.c.attempts == 0,
                )
                .order_by(_J.c.pk.desc())
                .limit(1)
            ).scalar()

    # Reading --------------------------------------------------------------

    def get(self, pk: int) -> Job | None:
        """One job, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_J).where(_J.c.pk == pk)).first()
        return Job.of(row) if row is not None else None

    def list(self, limit: int = 200, states: Iterable[str] = ()) -> list[Job]:
        """The newest jobs first."""
        query = sa.select(_J).order_by(_J.c.pk.desc()).limit(limit)
        wanted = list(states)
        if wanted:
            query = query.where(_J.c.state.in_(wanted))
        with self.engine.connect() as conn:
            return [Job.of(row) for row in conn.execute(query)]

    def items(self, pk: int, state: str | None = None) -> list[dict[str, Any]]:
        """The objects of a job (pk, SOPInstanceUID, state, status, error)."""
        query = sa.select(_ITEM).where(_ITEM.c.job_pk == pk).order_by(_ITEM.c.pk)
        if state is not None:
            query = query.where(_ITEM.c.state == state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def next_due(
        self, only: Iterable[int] | None = None, kinds: Iterable[str] | None = None
    ) -> dt.datetime | None:
        """When the earliest queued job is due (among *only* and *kinds*)."""
        query = sa.select(sa.func.min(_J.c.next_attempt_at)).where(
            *_claimable(only, kinds)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    # Running --------------------------------------------------------------

    def resume(self) -> int:
        """At start-up, by the owner of the data folder: jobs left running by
        a crash are queued again, now (cancelled if a cancel was asked)."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                sa.update(_J)
                .where(_J.c.state == RUNNING, _J.c.cancel_requested)
                .values(state=CANCELLED, last_error="cancelled", updated_at=now())
            )
            count = conn.execute(
                sa.update(_J)
                .where(_J.c.state == RUNNING)
                .values(state=QUEUED, next_attempt_at=now(), updated_at=now())
            ).rowcount
        if count:
            logger.warning("%d interrupted jobs queued again", count)
        return count

    def claim(
        self,
        at: dt.datetime | None = None,
        only: Iterable[int] | None = None,
        kinds: Iterable[str] | None = None,
    ) -> Job | None:
        """Take the oldest due job and mark it running.

        *only* limits the choice to those jobs (a core a command started
        runs the command's own jobs, no others), *kinds* to those kinds.
        """
        at = at or now()
        with self._lock, self.engine.begin() as conn:
            pk = conn.execute(
                sa.select(_J.c.pk)
                .where(*_claimable(only, kinds), _J.c.next_attempt_at <= at)
                .order_by(_J.c.next_attempt_at, _J.c.pk)
                .limit(1)
            ).scalar()
            if pk is None:
                return None
            conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk)
                .values(state=RUNNING, attempts=_J.c.attempts + 1, updated_at=now())
            )
        return self.get(pk)

    def record_many(
        self, pk: int, outcomes: list[tuple[int, str, int | None, str]]
    ) -> None:
        """Several objects' outcomes (item pk, category, status, error) in one
        transaction: a sender writes them in batches, not one per object."""
        if not outcomes:
            return
        counts = {"completed": 0, "warning": 0, "failed": 0}
        rows = []
        for item_pk, category, status, error in outcomes:
            column = {"success": "completed", "warning": "warning"}.get(
                category, "failed"
            )
            counts[column] += 1
            state = "failed" if column == "failed" else "done"
            rows.append(
                {"b_pk": item_pk, "state": state, "status": status, "error": error}
            )
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                sa.update(_ITEM)
                .where(_ITEM.c.pk == sa.bindparam("b_pk"), _ITEM.c.state == "pending")
                .values(
                    state=sa.bindparam("state"),
                    status=sa.bindparam("status"),
                    error=sa.bindparam("error"),
                ),
                rows,
            )
            conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk)
                .values(
                    {name: _J.c[name] + n for name, n in counts.items() if n}
                    | {"updated_at": now()}
                )
            )

    def set_counts(
        self, pk: int, total: int, completed: int, failed: int, warning: int
    ) -> None:
        """Counts a retrieve learns from the peer's responses."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk)
                .values(
                    total=total,
                    completed=completed,
                    failed=failed,
                    warning=warning,
                    updated_at=now(),
                )
            )

    def finish(self, pk: int, state: str, error: str = "") -> None:
        """End a running job (done, failed or cancelled).

        A failed job counts what it did not move as failed: its objects
        still pending (with *error*), or for a retrieve, what the peer had
        not reported done. ``retry_now`` makes them pending again.
        """
        values: dict[str, Any] = {
            "state": state,
            "last_error": error,
            "updated_at": now(),
        }
        with self._lock, self.engine.begin() as conn:
            if state == FAILED:
                left = conn.execute(
                    sa.update(_ITEM)
                    .where(_ITEM.c.job_pk == pk, _ITEM.c.state == "pending")
                    .values(state="failed", error=error or "not sent")
                ).rowcount
                if left:
                    values["failed"] = _J.c.failed + left
                else:
                    values["failed"] = sa.case(
                        (
                            _J.c.kind == "move",
                            sa.func.max(_J.c.total - _J.c.completed - _J.c.warning, 0),
                        ),
                        else_=_J.c.failed,
                    )
            conn.execute(sa.update(_J).where(_J.c.pk == pk).values(values))

    def reschedule(self, pk: int, at: dt.datetime, error: str) -> None:
        """Queue a running job again for a later attempt (or end it as
        cancelled, when an operator asked for that while it ran)."""
        with self._lock, self.engine.begin() as conn:
            if self._cancel_now(conn, pk):
                return
            conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk)
                .values(
                    state=QUEUED, next_attempt_at=at, last_error=error, updated_at=now()
                )
            )

    def requeue(self, pk: int) -> None:
        """Give back a job interrupted by a shutdown; the attempt does not count.
        A job whose cancel was asked while it ran ends cancelled instead."""
        with self._lock, self.engine.begin() as conn:
            if self._cancel_now(conn, pk):
                return
            conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk, _J.c.state == RUNNING)
                .values(
                    state=QUEUED,
                    attempts=sa.func.max(_J.c.attempts - 1, 0),
                    next_attempt_at=now(),
                    updated_at=now(),
                )
            )

    @staticmethod
    def _cancel_now(conn: sa.Connection, pk: int) -> bool:
        """End a running job whose cancel was asked; True if it was."""
        return bool(
            conn.execute(
                sa.update(_J)
                .where(_J.c.pk == pk, _J.c.state == RUNNING, _J.c.cancel_requested)
                .values(state=CANCELLED, last_error="cancelled", updated_at=now())
            ).rowcount
        )

    # Operator actions -----------------------------------------------------

    def cancel(self, pk: int) -> Job:
        """Cancel a job: at once when queued, between objects when running."""
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(sa.select(_J.c.state).where(_J.c.pk == pk)).first()
            if row is None:
                raise JobError(f"there is no job {pk}")
            if row.state in FINISHED:
                raise JobError(f"job {pk} is already {row.state}")
            values: dict[str, Any] = {"cancel_requested": True, "updated_at": now()}
            if row.state == QUEUED:
                values |= {"state": CANCELLED, "last_error": "cancelled"}
            conn.execute(sa.update(_J).where(_J.c.pk == pk).values(values))
        job = self.get(pk)
        assert job is not None
        return job

    def retry_now(self, pk: int) -> Job:
        """Run a job now: a queued one early, one with failures again, with
        its failed objects pending and a fresh retry schedule."""
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(sa.select(_J).where(_J.c.pk == pk)).first()
            if row is None:
                raise JobError(f"there is no job {pk}")
            if row.state not in (QUEUED, FAILED) and not (
                row.state == DONE and row.failed
            ):
                raise JobError(
                    f"job {pk} is {row.state}; only queued jobs and jobs with "
                    "failures can be retried"
                )
            values: dict[str, Any] = {
                "state": QUEUED,
                "next_attempt_at": now(),
                "updated_at": now(),
                "cancel_requested": False,
            }
            if row.state != QUEUED:
                reset = conn.execute(
                    sa.update(_ITEM)
                    .where(_ITEM.c.job_pk == pk, _ITEM.c.state == "failed")
                    .values(state="pending", status=None, error="")
                ).rowcount
                values |= {"attempts": 0, "failed": _J.c.failed - reset}
            conn.execute(sa.update(_J).where(_J.c.pk == pk).values(values))
        job = self.get(pk)
        assert job is not None
        return job

    def cancel_requested(self, pk: int) -> bool:
        """Whether an operator asked to cancel this running job."""
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.select(_J.c.cancel_requested).where(_J.c.pk == pk)
                ).scalar()
            )


def _claimable(
    only: Iterable[int] | None, kinds: Iterable[str] | None
) -> list[sa.ColumnElement[bool]]:
    """Conditions of the queued jobs a runner may take."""
    conditions = [_J.c.state == QUEUED, sa.not_(_J.c.cancel_requested)]
    if only is not None:
        conditions.append(_J.c.pk.in_(list(only)))
    if kinds is not None:
        conditions.append(_J.c.kind.in_(list(kinds)))
    return conditions


_P, _ST, _SE, _I = schema.patient, schema.study, schema.series, schema.instance


def resolve_uids(engine: sa.Engine, values: list[str]) -> list[str]:
    """The SOP Instance UIDs that patients (by ID), studies, series or
    instances stand for, in study, series and instance order.

    Raises JobError naming the values that match nothing stored.
    """
    found, unknown = resolve_known(engine, values)
    if unknown:
        raise JobError(unknown_message(unknown))
    return found


def unknown_message(unknown: list[str]) -> str:
    """What to say about inputs that match nothing stored."""
    return "nothing stored has the UID or Patient ID " + name_list(unknown)


def name_list(values: list[str], limit: int = 20) -> str:
    """Values quoted and joined for a message, at most *limit* of them:
    a script may pass thousands, a message names a few and counts the rest."""
    named = ", ".join(f"'{v}'" for v in values[:limit])
    rest = len(values) - limit
    return named + (f" and {rest} more" if rest > 0 else "")


def resolve_known(engine: sa.Engine, values: list[str]) -> tuple[list[str], list[str]]:
    """The SOP Instance UIDs of what *values* name (see :func:`resolve_uids`)
    and the values that name nothing stored; JobError if none is given."""
    wanted = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not wanted:
        raise JobError("no UIDs given")
    source = (
        _P.join(_ST, _ST.c.patient_pk == _P.c.pk)
        .join(_SE, _SE.c.study_pk == _ST.c.pk)
        .join(_I, _I.c.series_pk == _SE.c.pk)
    )
    found: list[str] = []
    unknown = []
    with engine.connect() as conn:
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
    return list(dict.fromkeys(found)), unknown


@dataclass(frozen=True)
class StoredObject:
    """Where a stored object is and how it is encoded, for sending it."""

    sop_class: str
    sop_instance: str
    transfer_syntax: str
    path: str  # relative to the data folder
    incomplete: bool


def stored_objects(engine: sa.Engine, uids: list[str]) -> dict[str, StoredObject]:
    """The stored objects among *uids*, by SOP Instance UID."""
    out: dict[str, StoredObject] = {}
    with engine.connect() as conn:
        for start in range(0, len(uids), 500):
            chunk = uids[start : start + 500]
            for row in conn.execute(
                sa.select(*SENDING_COLUMNS).where(_I.c.SOPInstanceUID.in_(chunk))
            ):
                out[row.SOPInstanceUID] = StoredObject(*row)
    return out
