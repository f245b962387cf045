"""What the objects we create share: identity, copied attributes, encoding.

Grayscale Softcopy Presentation States (:mod:`jivex_core.imaging.gsps`) and
Key Object Selection Documents (:mod:`jivex_core.imaging.ko`) both belong to
the study of the images they reference, take its patient and study
attributes from those images (tables 49 and 50 of the conformance
statement: "Source IMG"), and name a character set only when their text
needs one (table 65).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from io import BytesIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import DSfloat, PersonName

from jivex_core.imaging.presentation import ImageRef
from jivex_core.imaging.render import number_of_frames

logger = logging.getLogger(__name__)

#: General Equipment's Manufacturer (0008,0070) of every object we create.
MANUFACTURER = "JiveX-Py"

#: Patient module (table 49) and General Study module (table 50): copied
#: from the first referenced image, empty when it has none (type 2).
PATIENT_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)

#: Value representations whose values are text in the character set.
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


def sources_by_uid(sources: Iterable[Dataset]) -> dict[str, Dataset]:
    """The source data sets by SOP Instance UID."""
    out: dict[str, Dataset] = {}
    for ds in sources:
        uid = str(ds.get("SOPInstanceUID", "") or "")
        if not uid:
            raise ValueError("a source data set has no SOP Instance UID")
        out[uid] = ds
    return out


def resolve_refs(
    refs: Sequence[ImageRef], by_uid: dict[str, Dataset], what: str
) -> list[ImageRef]:
    """The references with their SOP Class and series taken from the sources.

    A reference may leave its SOP Class UID or series empty (a script knows
    only the instance); one that names another class than its source's is
    refused, as are frame numbers the image does not have.

    Raises
    ------
    ValueError
        The image is not among the sources, its class differs, or a frame
        number is out of range; the message names the image.
    """
    out = []
    for ref in refs:
        source = by_uid.get(ref.SOPInstanceUID)
        if source is None:
            raise ValueError(
                f"{what} '{ref.SOPInstanceUID}' is not among the source objects"
            )
        sop_class = str(source.get("SOPClassUID", "") or "")
        if ref.SOPClassUID and ref.SOPClassUID != sop_class:
            raise ValueError(
                f"{what} '{ref.SOPInstanceUID}' is given as SOP Class "
                f"'{ref.SOPClassUID}' but is '{sop_class}'"
            )
        frames = check_frames(ref, source, what)
        out.append(
            ImageRef(
                sop_class,
                ref.SOPInstanceUID,
                str(source.get("SeriesInstanceUID", "") or ""),
                frames,
            )
        )
    return out


def check_frames(ref: ImageRef, source: Dataset, what: str) -> tuple[int, ...]:
    """The frame numbers of *ref*, checked against the image's frames.

    A single-frame image is referenced without frame numbers (PS3.3
    C.7.6.16: Referenced Frame Number only for multi-frame images); frame 1
    of it is the image itself.
    """
    if not ref.frames:
        return ()
    count = number_of_frames(source)
    multi = "NumberOfFrames" in source and count >= 1
    bad = [f for f in ref.frames if not 1 <= f <= count]
    if bad:
        raise ValueError(
            f"{what} '{ref.SOPInstanceUID}' has {count} frame(s); frame "
            f"{bad[0]} does not exist"
        )
    if not multi:
        return ()
    return tuple(dict.fromkeys(ref.frames))


def same_study(images: Sequence[ImageRef], by_uid: dict[str, Dataset]) -> Dataset:
    """The first image's data set, once every image is of its patient.

    Raises
    ------
    ValueError
        When the images belong to different patients; the message names
        both Patient IDs.
    """
    first = by_uid[images[0].SOPInstanceUID]
    patient = str(first.get("PatientID", "") or "")
    for ref in images[1:]:
        other = str(by_uid[ref.SOPInstanceUID].get("PatientID", "") or "")
        if other != patient:
            raise ValueError(
                f"the images belong to different patients ('{patient}' and "
                f"'{other}'); one object documents one patient's images"
            )
    return first


def _plain(value: object) -> object:
    """A copied value without the source's encoding baggage."""
    if isinstance(value, PersonName):
        return str(value)
    return value


