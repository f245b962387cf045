"""Runs the jobs of the queue in worker threads of the core.

A scheduler thread claims due jobs while a worker is free and sleeps until
the next one is due or something is queued. What a job does is up to the
executor registered for its kind by the service that owns it (the Storage
SCU sends, the Q/R SCU retrieves); the runner keeps the rules common to all:
when a peer cannot be reached, refuses the association or goes away mid-way
the executor raises :class:`RetryLater`, and the job is queued again after
the next delay of that peer's retry schedule (``retry_minutes``), and fails
once the schedule is used up. At shutdown a running job is given back.

The core that serves a data folder runs every due job. A core a command
starts for itself (no server runs) runs only the jobs the command hands it
(:meth:`JobRunner.adopt`): a listing, a delete or a ``--no-wait`` send must
not set off what others queued, least of all a retrieve with no Storage SCP
to receive it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jivex_core.config import RemoteNode, Settings
from jivex_core.store.jobs import FAILED, Job, JobError, JobQueue, now

logger = logging.getLogger(__name__)

Publisher = Callable[[str, dict[str, Any]], None]


class RetryLater(Exception):
    """The peer is not there now; the message says how it failed."""


class Stopping(Exception):
    """The core is shutting down: the job is given back, not counted."""


def next_time_of_day(at: str, after: dt.datetime) -> dt.datetime:
    """The first moment at *at* (``HH:MM``) not before *after*."""
    hour, minute = (int(part) for part in at.split(":"))
    moment = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return moment if moment >= after else moment + dt.timedelta(days=1)


class JobContext:
    """What an executor sees of the runner while it runs one job."""

    def __init__(self, runner: JobRunner, job: Job, node: RemoteNode) -> None:
        self.runner = runner
        self.job = job
        self.node = node
        self.queue = runner.queue

    def check(self) -> bool:
        """Between two steps: raise Stopping at shutdown; True if an
        operator asked to cancel the job."""
        if self.runner.stopping:
            raise Stopping
        return self.queue.cancel_requested(self.job.pk)

    def progress(self) -> None:
        """Tell the clients the job's counts changed."""
        self.runner.publish("job_progress", {"id": self.job.pk})

    def finish(self, state: str, error: str = "") -> None:
        """End the job (done, failed or cancelled)."""
        self.queue.finish(self.job.pk, state, error)


Executor = Callable[[JobContext], None]


class JobRunner:
    """The worker threads of the job queue."""

    def __init__(
        self,
        settings: Settings,
        queue: JobQueue,
        publish: Publisher | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.publish = publish or (lambda _name, _data: None)
        self._executors: dict[str, Executor] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.jobs.workers, thread_name_prefix="job")
        self._busy = threading.Semaphore(settings.jobs.workers)
        self._thread = threading.Thread(
            target=self._schedule, name="job-scheduler", daemon=True
        )
        #: The jobs this runner may take (None: every due job).
        self._only: frozenset[int] | set[int] | None = None
        #: The kinds of job it may take (None: every kind).
        self._kinds: set[str] | None = None

    def register(self, kind: str, executor: Executor) -> None:
        """Run jobs of *kind* with *executor*."""
        self._executors[kind] = executor

    @property
    def stopping(self) -> bool:
        """Whether the core is shutting down."""
        return self._stop.is_set()

    # Life cycle -----------------------------------------------------------

    def start(self, adopted_only: bool = False, kinds: set[str] | None = None) -> None:
        """Start scheduling: every due job, or with *adopted_only* only those
        given to :meth:`adopt`; with *kinds*, only jobs of those kinds.

        Jobs a crash left running are queued again by the owner of the data
        folder (:meth:`JobQueue.resume`) before this.
        """
        self._only = set() if adopted_only else None
        self._kinds = set(kinds) if kinds is not None else None
        self._thread.start()

    def adopt(self, pks: Iterable[int]) -> None:
        """Run these jobs too (a runner started with *adopted_only*)."""
        if self._only is not None:
            # A new set, not an update: the scheduler thread reads it.
            self._only = self._only | set(pks)
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the scheduler runs (a command's core may have none)."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; running jobs give their job back between steps."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # Queueing -------------------------------------------------------------

    def node(self, remote_ae: str) -> RemoteNode:
        """The remote AE of that title; JobError naming the known ones."""
        node = self.settings.remote_node(remote_ae)
        if node is None:
            known = ", ".join(n.ae_title for n in self.settings.remote) or "none"
            raise JobError(
                f"'{remote_ae}' is not in the remote AE table (known: {known})"
            )
        return node

    def submit(
        self,
        kind: str,
        remote_ae: str,
        request: dict[str, Any],
        sop_instance_uids: Iterable[str] = (),
        delay: float = 0.0,
    ) -> Job:
        """Queue a job; it waits for the node's ``send_at`` time if set."""
        node = self.node(remote_ae)
        at = now() + dt.timedelta(seconds=delay)
        if node.send_at and kind != "move":
            at = next_time_of_day(node.send_at, at)
        job = self.queue.add(kind, node.ae_title, request, sop_instance_uids, at)
        self.changed(job)
        return job

    def forward(self, remote_ae: str, sop_instance_uid: str) -> None:
        """Add one received object to the open forward job to *remote_ae*."""
        pk = self.queue.open_forward(remote_ae)
        if pk is not None and self.queue.append(pk, [sop_instance_uid]):
            return
        self.submit(
            "forward",
            remote_ae,
            {},
            [sop_instance_uid],
            self.settings.jobs.forward_delay_seconds,
        )

    def cancel(self, pk: int) -> Job:
        """Cancel a job (see :meth:`JobQueue.cancel`)."""
        job = self.queue.cancel(pk)
        self.changed(job)
        return job

    def retry(self, pk: int) -> Job:
        """Run a job again now (see :meth:`JobQueue.retry_now`)."""
        job = self.queue.retry_now(pk)
        self.changed(job)
        return job

    def changed(self, job: Job | None) -> None:
        """Publish a job's new state and look for due work."""
        if job is not None:
            self.publish("job", job.view())
        self._wake.set()

    # Scheduling -----------------------------------------------------------

    def _schedule(self) -> None:
        while not self._stop.is_set():
            if self._busy.acquire(blocking=False):
                try:
                    job = self.queue.claim(only=self._only, kinds=self._kinds)
                except Exception:
                    logger.exception("The job queue cannot be read")
                    job = None
                if job is not None:
                    self.changed(job)
                    self._pool.submit(self._run, job)
                    continue
                self._busy.release()
            due = self.queue.next_due(self._only, self._kinds)
            wait = 5.0
            if due is not None:
                wait = min(max((due - now()).total_seconds(), 0.05), wait)
            self._wake.wait(wait)
            self._wake.clear()

    def _run(self, job: Job) -> None:
        node = self.settings.remote_node(job.remote_ae)
        try:
            executor = self._executors.get(job.kind)
            if node is None:
                self.queue.finish(
                    job.pk,
                    FAILED,
                    f"'{job.remote_ae}' is no longer in the remote AE table",
                )
            elif executor is None:
                self.queue.finish(job.pk, FAILED, f"no service runs '{job.kind}' jobs")
            else:
                executor(JobContext(self, job, node))
        except RetryLater as exc:
            self._retry_later(job, node, str(exc))
        except Stopping:
            self.queue.requeue(job.pk)
            logger.info("Job %d given back at shutdown", job.pk)
        except Exception as exc:
            logger.exception("Job %d failed", job.pk)
            self.queue.finish(job.pk, FAILED, f"internal error: {exc}")
        finally:
            self._busy.release()
            self.changed(self.queue.get(job.pk))

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
