"""Key Object Selection Documents: the reader's key images as DICOM.

:func:`build_key_object_selection` writes a
:class:`~jivex_core.imaging.presentation.KeyObjectSelection` as the document
of section 7.1.1.2 of the conformance statement (tables 48, 50, 53 and
63-65; PS3.3 A.35.4), its content built from TID 2010 "Key Object
Selection" (PS3.16): a root CONTAINER titled with a code of CID 7010, the
template named in Content Template Sequence, an optional TEXT "Key Object
Description", and one content item per key object: IMAGE for an image,
WAVEFORM for a waveform (an ECG), COMPOSITE for any other object (a PDF, a
structured report), as TID 2010 rows 3-5 and the value types of PS3.3
C.17.3.2.1 require (:func:`reference_value_type` decides from the SOP
class). The objects are flagged by those items; the Current Requested
Procedure Evidence Sequence only lists every instance the document refers
to, for retrieval. :func:`key_objects_from_dataset` therefore reads the
IMAGE, WAVEFORM and COMPOSITE items, so that a document read back shows
exactly the flagged objects (and frames).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from jivex_core.imaging.created import (
    MANUFACTURER,
    check_text,
    code_item,
    copy_patient_study,
    read_frames,
    resolve_refs,
    same_study,
    set_character_set,
    sources_by_uid,
    stamp,
)
from jivex_core.imaging.presentation import (
    KEY_OBJECT_TITLES,
    Code,
    ImageRef,
    KeyObjectSelection,
)
from jivex_core.uids import new_uid

logger = logging.getLogger(__name__)

#: Key Object Selection Document Storage (PS3.4 B.5).
KO_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.88.59")

#: Series Number of the first series of key object documents we create in a
#: study (after the presentation states' 9001).
KO_SERIES_NUMBER = 9101

#: (113012, DCM, "Key Object Description"): TID 2010's TEXT item.
KEY_OBJECT_DESCRIPTION = Code("113012", "DCM", "Key Object Description")

#: TID 1002 Observer Context items naming the person who chose the images.
_OBSERVER_TYPE = Code("121005", "DCM", "Observer Type")
_PERSON = Code("121006", "DCM", "Person")
_PERSON_OBSERVER_NAME = Code("121008", "DCM", "Person Observer Name")

#: Presentation state storage classes: "1.2.840.10008.5.1.4.1.1.11.<n>".
_PRESENTATION_STATE_ROOT = "1.2.840.10008.5.1.4.1.1.11."

#: Value types of the content items that reference objects (PS3.3
#: C.17.3.2.1), TID 2010 rows 3, 4 and 5.
IMAGE, WAVEFORM, COMPOSITE = "IMAGE", "WAVEFORM", "COMPOSITE"
REFERENCE_VALUE_TYPES = (IMAGE, WAVEFORM, COMPOSITE)

#: Storage SOP classes of image IODs (with Image Pixel data) whose names do
#: not say "Image Storage"; every class whose name does is an image too.
IMAGE_CLASSES_BY_NAME_EXCEPTION = {
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume Storage",
    "1.2.840.10008.5.1.4.1.1.30": "Parametric Map Storage",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.66.8": "Height Map Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.8": "Ophthalmic Optical Coherence Tomography "
    "B-scan Volume Analysis Storage",
    "1.2.840.10008.5.1.4.1.1.81.1": "Ophthalmic Thickness Map Storage",
    "1.2.840.10008.5.1.4.1.1.82.1": "Corneal Topography Map Storage",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose Storage",
    "1.2.840.10008.5.1.4.1.1.501.4": "DICOS 2D AIT Storage",
    "1.2.840.10008.5.1.4.1.1.501.5": "DICOS 3D AIT Storage",
    "1.2.276.0.50.1.33": "VISUS Internal Capture",
}


def reference_value_type(sop_class_uid: str, source: Dataset | None = None) -> str:
    """How a Key Object Selection Document references an object of a class.

    TID 2010 (PS3.16) flags images with IMAGE items, waveforms with
    WAVEFORM items and other composite objects with COMPOSITE items; PS3.3
    C.17.3.2.1 defines them by what the referenced object is. The decision
    is by SOP class:

    - WAVEFORM: the classes named "... Waveform Storage" (all under
      ``1.2.840.10008.5.1.4.1.1.9.``: ECGs, hemodynamic, audio, EEG...);
    - IMAGE: the classes named "... Image Storage", and the image IODs of
      :data:`IMAGE_CLASSES_BY_NAME_EXCEPTION`;
    - COMPOSITE: every other known class (Encapsulated PDF, structured
      reports, presentation states, RT plans...).

    A class pydicom does not know (a private one) is judged by *source*, its
    header: Rows and Columns make an image, a Waveform Sequence a waveform;
    else COMPOSITE.
    """
    uid = str(sop_class_uid).strip()
    if uid in IMAGE_CLASSES_BY_NAME_EXCEPTION:
        return IMAGE
    name = UID(uid).name if uid else ""
    if name and name != uid:
        if "Waveform Storage" in name:
            return WAVEFORM
        if "Image Storage" in name:
            return IMAGE
        return COMPOSITE
    if source is not None:
        if "WaveformSequence" in source:
            return WAVEFORM
        if "Rows" in source and "Columns" in source:
            return IMAGE
    return COMPOSITE


def _kind(value_type: str) -> str:
    return {IMAGE: "an image", WAVEFORM: "a waveform"}.get(
        value_type, "not an image (a composite object)"
    )


def find_title(text: str) -> Code:
    """The CID 7010 title named by its code value or its meaning.

    The meaning is compared without regard to case, so that scripts may
    write ``"for teaching"`` as well as ``113004``.

    Raises
    ------
    ValueError
        When no title of CID 7010 has that code or meaning.
    """
    wanted = text.strip().casefold()
    for code in KEY_OBJECT_TITLES:
        if wanted in (code.value, code.meaning.casefold()):
            return code
    raise ValueError(
        f"'{text}' is not a Key Object Selection Document title of CID 7010 "
        "(for example 113000 'Of Interest' or 113004 'For Teaching')"
    )


def _code(code: Code) -> Dataset:
    return code_item(code.value, code.scheme, code.meaning)


def _references_image(state: Dataset, image: ImageRef) -> bool:
    for series in state.get("ReferencedSeriesSequence") or []:
        for ref in series.get("ReferencedImageSequence") or []:
            if str(ref.get("ReferencedSOPInstanceUID", "")) == image.SOPInstanceUID:
                return True
    return False


def complete_selection(
    selection: KeyObjectSelection, sources: Sequence[Dataset]
) -> KeyObjectSelection:
    """The selection as its document will hold it, checked against *sources*.

    SOP classes and series come from the sources (a script may give only
    SOP Instance UIDs); frame numbers of single-frame images are dropped;
    *presentation_states* is padded to one entry per image, or empty when
    no image has one.

    Raises
    ------
    ValueError
        No images; an image or presentation state missing from the
        sources; a frame the image does not have; an image flagged twice;
        images of several patients; a title outside CID 7010; a presentation
        state that is not one, or does not apply to its image.
    """
    if not selection.images:
        raise ValueError("a key object selection must flag at least one image")
    if selection.title not in KEY_OBJECT_TITLES:
        raise ValueError(
            f"key object title {selection.title.value!r} "
            f"({selection.title.meaning!r}) is not one of CID 7010"
        )
    if len(selection.presentation_states) > len(selection.images):
        raise ValueError(
            f"{len(selection.presentation_states)} presentation states for "
            f"{len(selection.images)} images"
        )
    check_text(selection.creator, "the observer's name", "PN")
    by_uid = sources_by_uid(sources)
    for number, given in enumerate(selection.images):
        source = by_uid.get(given.SOPInstanceUID)
        if source is None:
            continue  # resolve_refs names it
        kind = reference_value_type(str(source.get("SOPClassUID", "") or ""), source)
        if kind == IMAGE:
            continue
        if any(frame != 1 for frame in given.frames):
            raise ValueError(
                f"'{given.SOPInstanceUID}' is {_kind(kind)}: it has no frames to flag"
            )
        states = selection.presentation_states
        if number < len(states) and states[number] is not None:
            raise ValueError(
                f"'{given.SOPInstanceUID}' is {_kind(kind)}: a presentation state "
                "applies to images only"
            )
    images = resolve_refs(selection.images, by_uid, "image")
    seen = set()
    for ref in images:
        key = (ref.SOPInstanceUID, ref.frames)
        if key in seen:
            raise ValueError(f"image '{ref.SOPInstanceUID}' is flagged twice")
        seen.add(key)
    same_study(images, by_uid)
    states: list[ImageRef | None] = []
    given = list(selection.presentation_states)
    given += [None] * (len(images) - len(given))
    for image, state in zip(images, given, strict=True):
        if state is None:
            states.append(None)
            continue
        (resolved,) = resolve_refs([state], by_uid, "presentation state")
        if not resolved.SOPClassUID.startswith(_PRESENTATION_STATE_ROOT):
            raise ValueError(
                f"'{resolved.SOPInstanceUID}' is of SOP Class "
                f"'{resolved.SOPClassUID}', not a presentation state"
            )
        if not _references_image(by_uid[resolved.SOPInstanceUID], image):
            raise ValueError(
                f"presentation state '{resolved.SOPInstanceUID}' does not apply "
                f"to image '{image.SOPInstanceUID}'"
            )
        states.append(
            ImageRef(
                resolved.SOPClassUID,
                resolved.SOPInstanceUID,
                resolved.SeriesInstanceUID,
            )
        )
    if all(s is None for s in states):
        states = []
    return KeyObjectSelection(
        images, selection.title, selection.text, states, selection.creator
    )


def _requests(images: Sequence[ImageRef], by_uid: dict[str, Dataset]) -> DicomSequence:
    """Referenced Request Sequence items from the images' requests (table 64).

    Each distinct Request Attributes Sequence item of the images becomes
    one request; images acquired without a request give none.
    """
    out = DicomSequence()
    seen = set()
    for ref in images:
        source = by_uid[ref.SOPInstanceUID]
        for request in source.get("RequestAttributesSequence") or []:
            accession = str(
                request.get("AccessionNumber") or source.get("AccessionNumber") or ""
            )
            key = (
                str(source.StudyInstanceUID),
                accession,
                str(request.get("RequestedProcedureID", "") or ""),
            )
            if key in seen:
                continue
            seen.add(key)
            item = Dataset()
            item.StudyInstanceUID = source.StudyInstanceUID
            studies = DicomSequence()
            for study in source.get("ReferencedStudySequence") or []:
                entry = Dataset()
                entry.ReferencedSOPClassUID = study.get("ReferencedSOPClassUID", "")
                entry.ReferencedSOPInstanceUID = study.get(
                    "ReferencedSOPInstanceUID", ""
                )
                studies.append(entry)
            item.ReferencedStudySequence = studies
            item.AccessionNumber = accession
            for keyword in (
                "PlacerOrderNumberImagingServiceRequest",
                "FillerOrderNumberImagingServiceRequest",
                "RequestedProcedureID",
                "RequestedProcedureDescription",
            ):
                value = request.get(keyword) or source.get(keyword) or ""
                setattr(item, keyword, str(value))
            codes = DicomSequence()
            for code in request.get("RequestedProcedureCodeSequence") or []:
                codes.append(
                    code_item(
                        str(code.get("CodeValue", "")),
                        str(code.get("CodingSchemeDesignator", "")),
                        str(code.get("CodeMeaning", "")),
                    )
                )
            item.RequestedProcedureCodeSequence = codes
            out.append(item)
    return out


def _evidence(refs: Sequence[ImageRef], by_uid: dict[str, Dataset]) -> DicomSequence:
    """Current Requested Procedure Evidence: every instance, by study/series."""
    studies: dict[str, dict[str, dict[str, str]]] = {}
    for ref in refs:
        study = str(by_uid[ref.SOPInstanceUID].StudyInstanceUID)
        series = studies.setdefault(study, {}).setdefault(ref.SeriesInstanceUID, {})
        series[ref.SOPInstanceUID] = ref.SOPClassUID
    out = DicomSequence()
    for study, series_map in studies.items():
        item = Dataset()
        item.StudyInstanceUID = study
        item.ReferencedSeriesSequence = DicomSequence()
        for series, instances in series_map.items():
            series_item = Dataset()
            series_item.SeriesInstanceUID = series
            series_item.ReferencedSOPSequence = DicomSequence()
            for uid, sop_class in instances.items():
                entry = Dataset()
                entry.ReferencedSOPClassUID = sop_class
                entry.ReferencedSOPInstanceUID = uid
                series_item.ReferencedSOPSequence.append(entry)
            item.ReferencedSeriesSequence.append(series_item)
        out.append(item)
    return out


def _content_item(relationship: str, value_type: str, concept: Code) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = DicomSequence([_code(concept)])
    return item


def _reference_item(
    image: ImageRef, state: ImageRef | None, source: Dataset
) -> Dataset:
    """The content item flagging one object: IMAGE (PS3.3 C.18.4) with its
    frames and presentation state, WAVEFORM (C.18.5) or COMPOSITE (C.18.3),
    as :func:`reference_value_type` says."""
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = reference_value_type(image.SOPClassUID, source)
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    if item.ValueType != IMAGE:
        item.ReferencedSOPSequence = DicomSequence([ref])
        return item
    if image.frames:
        ref.ReferencedFrameNumber = list(image.frames)
    if state is not None:
        presentation = Dataset()
        presentation.ReferencedSOPClassUID = state.SOPClassUID
        presentation.ReferencedSOPInstanceUID = state.SOPInstanceUID
        ref.ReferencedSOPSequence = DicomSequence([presentation])
    item.ReferencedSOPSequence = DicomSequence([ref])
    return item


def build_key_object_selection(
    selection: KeyObjectSelection,
    sources: Sequence[Dataset],
    *,
    series_uid: str | None = None,
    series_number: int = KO_SERIES_NUMBER,
    instance_number: int = 1,
    sop_instance_uid: str | None = None,
    now: dt.datetime | None = None,
    manufacturer: str = MANUFACTURER,
) -> Dataset:
    """Write *selection* as a Key Object Selection Document (TID 2010).

    Parameters
    ----------
    selection : KeyObjectSelection
        The key images, their title (CID 7010), text, creator and optional
        presentation states; see :func:`complete_selection`.
    sources : sequence of pydicom.dataset.Dataset
        The data sets (headers suffice) of the flagged images and of the
        presentation states the selection names.
    series_uid, series_number, instance_number
        Where the document goes: a new series UID when None.
    sop_instance_uid : str, optional
        A new UID under our root when None.
    now : datetime, optional
        Content Date and Time (the current time when None).
    manufacturer : str
        General Equipment's Manufacturer.

    Returns
    -------
    pydicom.dataset.Dataset
        Without File Meta: the store writes it when the object is ingested.

    Raises
    ------
    ValueError
        See :func:`complete_selection`.
    """
    full = complete_selection(selection, sources)
    by_uid = sources_by_uid(sources)
    first = by_uid[full.images[0].SOPInstanceUID]
    ds = Dataset()
    copy_patient_study(ds, first)
    # Key Object Document Series (table 63), General Equipment (53).
    ds.Modality = "KO"
    ds.SeriesInstanceUID = series_uid or new_uid()
    ds.SeriesNumber = series_number
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence()
    ds.Manufacturer = manufacturer
    # Key Object Document (table 64).
    ds.InstanceNumber = instance_number
    ds.ContentDate, ds.ContentTime = stamp(now)
    requests = _requests(full.images, by_uid)
    if requests:
        ds.ReferencedRequestSequence = requests
    states = full.presentation_states or [None] * len(full.images)
    referenced = list(full.images) + [s for s in states if s is not None]
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(referenced, by_uid)
    # SR Document Content, TID 2010 at the root.
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([_code(full.title)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = DicomSequence([template])
    content = DicomSequence()
    if full.creator:
        observer = _content_item("HAS OBS CONTEXT", "CODE", _OBSERVER_TYPE)
        observer.ConceptCodeSequence = DicomSequence([_code(_PERSON)])
        content.append(observer)
        name = _content_item("HAS OBS CONTEXT", "PNAME", _PERSON_OBSERVER_NAME)
        name.PersonName = full.creator
        content.append(name)
    if full.text:
        text = _content_item("CONTAINS", "TEXT", KEY_OBJECT_DESCRIPTION)
        text.TextValue = full.text
        content.append(text)
    for image, state in zip(full.images, states, strict=True):
        content.append(_reference_item(image, state, by_uid[image.SOPInstanceUID]))
    ds.ContentSequence = content
    # SOP Common (table 65).
    ds.SOPClassUID = KO_SOP_CLASS
    ds.SOPInstanceUID = sop_instance_uid or new_uid()
    set_character_set(ds)
    return ds


def _concept(item: Dataset) -> Code | None:
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return None
    code = seq[0]
    return Code(
        str(code.get("CodeValue", "") or ""),
        str(code.get("CodingSchemeDesignator", "") or ""),
        str(code.get("CodeMeaning", "") or ""),
    )


def _same(concept: Code | None, code: Code) -> bool:
    """Whether *concept* is *code* (value and scheme; meanings vary)."""
    return concept is not None and (concept.value, concept.scheme) == (
        code.value,
        code.scheme,
    )


def _series_of(ds: Dataset) -> dict[str, str]:
    out: dict[str, str] = {}
    for keyword in (
        "CurrentRequestedProcedureEvidenceSequence",
        "IdenticalDocumentsSequence",
    ):
        for study in ds.get(keyword) or []:
            for series in study.get("ReferencedSeriesSequence") or []:
                uid = str(series.get("SeriesInstanceUID", "") or "")
                for ref in series.get("ReferencedSOPSequence") or []:
                    out[str(ref.get("ReferencedSOPInstanceUID", ""))] = uid
    return out


def key_objects_from_dataset(ds: Dataset) -> KeyObjectSelection:
    """Read a Key Object Selection Document into the model.

    The key objects are the document's IMAGE, WAVEFORM and COMPOSITE
    content items (TID 2010 rows 3-5), in their order, as
    :attr:`KeyObjectSelection.images` (their SOP classes tell images from
    other objects); IMAGE items bring their frame numbers and the
    presentation state each names. Their series come from the evidence
    sequence. Content this model has no place for (other observer context)
    is skipped with a debug message.

    Raises
    ------
    ValueError
        When the data set is not a Key Object Selection Document, has no
        title (Concept Name Code Sequence), has no Content Sequence or no
        IMAGE, WAVEFORM or COMPOSITE item in it (TID 2010 requires at least
        one: the document would flag nothing), or such an item has no
        Referenced SOP Sequence; the message names it.
    """
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class != KO_SOP_CLASS:
        raise ValueError(
            f"SOP Class '{sop_class}' is not Key Object Selection Document Storage"
        )
    try:
        return _read(ds)
    except ValueError:
        raise
    except Exception as exc:  # pydicom cannot decode a value
        raise ValueError(f"the key object document cannot be read: {exc}") from exc


def _read(ds: Dataset) -> KeyObjectSelection:
    title = _concept(ds)
    if title is None:
        raise ValueError(
            "the key object document has no title (Concept Name Code Sequence)"
        )
    for known in KEY_OBJECT_TITLES:
        if _same(title, known):
            title = known
    series_of = _series_of(ds)
    images: list[ImageRef] = []
    states: list[ImageRef | None] = []
    texts: list[str] = []
    creator = ""
    content = ds.get("ContentSequence")
    if "ContentSequence" not in ds or content is None:
        raise ValueError(
            "the key object document has no Content Sequence: it flags no "
            "image (TID 2010 needs IMAGE, WAVEFORM or COMPOSITE items)"
        )
    for number, item in enumerate(content, 1):
        where = f"Content Sequence item {number}"
        value_type = str(item.get("ValueType", "") or "").upper()
        concept = _concept(item)
        if value_type in REFERENCE_VALUE_TYPES:
            refs = item.get("ReferencedSOPSequence")
            if not refs:
                raise ValueError(
                    f"{where}: an {value_type} item without Referenced SOP Sequence"
                )
            ref = refs[0]
            uid = str(ref.get("ReferencedSOPInstanceUID", "") or "")
            if not uid:
                raise ValueError(f"{where}: Referenced SOP Instance UID is missing")
            images.append(
                ImageRef(
                    str(ref.get("ReferencedSOPClassUID", "") or ""),
                    uid,
                    series_of.get(uid, ""),
                    read_frames(ref, where) if value_type == IMAGE else (),
                )
            )
            state = None
            nested = ref.get("ReferencedSOPSequence") if value_type == IMAGE else None
            if nested:
                state_uid = str(nested[0].get("ReferencedSOPInstanceUID", "") or "")
                state = ImageRef(
                    str(nested[0].get("ReferencedSOPClassUID", "") or ""),
                    state_uid,
                    series_of.get(state_uid, ""),
                )
            states.append(state)
        elif value_type == "TEXT" and _same(concept, KEY_OBJECT_DESCRIPTION):
            texts.append(str(item.get("TextValue", "") or ""))
        elif value_type == "PNAME" and _same(concept, _PERSON_OBSERVER_NAME):
            creator = str(item.get("PersonName", "") or "")
        else:
            logger.debug("%s: %s item not read into the selection", where, value_type)
    if not images:
        raise ValueError(
            f"the key object document's Content Sequence ({len(content)} items) "
            "has no IMAGE, WAVEFORM or COMPOSITE item: it flags nothing"
        )
    return KeyObjectSelection(
        images,
        title,
        "\n".join(texts),
        states if any(s is not None for s in states) else [],
        creator,
    )
