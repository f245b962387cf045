"""Presentation states and key object documents made for the query tests.

The shared data holds two real Grayscale Softcopy Presentation States but no
Key Object Selection Document, and no study with several states in one
series. These builders add them to a real study: every object references
real images of it and carries the study's patient and study attributes, so
the archive sees what a workstation would send. ``dciodvfy`` checks them
against their IODs (tests/test_qr_keys.py).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from jivex_core.uids import IMPLEMENTATION_CLASS_UID, new_uid

GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
KO = "1.2.840.10008.5.1.4.1.1.88.59"

_PATIENT_STUDY = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _base(images: list[Dataset], sop_class: str, series_uid: str) -> Dataset:
    first = images[0]
    ds = Dataset()
    for keyword in _PATIENT_STUDY:
        if keyword in first:
            setattr(ds, keyword, first.data_element(keyword).value)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = new_uid()
    ds.SeriesInstanceUID = series_uid
    ds.Manufacturer = "JiveX-Py tests"
    return ds


def _referenced_series(
    images: list[Dataset], items: str = "ReferencedImageSequence"
) -> Sequence:
    by_series: dict[str, list[Dataset]] = {}
    for image in images:
        by_series.setdefault(str(image.SeriesInstanceUID), []).append(image)
    out = Sequence()
    for series_uid, members in by_series.items():
        item = Dataset()
        refs = Sequence()
        for image in members:
            ref = Dataset()
            ref.ReferencedSOPClassUID = image.SOPClassUID
            ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
            refs.append(ref)
        setattr(item, items, refs)
        item.SeriesInstanceUID = series_uid
        out.append(item)
    return out


def presentation_state(
    images: list[Dataset],
    series_uid: str,
    number: int,
    description: str,
    creator: str,
    created: tuple[str, str],
) -> Dataset:
    """A Grayscale Softcopy Presentation State on *images* (PS3.3 A.33.1)."""
    ds = _base(images, GSPS, series_uid)
    ds.Modality = "PR"
    ds.SeriesNumber = 90
    ds.Laterality = ""  # the head is not a paired body part
    ds.InstanceNumber = number
    ds.ContentLabel = f"STATE{number}"
    ds.ContentDescription = description
    ds.PresentationCreationDate, ds.PresentationCreationTime = created
    ds.ContentCreatorName = creator
    ds.ReferencedSeriesSequence = _referenced_series(images)
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [
        int(images[0].Columns),
        int(images[0].Rows),
    ]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelAspectRatio = [1, 1]
    ds.DisplayedAreaSelectionSequence = Sequence([area])
    ds.ImageRotation = 0
    ds.ImageHorizontalFlip = "N"
    ds.PresentationLUTShape = "IDENTITY"
    return ds


def key_object(
    images: list[Dataset],
    series_uid: str,
    number: int,
    title: tuple[str, str, str],
    content: tuple[str, str],
    observed: str | None = None,
) -> Dataset:
    """A Key Object Selection Document flagging *images* (PS3.3 A.35.4).

    *title* is the document title code (CID 7010), for example
    ``("113000", "DCM", "Of Interest")``.
    """
    first = images[0]
    ds = _base(images, KO, series_uid)
    ds.Modality = "KO"
    ds.SeriesNumber = 91
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.InstanceNumber = number
    ds.ContentDate, ds.ContentTime = content
    request = Dataset()
    request.StudyInstanceUID = first.StudyInstanceUID
    request.ReferencedStudySequence = Sequence()
    request.AccessionNumber = first.get("AccessionNumber", "")
    request.PlacerOrderNumberImagingServiceRequest = ""
    request.FillerOrderNumberImagingServiceRequest = ""
    ordered = first.get("RequestAttributesSequence") or [Dataset()]
    request.RequestedProcedureID = ordered[0].get("RequestedProcedureID", "")
    request.RequestedProcedureDescription = "MR head"
    request.RequestedProcedureCodeSequence = Sequence(
        [_code("RPC1026", "99JIVEX", "MR head without contrast")]
    )
    ds.ReferencedRequestSequence = Sequence([request])
    evidence = Dataset()
    evidence.StudyInstanceUID = first.StudyInstanceUID
    evidence.ReferencedSeriesSequence = _referenced_series(
        images, "ReferencedSOPSequence"
    )
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code(*title)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([template])
    if observed is not None:
        ds.ObservationDateTime = observed
    ds.ContentSequence = Sequence()
    for image in images:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        entry = Dataset()
        entry.RelationshipType = "CONTAINS"
        entry.ValueType = "IMAGE"
        entry.ReferencedSOPSequence = Sequence([ref])
        ds.ContentSequence.append(entry)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    """Write *ds* as a DICOM file in Explicit VR Little Endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def read_images(paths: list[str]) -> list[Dataset]:
    """The images to reference, without their pixels."""
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
