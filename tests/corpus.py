"""The real DICOM files the tests send: shared data plus pydicom's packages."""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.data

from tests.helpers import SHARED_DATA


def corpus_roots() -> list[Path]:
    """Folders of real files: ../shared/data, pydicom's and pydicom-data's."""
    package = Path(pydicom.data.__file__).parent
    roots = [SHARED_DATA, package / "test_files", package / "charset_files"]
    try:
        import data_store  # the pydicom-data package

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return [r for r in roots if r.is_dir()]


@dataclass(frozen=True)
class CorpusFile:
    """One readable DICOM file with what the tests need to know of it."""

    path: Path
    sop_instance_uid: str
    transfer_syntax: str
    has_meta: bool
    occurrence: int  # how many earlier files share its SOP Instance UID


@functools.cache
def readable_files() -> tuple[CorpusFile, ...]:
    """Every file pydicom reads (with or without File Meta) that has a SOP
    Instance UID and is not a DICOMDIR: every file that is a storable object."""
    seen: Counter[str] = Counter()
    out: list[CorpusFile] = []
    for root in corpus_roots():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.suffix in (".py", ".pyc", ".txt", ".tsv", ".md", ".json"):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                    has_meta = True
                except pydicom.errors.InvalidDicomError:
                    try:
                        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
                    except Exception:
                        continue
                    has_meta = False
                except Exception:
                    continue
                try:
                    sop = str(ds.get("SOPInstanceUID", "") or "")
                    sop_class = str(ds.get("SOPClassUID", "") or "")
                except Exception:
                    continue
            # A DICOMDIR names its own class in some files; it is a media
            # directory, not a composite object an archive stores.
            if not sop or not sop_class or sop_class == "1.2.840.10008.1.3.10":
                continue
            ts = ""
            if has_meta:
                ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
            out.append(CorpusFile(path, sop, ts, has_meta and bool(ts), seen[sop]))
            seen[sop] += 1
    return tuple(out)


def query_archive_files() -> list[str]:
    """Four studies for the query tests: DOE^J1 (9 MR images, 2017),
    CompressedSamples^CT1 (2004), Yamada^Tarou (ISO 2022 IR 87) and
    Hong^Gildong (ISO 2022 IR 149)."""
    from pydicom.data import get_charset_files, get_testdata_file

    return [
        *sorted(str(p) for p in (SHARED_DATA / "dcm4che").glob("MR0*.dcm")),
        get_testdata_file("CT_small.dcm"),
        get_charset_files("chrH31.dcm")[0],
        get_charset_files("chrI2.dcm")[0],
    ]


def make_ct_series(
    folder: Path,
    count: int,
    size: int = 64,
    patient_id: str = "QUEUE1",
    study: str | None = None,
) -> list[str]:
    """*count* small CT images of one new series, as files in *folder*.

    Each image's pixels hold its instance number, so that a test can tell
    them apart after a transfer.
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    from jivex_core.uids import new_uid as generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series = study or generate_uid(), generate_uid()
    paths = []
    for number in range(1, count + 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = f"Test^{patient_id}"
        ds.PatientID = patient_id
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.Modality = "CT"
        ds.InstanceNumber = number
        ds.Rows = ds.Columns = size
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = np.full((size, size), number, np.uint16).tobytes()
        path = folder / f"ct{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    return paths
