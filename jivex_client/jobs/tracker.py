"""What the workstation knows of the core's job queue, kept current by events.

The core announces each change of state with a ``job`` event carrying the
whole job, and each object a running job moved with ``job_progress``,
carrying only its id: for those the tracker asks for the job again, one
request per job at a time, however fast the events come.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from jivex_client.core_link import CoreError, CoreLink
from jivex_client.jobs.models import Job, JobTableModel, is_finished
from jivex_client.tasks import spawn

logger = logging.getLogger(__name__)

#: Jobs read when the link (re)connects, newest first.
INITIAL_JOBS = 200


class JobTracker(QObject):
    """The jobs of the core, in one :class:`JobTableModel` shared by views."""

    #: A job's new state (after the model has it).
    job_changed = Signal(dict)
    #: How many jobs are queued or running.
    active_count_changed = Signal(int)

    def __init__(self, link: CoreLink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.model = JobTableModel(parent=self)
        # Per job: events seen, so that an answer older than an event is
        # dropped; and whether another read is wanted once one is under way.
        self._events: dict[int, int] = {}
        self._fetching: dict[int, bool] = {}
        self._active = 0
        link.event_received.connect(self._on_link_event_received)
        link.connected_changed.connect(self._on_link_connected_changed)
        if link.connected:
            spawn(self.refresh(), "Reading the job list")

    @property
    def active_count(self) -> int:
        """Jobs queued or running."""
        return self._active

    def job(self, job_id: int) -> Job | None:
        """The last known state of a job."""
        return self.model.job(job_id)

    def update(self, job: Job) -> None:
        """Show a job as the core just described it (a reply or an event)."""
        self.model.upsert(job)
        self.job_changed.emit(dict(job))
        active = sum(1 for j in self.model.jobs if not is_finished(j))
        if active != self._active:
            self._active = active
            self.active_count_changed.emit(active)

    async def refresh(self) -> None:
        """Read the newest jobs from the core."""
        seen = dict(self._events)
        try:
            jobs = await self.link.request("jobs", {"limit": INITIAL_JOBS})
        except CoreError as exc:
            logger.warning("Cannot read the job list: %s", exc)
            return
        for job in reversed(jobs):
            job_id = int(job["id"])
            if self._events.get(job_id, 0) == seen.get(job_id, 0):
                self.update(job)

    async def cancel(self, job_id: int) -> Job:
        """Ask the core to cancel a job; CoreError carries its refusal."""
        job = await self.link.request("cancel_job", {"id": job_id})
        self.update(job)
        return job

    async def retry(self, job_id: int) -> Job:
        """Ask the core to run a job again now; CoreError carries its refusal."""
        job = await self.link.request("retry_job", {"id": job_id})
        self.update(job)
        return job

    # -- events ----------------------------------------------------------

    def _on_link_event_received(self, name: str, data: dict) -> None:
        if name == "job" and "id" in data:
            job_id = int(data["id"])
            self._events[job_id] = self._events.get(job_id, 0) + 1
            self.update(data)
        elif name == "job_progress" and "id" in data:
            self._fetch_later(int(data["id"]))

    def _on_link_connected_changed(self, connected: bool) -> None:
        if connected:
            spawn(self.refresh(), "Reading the job list")

    def _fetch_later(self, job_id: int) -> None:
        if job_id in self._fetching:
            self._fetching[job_id] = True  # read again when this one ends
            return
        self._fetching[job_id] = False
        spawn(self._fetch(job_id), "Reading a job's progress")

    async def _fetch(self, job_id: int) -> None:
        try:
            while True:
                seen = self._events.get(job_id, 0)
                try:
                    job: dict[str, Any] = await self.link.request("job", {"id": job_id})
                except CoreError as exc:
                    logger.info("Cannot read job %d: %s", job_id, exc)
                    return
                # A job event that came meanwhile may be newer than this
                # answer (replies and events travel apart); it wins.
                if self._events.get(job_id, 0) == seen:
                    self.update(job)
                if not self._fetching.get(job_id):
                    return
                self._fetching[job_id] = False
        finally:
            self._fetching.pop(job_id, None)
