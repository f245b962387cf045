"""The engine: opens the store, starts and stops every service.

One engine runs per data folder, in the foreground of ``jivex server`` or as
the child process of the workstation. It owns every socket, the index and
every write to the data folder.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Literal, TextIO

import pydicom.config

from jivex_core import __version__
from jivex_core.config import Settings
from jivex_core.documents import Documents
from jivex_core.errors import ConfigError, JivexError
from jivex_core.housekeeping import Housekeeping
from jivex_core.imaging.presentation import selection_from_dict, state_from_dict
from jivex_core.importer import import_file
from jivex_core.jobs.runner import JobRunner
from jivex_core.link import LinkServer
from jivex_core.services.origins import Origins
from jivex_core.services.qr_scp import QueryRetrieveSCP
from jivex_core.services.qr_scu import RetrieveJobs
from jivex_core.services.storage_scp import StorageSCP
from jivex_core.services.storage_scu import SendJobs
from jivex_core.store import InstanceRecord, Store
from jivex_core.store.jobs import JobQueue, unknown_message
from jivex_core.wording import counted

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = "core.lock"


def quiet_pydicom() -> None:
    """Switch pydicom's value validation off for this process.

    The archive keeps objects as received and checks the few values it must
    trust (UIDs) itself; pydicom would otherwise run a regular expression on
    every value it decodes or that pynetdicom sets in a response (a tenth of
    the receive path) and log each non-conformant value a modality sends.
    """
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE


def open_store(settings: Settings) -> Store:
    """Open the data folder, with a clear error when it cannot be used."""
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"data folder '{data_dir}' cannot be used: {exc.strerror}"
        ) from exc
    try:
        return Store(
            data_dir,
            min_free_bytes=int(settings.storage.min_free_space_mb * 2**20),
            fsync=settings.storage.fsync,
        )
    except (JivexError, OSError) as exc:
        raise ConfigError(f"data folder '{data_dir}' cannot be used: {exc}") from exc


def lock_data_dir(data_dir: Path) -> TextIO:
    """Take the data folder's lock, so that one core at most serves it.

    Two servers on one folder would each believe they own its index and its
    ports' objects. ``jivex import`` does not take the lock: next to a
    running core it imports through that core's link, and alone it writes
    through the index's own locking (leaving ``incoming/`` to the owner).
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / LOCK_FILE_NAME, "a+", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"data folder '{data_dir}' cannot be used: {exc.strerror or exc}"
        ) from exc
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            f"data folder '{data_dir}' is already served by another jivex "
            f"server (pid {owner})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _param(params: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """A request parameter of the right type, else ValueError naming it."""
    value = params.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"parameter '{key}' must be {what}")
    return value


class Engine:
    """Runs the services of one data folder until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        network: bool = True,
        lifetime: bool = True,
        run_jobs: Literal["all", "adopted", "none"] = "all",
    ) -> None:
        self.settings = settings
        # Without network, only the store and the job queue run: what the
        # command line needs when no core serves the data folder.
        self.network = network
        # The lifetime policy runs in the cores that serve a data folder,
        # not in one a command starts for itself.
        self.lifetime = lifetime
        # The core serving a data folder runs every due job; one a command
        # starts runs the jobs that command hands it ("adopted") or none.
        if run_jobs not in ("all", "adopted", "none"):
            raise ValueError(f"run_jobs '{run_jobs}' is not all, adopted or none")
        self.run_jobs = run_jobs
        self._lock: TextIO | None = None
        self.store: Store | None = None
        self.storage_scp: StorageSCP | None = None
        self.qr_scp: QueryRetrieveSCP | None = None
        self.link: LinkServer | None = None
        self.jobs: JobRunner | None = None
        self.sends: SendJobs | None = None
        self.retrieves: RetrieveJobs | None = None
        self.documents: Documents | None = None
        self.housekeeping: Housekeeping | None = None

    def methods(self) -> dict[str, Any]:
        """The link's methods, by name (each takes a dict of parameters)."""
        assert self.store is not None
        store = self.store
        net = self.settings.network

        def status(_params: dict) -> dict:
            return {
                "ae_title": net.ae_title,
                "storage_port": self.storage_scp.port if self.storage_scp else 0,
                "query_port": self.qr_scp.port if self.qr_scp else 0,
                **store.status(),
            }

        jobs, sends, retrieves = self.jobs, self.sends, self.retrieves
        assert jobs is not None and sends is not None and retrieves is not None
        housekeeping = self.housekeeping
        assert housekeeping is not None
        removals = store.removals

        def list_studies(params: dict) -> list[dict]:
            rows = store.index.studies(params.get("limit"))
            if params.get("removed"):
                return removals.with_removed_studies(rows)
            return rows

        def list_series(params: dict) -> list[dict]:
            study = str(params["StudyInstanceUID"])
            rows = store.index.series_of(study)
            if params.get("removed"):
                return removals.with_removed_series(study, rows)
            return rows

        def job_list(params: dict) -> list[dict]:
            states = params.get("states") or []
            limit = int(params.get("limit") or 200)
            return [job.view() for job in jobs.queue.list(limit, states)]

        def remotes(_params: dict) -> list[dict]:
            # What a user picks from: no retry schedule or PDU size, which
            # are the core's business.
            return [
                {"ae_title": node.ae_title, "host": node.host, "port": node.port}
                for node in self.settings.remote
            ]

        def job_get(params: dict) -> dict:
            job = jobs.queue.get(int(params["id"]))
            if job is None:
                raise ValueError(f"there is no job {params['id']}")
            view = job.view()
            if params.get("items"):
                view["items"] = jobs.queue.items(job.pk)
            return view

        def send(params: dict) -> dict:
            job, unknown = sends.queue_known(
                str(params["to"]), [str(u) for u in params["uids"]]
            )
            return job.view() | {
                "errors": [
                    {"uid": uid, "error": unknown_message([uid])} for uid in unknown
                ]
            }

        def move(params: dict) -> Any:
            check = bool(params.get("check"))
            result = retrieves.queue_uids(
                str(params["from"]),
                str(params.get("level") or "STUDY"),
                [str(u) for u in params["uids"]],
                str(params.get("study") or ""),
                check,
            )
            views = [job.view() for job in result["jobs"]]
            if "check" not in params:
                return views  # what the workstation's Retrieve reads
            return {**result, "jobs": views}

        def import_files(params: dict) -> list[dict]:
            paths = _param(params, "paths", list, "a list of absolute paths")
            if not all(isinstance(p, str) and Path(p).is_absolute() for p in paths):
                raise ValueError("parameter 'paths' must be a list of absolute paths")
            return [import_file(store, Path(p)) for p in paths]

        documents = self.documents
        assert documents is not None

        return {
            "ping": lambda _p: {"pid": os.getpid(), "version": __version__},
            "remotes": remotes,
            "send": send,
            "jobs": job_list,
            "job": job_get,
            "cancel_job": lambda p: jobs.cancel(int(p["id"])).view(),
            "find": lambda p: retrieves.find(
                str(p["from"]),
                str(p.get("level") or "STUDY"),
                {str(k): str(v) for k, v in (p.get("keys") or {}).items()},
                p.get("limit"),
                str(p.get("query_id") or ""),
            ),
            "cancel_find": lambda p: {
                "cancelled": retrieves.cancel_find(str(p["query_id"]))
            },
            "move": move,
            "retry_job": lambda p: jobs.retry(int(p["id"])).view(),
            "status": status,
            "delete": lambda p: housekeeping.delete(
                [str(u) for u in p["uids"]], bool(p.get("dry_run"))
            ),
            "reload": lambda p: retrieves.reload([str(u) for u in p["uids"]]),
            "import": import_files,
            "list_removed": lambda p: removals.references(
                [str(u) for u in p.get("uids") or []]
            ),
            "list_studies": list_studies,
            "list_series": list_series,
            "list_instances": lambda p: store.index.instances_of(
                str(p["SeriesInstanceUID"]), store.data_dir
            ),
            "save_presentation": lambda p: documents.save_presentation(
                state_from_dict(_param(p, "state", dict, "a presentation state"))
            ),
            "save_key_objects": lambda p: documents.save_key_objects(
                selection_from_dict(
                    _param(p, "selection", dict, "a key object selection")
                )
            ),
            "study_documents": lambda p: documents.study_documents(
                _param(p, "StudyInstanceUID", str, "a Study Instance UID")
            ),
        }

    def start(self) -> None:
        """Open the store and start the DICOM services (not the link)."""
        net = self.settings.network
        quiet_pydicom()
        self._lock = lock_data_dir(self.settings.data_dir)
        try:
            self._start_services()
        except BaseException:
            if self.store is not None:
                self.store.close()
                self.store = None
            self._lock.close()
            self._lock = None
            raise
        logger.info(
            "Web service is not part of this version; web port %s noted", net.web_port
        )

    def _start_services(self) -> None:
        net = self.settings.network
        self.store = open_store(self.settings)
        logger.info(
            "Data folder '%s' holds %d objects",
            self.store.data_dir,
            self.store.index.count_instances(),
        )
        # This process holds the lock: what a crash left is its to finish.
        self.store.recover_incoming()
        self.store.recover_removals()
        queue = JobQueue(self.store.index.engine)
        queue.resume()
        self.jobs = JobRunner(self.settings, queue, self._publish)
        origins = Origins(self.settings)
        self.sends = SendJobs(self.settings, self.store, self.jobs)
        self.retrieves = RetrieveJobs(self.settings, self.store, self.jobs, origins)
        self.documents = Documents(self.store, net.ae_title)
        self.housekeeping = Housekeeping(self.settings, self.store, self._publish)
        if self.settings.routing:
            self.store.add_listener(self._route)
        if not self.network:
            self._start_jobs()
            self._start_lifetime()
            return
        self.storage_scp = StorageSCP(self.settings, self.store, origins)
        self.qr_scp = QueryRetrieveSCP(self.settings, self.store)
        for service, port_key, port in (
            (self.storage_scp, "network.storage_port", net.storage_port),
            (self.qr_scp, "network.query_port", net.query_port),
        ):
            try:
                service.start()
            except OSError as exc:
                self.storage_scp.stop(0)
                key = (
                    "network.bind_address"
                    if exc.errno == errno.EADDRNOTAVAIL
                    else port_key
                )
                raise ConfigError(
                    f"{key}: cannot listen on {net.bind_address}:{port}: "
                    f"{exc.strerror or exc}"
                ) from exc
        self._start_jobs()
        self._start_lifetime()

    def _start_jobs(self) -> None:
        assert self.jobs is not None
        if self.run_jobs == "none":
            return
        # A retrieve by C-MOVE needs our Storage SCP to receive its objects.
        kinds = None if self.network else {"send", "forward"}
        self.jobs.start(adopted_only=self.run_jobs == "adopted", kinds=kinds)

    def _start_lifetime(self) -> None:
        assert self.housekeeping is not None
        days = self.settings.storage.lifetime_days
        if not self.lifetime:
            return
        if days:
            logger.info(
                "Lifetime policy: studies last received more than %s ago "
                "are removed locally (those a remote AE can give back)",
                counted(days, "day"),
            )
        self.housekeeping.start()

    def _publish(self, name: str, data: dict[str, Any]) -> None:
        if self.link is not None:
            self.link.publish(name, data)

    def _route(self, rec: InstanceRecord, calling_ae: str) -> None:
        """Forward a newly stored object as the routing rules say."""
        assert self.jobs is not None
        destinations: list[str] = []
        for rule in self.settings.routing:
            if rule.matches(calling_ae, rec.Modality, rec.SOPClassUID):
                destinations.extend(
                    d for d in rule.destinations if d not in destinations
                )
        for destination in destinations:
            if destination == calling_ae.strip():
                continue  # never straight back to the sender
            try:
                self.jobs.forward(destination, rec.SOPInstanceUID)
            except Exception:
                logger.exception(
                    "Forwarding %s to '%s' could not be queued",
                    rec.SOPInstanceUID,
                    destination,
                )

    async def start_link(self) -> None:
        """Start the client link and forward store events to it."""
        assert self.store is not None
        self.link = LinkServer(
            self.store.data_dir,
            self.methods(),
            {
                "version": 1,
                "pid": os.getpid(),
                "ae_title": self.settings.network.ae_title,
            },
        )
        await self.link.start()
        link = self.link

        def on_stored(rec: InstanceRecord, calling_ae: str) -> None:
            link.publish(
                "instance_stored",
                {
                    "PatientID": rec.PatientID,
                    "PatientName": rec.PatientName,
                    "StudyInstanceUID": rec.StudyInstanceUID,
                    "SeriesInstanceUID": rec.SeriesInstanceUID,
                    "SOPInstanceUID": rec.SOPInstanceUID,
                    "SOPClassUID": rec.SOPClassUID,
                    "Modality": rec.Modality,
                    "calling_ae": calling_ae,
                },
            )

        self.store.add_listener(on_stored)
        link.broadcast(
            "service_state",
            {
                "service": "storage_scp",
                "state": "running",
                "port": self.storage_scp.port if self.storage_scp else 0,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, wait for *stop*, then shut down gracefully."""
        self.start()
        try:
            await self.start_link()
            await stop.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, let associations finish, close the store."""
        logger.info("Shutting down")
        if self.link is not None:
            await self.link.stop()
        if self.housekeeping is not None:
            await asyncio.to_thread(self.housekeeping.stop)
        if self.jobs is not None:
            await asyncio.to_thread(self.jobs.stop)
        # Both SCPs stop accepting at once and share one timeout for what
        # runs on them (stores, queries, retrieves), then abort the rest.
        timeout = self.settings.network.shutdown_timeout
        await asyncio.gather(
            *(
                asyncio.to_thread(scp.stop, timeout)
                for scp in (self.qr_scp, self.storage_scp)
                if scp is not None
            )
        )
        if self.store is not None:
            self.store.close()
        if self._lock is not None:
            self._lock.close()
        logger.info("Stopped")
