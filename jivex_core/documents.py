"""Presentation states and key object documents the workstation creates.

The viewer sends a :class:`~jivex_core.imaging.presentation.PresentationState`
or a :class:`~jivex_core.imaging.presentation.KeyObjectSelection`; here the
referenced images' headers are read from the files the index names, the
object is built (:mod:`jivex_core.imaging.gsps`, :mod:`jivex_core.imaging.ko`)
and stored through :meth:`Store.ingest`, the path every received object takes:
our File Meta (Implementation Class UID), the index with the query keys of
tables 12 and 13, the ``instance_stored`` event, routing, and sending like
any object.

Created objects go to one series per study and modality (PR or KO) of this
station, found again through the index for later saves, numbered from 9001
(PR) and 9101 (KO) on so as not to collide with the acquired series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from jivex_core.imaging.created import ENCODED_SYNTAX, encode
from jivex_core.imaging.gsps import (
    GSPS_SOP_CLASS,
    PR_SERIES_NUMBER,
    build_presentation_state,
    presentation_from_dataset,
)
from jivex_core.imaging.ko import (
    KO_SERIES_NUMBER,
    KO_SOP_CLASS,
    build_key_object_selection,
    key_objects_from_dataset,
)
from jivex_core.imaging.presentation import KeyObjectSelection, PresentationState
from jivex_core.store import Store
from jivex_core.uids import INSTANCE_ARC, new_uid

logger = logging.getLogger(__name__)


class Documents:
    """Creates, stores and lists the GSPS and KO objects of the archive.

    Parameters
    ----------
    store : Store
        The archive the sources are read from and the objects go to.
    ae_title : str
        Our AE title: recorded as the source of what we create, which is
        how our own series are told from those other stations sent.
    """

    def __init__(self, store: Store, ae_title: str) -> None:
        self.store = store
        self.ae_title = ae_title.strip()
        # One save at a time: choosing the series and instance number and
        # storing the object must not interleave.
        self._lock = threading.Lock()

    def _read(self, uid: str, what: str) -> Dataset:
        relative = self.store.index.instance_path(uid)
        if relative is None:
            raise ValueError(f"{what} '{uid}' is not in the archive")
        path = self.store.files.absolute(relative)
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # whatever the reader trips on, name the file
            raise ValueError(
                f"{what} '{uid}' cannot be read from '{path}': {exc}"
            ) from exc

    def _sources(self, wanted: Iterable[tuple[str, str]]) -> list[Dataset]:
        seen: dict[str, Dataset] = {}
        for uid, what in wanted:
            if uid not in seen:
                seen[uid] = self._read(uid, what)
        return list(seen.values())

    def _placement(self, study_uid: str, modality: str) -> tuple[str, int, int]:
        """Series UID, Series Number and Instance Number of the next object."""
        base = PR_SERIES_NUMBER if modality == "PR" else KO_SERIES_NUMBER
        found = self.store.index.created_series(
            study_uid, modality, self.ae_title, INSTANCE_ARC
        )
        if found is not None:
            series_uid, number, last = found
            return series_uid, base if number is None else number, last + 1
        taken = self.store.index.series_numbers(study_uid)
        number = base
        while number in taken:
            number += 1
        return new_uid(), number, 1

    def _store(self, ds: Dataset) -> dict[str, str]:
        result = self.store.ingest(encode(ds), ENCODED_SYNTAX, self.ae_title)
        logger.info(
            "Created %s '%s' in series %s of study %s",
            ds.Modality,
            ds.SOPInstanceUID,
            ds.SeriesNumber,
            ds.StudyInstanceUID,
        )
        return {
            "SOPInstanceUID": str(ds.SOPInstanceUID),
            "SeriesInstanceUID": str(ds.SeriesInstanceUID),
            "StudyInstanceUID": str(ds.StudyInstanceUID),
            "path": str(result.path),
        }

    def save_presentation(self, state: PresentationState) -> dict[str, str]:
        """Build a GSPS for *state* on the archived images and store it.

        Returns
        -------
        dict
            SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID and the
            absolute path of the stored file.

        Raises
        ------
        ValueError
            An image is not in the archive or cannot be read, or the state
            cannot be written (colour image, malformed content): the
            message names it.
        """
        if not state.images:
            raise ValueError("a presentation state must reference at least one image")
        with self._lock:
            sources = self._sources((r.SOPInstanceUID, "image") for r in state.images)
            study = str(sources[0].StudyInstanceUID)
            series_uid, number, instance = self._placement(study, "PR")
            ds = build_presentation_state(
                state,
                sources,
                series_uid=series_uid,
                series_number=number,
                instance_number=instance,
            )
            return self._store(ds)

    def save_key_objects(self, selection: KeyObjectSelection) -> dict[str, str]:
        """Build a Key Object Selection Document and store it.

        The images' SOP classes and series are taken from the archive, so a
        selection may name them by SOP Instance UID alone.

        Returns
        -------
        dict
            As :meth:`save_presentation`.

        Raises
        ------
        ValueError
            As :meth:`save_presentation`, and for a presentation state that
            does not apply to its image or a title outside CID 7010.
        """
        if not selection.images:
            raise ValueError("a key object selection must flag at least one image")
        wanted = [(r.SOPInstanceUID, "image") for r in selection.images]
        wanted += [
            (r.SOPInstanceUID, "presentation state")
            for r in selection.presentation_states
            if r is not None
        ]
        with self._lock:
            sources = self._sources(wanted)
            study = str(sources[0].StudyInstanceUID)
            series_uid, number, instance = self._placement(study, "KO")
            ds = build_key_object_selection(
                selection,
                sources,
                series_uid=series_uid,
                series_number=number,
                instance_number=instance,
            )
            return self._store(ds)

    def study_documents(self, study_uid: str) -> list[dict[str, Any]]:
        """Every GSPS and KO of a study, for the viewer to list and open.

        Each row has SOPClassUID, SOPInstanceUID, SeriesInstanceUID,
        Modality, SeriesNumber, InstanceNumber and path (absolute), then
        from the file: ``label`` (Content Label, or the KO's title meaning),
        ``title`` (the KO's title code as [value, scheme, meaning]),
        ``description`` (Content Description, or the KO's text),
        ``creator``, ``date`` and ``time`` (of creation, or the KO's
        content), and ``references``: the SOP Instance UIDs of the images
        it applies to or flags. A file that cannot be read is listed with
        ``error`` saying why, and no references.
        """
        rows = self.store.index.instances_of_classes(
            study_uid, (GSPS_SOP_CLASS, KO_SOP_CLASS), self.store.data_dir
        )
        out = []
        for row in rows:
            entry: dict[str, Any] = {
                **row,
                "label": "",
                "title": None,
                "description": "",
                "creator": "",
                "date": "",
                "time": "",
                "references": [],
            }
            try:
                ds = pydicom.dcmread(row["path"])
                if row["SOPClassUID"] == GSPS_SOP_CLASS:
                    state = presentation_from_dataset(ds)
                    entry.update(
                        label=state.label,
                        description=state.description,
                        creator=state.creator,
                        date=str(ds.get("PresentationCreationDate", "") or ""),
                        time=str(ds.get("PresentationCreationTime", "") or ""),
                        references=[r.SOPInstanceUID for r in state.images],
                    )
                else:
                    selection = key_objects_from_dataset(ds)
                    title = selection.title
                    entry.update(
                        label=title.meaning,
                        title=[title.value, title.scheme, title.meaning],
                        description=selection.text,
                        creator=selection.creator,
                        date=str(ds.get("ContentDate", "") or ""),
                        time=str(ds.get("ContentTime", "") or ""),
                        references=[r.SOPInstanceUID for r in selection.images],
                    )
            except Exception as exc:  # listed with the reason, never a crash
                logger.warning("'%s' cannot be listed: %s", row["path"], exc)
                entry["error"] = str(exc)
            out.append(entry)
        out.sort(key=lambda e: (e["date"], e["time"], e["InstanceNumber"] or 0))
        return out