def copy_patient_study(ds: Dataset, source: Dataset) -> None:
    """Copy the Patient and General Study modules' attributes (tables 49, 50).

    Text is copied decoded, so that the new object names its own character
    set (:func:`set_character_set`).
    """
    ds.StudyInstanceUID = source.StudyInstanceUID
    for keyword in PATIENT_STUDY_TYPE2:
        value = source.get(keyword)
        setattr(ds, keyword, "" if value is None else _plain(value))
    if source.get("StudyDescription"):
        ds.StudyDescription = str(source.StudyDescription)


#: Maximum lengths in characters of the text VRs we write (PS3.5 6.2).
_MAX_LENGTH = {"LO": 64, "SH": 16, "ST": 1024, "PN": 64}


def check_text(value: str, what: str, vr: str) -> None:
    """Refuse text that its Value Representation cannot hold (PS3.5 6.2).

    LO, SH and PN hold one value: no backslash; ST may. PN's limit is per
    component group (alphabetic, ideographic, phonetic).

    Raises
    ------
    ValueError
        Naming *what*, the VR and its limit.
    """
    if vr in ("LO", "SH", "PN") and "\\" in value:
        raise ValueError(f"{what} must not contain a backslash ({vr})")
    if any(ord(c) < 32 for c in value if c not in "\r\n\t\f\x1b") or (
        vr in ("LO", "SH", "PN") and any(c in value for c in "\r\n")
    ):
        raise ValueError(f"{what} contains control characters {vr} does not allow")
    limit = _MAX_LENGTH[vr]
    parts = value.split("=") if vr == "PN" else [value]
    longest = max(len(part) for part in parts)
    if longest > limit:
        raise ValueError(
            f"{what} is {longest} characters long; {vr} holds at most {limit}"
        )


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A Code Sequence item (PS3.3 Table 8.8-1)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def stamp(now: dt.datetime | None) -> tuple[str, str]:
    """DICOM date and time of *now* (the local time when None)."""
    moment = now or dt.datetime.now()
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")


def ds_value(value: float) -> DSfloat:
    """A Decimal String of at most 16 characters for *value*."""
    return DSfloat(value, auto_format=True)


def _texts(ds: Dataset) -> Iterable[str]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _texts(item)
        elif elem.VR in _TEXT_VRS and elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            for value in values:
                yield str(value)


def set_character_set(ds: Dataset) -> None:
    """Name the character set the text of *ds* needs (PS3.3 C.12.1.1.2).

    Plain ASCII needs none; what Latin-1 can carry is written as
    ``ISO_IR 100`` (table 65 of the statement); anything else as UTF-8,
    ``ISO_IR 192``.
    """
    text = "".join(_texts(ds))
    if text.isascii():
        if "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet
        return
    try:
        text.encode("latin-1")
        ds.SpecificCharacterSet = "ISO_IR 100"
    except UnicodeEncodeError:
        ds.SpecificCharacterSet = "ISO_IR 192"


def image_references(refs: Sequence[ImageRef]) -> DicomSequence:
    """A Referenced Image Sequence (SOP class, instance, frames)."""
    out = DicomSequence()
    for ref in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = ref.SOPClassUID
        item.ReferencedSOPInstanceUID = ref.SOPInstanceUID
        if ref.frames:
            item.ReferencedFrameNumber = list(ref.frames)
        out.append(item)
    return out


def by_series(refs: Sequence[ImageRef]) -> dict[str, list[ImageRef]]:
    """The references grouped by series, in the order they first appear."""
    groups: dict[str, list[ImageRef]] = {}
    for ref in refs:
        groups.setdefault(ref.SeriesInstanceUID, []).append(ref)
    return groups


def encode(ds: Dataset) -> bytes:
    """The data set in Explicit VR Little Endian, without File Meta.

    The store writes the File Meta Information (with our Implementation
    Class UID) when it ingests these bytes, as for a received object.
    """
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


#: The transfer syntax of :func:`encode`'s bytes.
ENCODED_SYNTAX = ExplicitVRLittleEndian


def read_int_list(item: Dataset, keyword: str, where: str) -> list[int]:
    """The integer values of an attribute; ValueError naming it when not."""
    try:
        value = item[keyword].value
        if value is None or value == "":
            return []
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            values = [value]
        else:
            values = list(value)
        return [int(float(v)) for v in values]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}: {keyword} is not a list of integers") from exc


def read_frames(item: Dataset, where: str) -> tuple[int, ...]:
    """Referenced Frame Number (0008,1160) of a reference item."""
    if "ReferencedFrameNumber" not in item:
        return ()
    return tuple(read_int_list(item, "ReferencedFrameNumber", where))
