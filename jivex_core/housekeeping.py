"""Local removal on request, and the lifetime policy that removes on a schedule.

Both keep a reference of each object removed (see
:mod:`jivex_core.store.removal`), from which ``reload`` fetches it again.
The policy (``storage.lifetime_days``) removes the studies whose newest
object was received more than that many days ago, at start and then every
hour; it only removes objects that came from a node of the remote AE table,
since anything else (sent by a modality, imported) could never be brought
back.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from jivex_core.config import Settings
from jivex_core.store import Store
from jivex_core.store.removal import DELETE, LIFETIME, RemovalError, kept_text
from jivex_core.wording import counted

logger = logging.getLogger(__name__)

#: Seconds between two runs of the lifetime policy.
LIFETIME_INTERVAL = 3600.0

Publisher = Callable[[str, dict[str, Any]], None]


class Housekeeping:
    """Removes objects of the data folder, on request and by the policy."""

    def __init__(
        self, settings: Settings, store: Store, publish: Publisher | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.publish = publish or (lambda _name, _data: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Studies whose kept objects were already logged by this process.
        self._told: set[str] = set()
        # One removal at a time: the policy and an operator's delete.
        self._lock = threading.Lock()

    def known_origins(self) -> set[str]:
        """The remote AE titles objects can be fetched again from."""
        return {node.ae_title for node in self.settings.remote}

    # -- on request ----------------------------------------------------------

    def delete(self, values: list[str], dry_run: bool = False) -> dict[str, Any]:
        """Remove patients (by Patient ID), studies, series or instances.

        Returns what was (with *dry_run*: would be) removed, per study, with
        the inputs that named nothing stored under ``errors``; RemovalError
        when nothing can be removed.
        """
        if not any(v.strip() for v in values):
            raise RemovalError("no UIDs given")
        removals = self.store.removals
        with self._lock:
            selection = removals.select(values)
            summary = removals.summary(selection, self.known_origins())
            if not selection.instance_pks:
                raise RemovalError("; ".join(p.error for p in selection.problems))
            view = summary.view()
            if dry_run:
                return {**view, "dry_run": True}
            removed = removals.remove(selection.instance_pks, DELETE)
        logger.warning(
            "Removed %d objects of %d studies on request%s",
            removed,
            len(summary.study_rows),
            f"; {summary.not_reloadable} of them cannot be reloaded (no origin "
            "in the remote AE table)"
            if summary.not_reloadable
            else "",
        )
        self._announce(summary.study_rows, removed, DELETE)
        return {**view, "instances": removed, "dry_run": False}

    def _announce(self, studies: list[dict[str, Any]], count: int, why: str) -> None:
        self.publish(
            "removed",
            {
                "StudyInstanceUIDs": [s["StudyInstanceUID"] for s in studies],
                "instances": count,
                "reason": why,
            },
        )

    # -- the lifetime policy -------------------------------------------------

    def apply_lifetime(self, now: dt.datetime | None = None) -> int:
        """Run the lifetime policy once; returns how many objects it removed.

        Objects whose origin is not in the remote AE table are kept and the
        decision logged (once per study and process).
        """
        days = self.settings.storage.lifetime_days
        if not days:
            return 0
        removals = self.store.removals
        removed = kept = kept_studies = 0
        for study in removals.expired(days, self.known_origins(), now):
            if self._stop.is_set():
                break
            if study.kept:
                kept += sum(study.kept.values())
                kept_studies += 1
                if study.study_uid not in self._told:
                    self._told.add(study.study_uid)
                    logger.info(
                        "Lifetime: study '%s' of %s, last received %s, keeps %s: "
                        "not retrieved from a configured remote AE, no reload "
                        "could bring them back",
                        study.study_uid,
                        study.patient,
                        study.newest.isoformat(timespec="seconds"),
                        kept_text(study.kept),
                    )
            if not study.removable:
                continue
            with self._lock:
                count = removals.remove(
                    study.removable, LIFETIME, received_before=study.cutoff
                )
            removed += count
            logger.info(
                "Lifetime: removed %s of study '%s' of %s, last received %s",
                counted(count, "object"),
                study.study_uid,
                study.patient,
                study.newest.isoformat(timespec="seconds"),
            )
            self._announce([{"StudyInstanceUID": study.study_uid}], count, LIFETIME)
        if removed or kept:
            logger.warning(
                "Lifetime policy (%s): removed %s; kept %s of %s that no "
                "configured remote AE can give back",
                counted(days, "day"),
                counted(removed, "object"),
                counted(kept, "object"),
                counted(kept_studies, "study", "studies"),
            )
        return removed

    def start(self) -> None:
        """Run the policy now and then every hour, in a thread of its own."""
        if not self.settings.storage.lifetime_days or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._schedule, name="lifetime", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the schedule (a run under way finishes its study)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _schedule(self) -> None:
        while not self._stop.is_set():
            try:
                self.apply_lifetime()
            except Exception:
                logger.exception("The lifetime policy failed; next run in an hour")
            self._stop.wait(LIFETIME_INTERVAL)
