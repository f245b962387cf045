"""Saving presentation states and key object documents through a real core.

A `jivex server` on an archive of real images (dcm4che's MR series,
pydicom's CT, fo-dicom's enhanced MR knee, a colour test image) is asked
over its link (jivex_core.link_client, as the command line does) to save
GSPS and KO objects. What it stores is checked the way other systems see
it: dciodvfy, `jivex ls`, DCMTK's findscu with the image-level keys of
tables 12 and 13, and DCMTK's storescp receiving a `jivex send`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from jivex_core import protocol
from jivex_core.imaging.gsps import complete_state, presentation_from_dataset
from jivex_core.imaging.ko import find_title, key_objects_from_dataset
from jivex_core.imaging.presentation import (
    Annotation,
    Graphic,
    GraphicLayer,
    ImageRef,
    KeyObjectSelection,
    PresentationState,
    TextLabel,
    selection_to_dict,
    state_to_dict,
)
from jivex_core.link_client import LinkClient, LinkError
from jivex_core.uids import IMPLEMENTATION_CLASS_UID, new_uid
from tests import iod
from tests.helpers import SHARED_DATA, JivexServer, StoreSCP, findscu, run_jivex

pytestmark = pytest.mark.interop

D = SHARED_DATA
MR = [D / "dcm4che" / f"MR0{n}.dcm" for n in (1, 2, 3)]
KNEE = D / "fo-dicom" / "MOVEKNEE.dcm"
COLOUR = D / "orthanc-tests" / "ColorTestMalaterre.dcm"
CT = Path(get_testdata_file("CT_small.dcm"))
MR_STUDY = "1.113654.3.13.1026"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
KO = "1.2.840.10008.5.1.4.1.1.88.59"


class RecordingClient(LinkClient):
    """A link client that keeps the events it reads past."""

    def __init__(self, info: protocol.LinkInfo) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(info)

    def _read(self) -> dict[str, Any]:
        message = super()._read()
        if message.get("type") == "event":
            self.events.append(message)
        return message

    def stored(self, uid: str, timeout: float = 10.0) -> dict[str, Any]:
        """The instance_stored event of *uid* (pinging until it comes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if (
                    event["name"] == "instance_stored"
                    and event["data"]["SOPInstanceUID"] == uid
                ):
                    return event["data"]
            self.call("ping")
            time.sleep(0.05)
        raise AssertionError(f"no instance_stored event for {uid}")


def headers(*paths: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def ref(ds: pydicom.Dataset, *frames: int) -> ImageRef:
    return ImageRef(str(ds.SOPClassUID), str(ds.SOPInstanceUID), "", frames)


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    root = tmp_path_factory.mktemp("documents")
    data = root / "data"
    imported = run_jivex(
        "import", "--data", str(data), *map(str, [*MR, KNEE, COLOUR, CT])
    )
    assert imported.returncode == 0, imported.stderr
    scp = StoreSCP(root, "ARCHIVE").start()
    server = JivexServer(data, extra=["--remote", f"ARCHIVE@127.0.0.1:{scp.port}"])
    server.start()
    info = protocol.LinkInfo.read(data)
    client = RecordingClient(info)
    try:
        yield SimpleNamespace(
            data=data, server=server, client=client, scp=scp, root=root
        )
    finally:
        client.close()
        server.stop()
        scp.stop()


def measured_state(mr: list[pydicom.Dataset], description: str) -> PresentationState:
    return PresentationState(
        images=[ref(mr[0]), ref(mr[1])],
        label="MEASURE",
        description=description,
        creator="Smith^Anna",
        layers=[GraphicLayer("LINES", 1, 65535, (255, 255, 0))],
        annotations=[
            Annotation(
                "LINES",
                (ref(mr[0]),),
                [Graphic.rectangle((10.0, 10.0), (40.0, 30.0))],
                [TextLabel("12.5 mm", (40.0, 30.0))],
            )
        ],
    )


def test_a_saved_presentation_state_is_stored_indexed_and_announced(core):
    mr = headers(*MR)
    state = measured_state(mr, "Lesion measured")
    result = core.client.call("save_presentation", state=state_to_dict(state))
    assert result["StudyInstanceUID"] == MR_STUDY
    path = Path(result["path"])
    stored = pydicom.dcmread(path)
    assert stored.SOPInstanceUID == result["SOPInstanceUID"]
    assert stored.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert stored.file_meta.SourceApplicationEntityTitle == "JIVEX"
    errors, warnings = iod.dciodvfy(path)
    assert not errors and all("Laterality" in w for w in warnings), (errors, warnings)
    assert presentation_from_dataset(stored) == complete_state(state, mr)
    rows = {r["SOPInstanceUID"]: r for r in core.server.ls("instance")}
    row = rows[result["SOPInstanceUID"]]
    assert (row["Modality"], row["SeriesNumber"], row["InstanceNumber"]) == (
        "PR",
        9001,
        1,
    )
    assert Path(row["path"]) == path
    event = core.client.stored(result["SOPInstanceUID"])
    assert (event["Modality"], event["SOPClassUID"]) == ("PR", GSPS)
    assert event["calling_ae"] == "JIVEX"


def test_later_saves_go_to_our_series_of_the_study(core):
    mr = headers(*MR)
    first = core.client.call(
        "save_presentation", state=state_to_dict(measured_state(mr, "First"))
    )
    second = core.client.call(
        "save_presentation", state=state_to_dict(measured_state(mr, "Second"))
    )
    assert first["SeriesInstanceUID"] == second["SeriesInstanceUID"]
    numbers = [pydicom.dcmread(r["path"]).InstanceNumber for r in (first, second)]
    assert numbers[1] == numbers[0] + 1
    selection = KeyObjectSelection([ref(mr[2])], find_title("113004"), "teaching")
    ko = core.client.call("save_key_objects", selection=selection_to_dict(selection))
    document = pydicom.dcmread(ko["path"])
    assert (document.Modality, document.SeriesNumber) == ("KO", 9101)
    assert document.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ko["SeriesInstanceUID"] != first["SeriesInstanceUID"]


def test_study_documents_lists_states_and_key_objects(core):
    mr = headers(*MR)
    state = core.client.call(
        "save_presentation", state=state_to_dict(measured_state(mr, "Listed"))
    )
    selection = KeyObjectSelection(
        [ref(mr[0]), ref(mr[1])],
        find_title("For Conference"),
        "Tumour board",
        [ImageRef(GSPS, state["SOPInstanceUID"]), None],
        "Smith^Anna",
    )
    ko = core.client.call("save_key_objects", selection=selection_to_dict(selection))
    rows = {
        r["SOPInstanceUID"]: r
        for r in core.client.call("study_documents", StudyInstanceUID=MR_STUDY)
    }
    listed = rows[state["SOPInstanceUID"]]
    assert (listed["SOPClassUID"], listed["Modality"]) == (GSPS, "PR")
    assert (listed["label"], listed["description"], listed["creator"]) == (
        "MEASURE",
        "Listed",
        "Smith^Anna",
    )
    assert listed["references"] == [
        str(mr[0].SOPInstanceUID),
        str(mr[1].SOPInstanceUID),
    ]
    assert len(listed["date"]) == 8 and listed["time"]
    assert listed["path"] == state["path"]
    document = rows[ko["SOPInstanceUID"]]
    assert (document["SOPClassUID"], document["Modality"]) == (KO, "KO")
    assert document["label"] == "For Conference"
    assert document["title"] == ["113005", "DCM", "For Conference"]
    assert document["description"] == "Tumour board"
    assert document["references"] == [
        str(mr[0].SOPInstanceUID),
        str(mr[1].SOPInstanceUID),
    ]
    # The viewer opens one by reading its file.
    opened = key_objects_from_dataset(pydicom.dcmread(document["path"]))
    assert opened.presentation_states[0].SOPInstanceUID == state["SOPInstanceUID"]
    assert core.client.call("study_documents", StudyInstanceUID="1.2.3") == []


def test_findscu_finds_them_with_the_keys_of_tables_12_and_13(core, tmp_path):
    mr = headers(*MR)
    state = core.client.call(
        "save_presentation",
        state=state_to_dict(measured_state(mr, "Found by findscu")),
    )
    stored = pydicom.dcmread(state["path"])
    found, log = findscu(
        core.server,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={MR_STUDY}",
        f"SeriesInstanceUID={state['SeriesInstanceUID']}",
        "ContentDescription=Found by*",
        "ContentCreatorName=smith^anna",
        f"PresentationCreationDate={stored.PresentationCreationDate}",
        "SOPInstanceUID",
    )
    assert [str(ds.SOPInstanceUID) for ds in found] == [state["SOPInstanceUID"]], log
    selection = KeyObjectSelection([ref(mr[1])], find_title("113008"))
    ko = core.client.call("save_key_objects", selection=selection_to_dict(selection))
    document = pydicom.dcmread(ko["path"])
    found, log = findscu(
        core.server,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={MR_STUDY}",
        f"SeriesInstanceUID={ko['SeriesInstanceUID']}",
        "ConceptNameCodeSequence[0].CodeValue=113008",
        f"ContentDate={document.ContentDate}",
        "SOPInstanceUID",
    )
    assert [str(ds.SOPInstanceUID) for ds in found] == [ko["SOPInstanceUID"]], log


def test_a_saved_object_is_sent_like_any_other(core):
    mr = headers(*MR)
    state = core.client.call(
        "save_presentation", state=state_to_dict(measured_state(mr, "Sent"))
    )
    selection = KeyObjectSelection([ref(mr[0])], find_title("113002"), "Sent too")
    ko = core.client.call("save_key_objects", selection=selection_to_dict(selection))
    run = run_jivex(
        "send",
        "--data",
        str(core.data),
        "--to",
        "ARCHIVE",
        state["SOPInstanceUID"],
        ko["SOPInstanceUID"],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    received = core.scp.datasets()
    assert received[state["SOPInstanceUID"]].ContentDescription == "Sent"
    assert received[state["SOPInstanceUID"]].SOPClassUID == GSPS
    document = key_objects_from_dataset(received[ko["SOPInstanceUID"]])
    assert (document.text, document.images[0].SOPInstanceUID) == (
        "Sent too",
        str(mr[0].SOPInstanceUID),
    )


def test_bad_requests_name_the_problem_and_the_core_keeps_serving(core):
    mr, colour = headers(*MR), headers(COLOUR)[0]
    state = state_to_dict(measured_state(mr, "x"))
    unknown = json.loads(json.dumps(state))
    unknown["images"][1]["SOPInstanceUID"] = "1.2.3.999"
    cases = [
        (
            "save_presentation",
            {"state": unknown},
            "image '1.2.3.999' is not in the archive",
        ),
        (
            "save_presentation",
            {
                "state": state_to_dict(
                    PresentationState(images=[ref(colour)], label="C")
                )
            },
            "MONOCHROME1 or MONOCHROME2 images only",
        ),
        ("save_presentation", {}, "parameter 'state' must be a presentation state"),
        (
            "save_presentation",
            {"state": {"images": [{}]}},
            "malformed presentation state",
        ),
        (
            "save_presentation",
            {"state": {**state, "layers": []}},
            "layer 'LINES', which the state does not define",
        ),
        (
            "save_key_objects",
            {"selection": {"images": [], "title": ["1", "99X", "Made up"]}},
            "not one of CID 7010",
        ),
        (
            "save_key_objects",
            {
                "selection": {
                    "images": [
                        {
                            "SOPClassUID": "",
                            "SOPInstanceUID": str(mr[0].SOPInstanceUID),
                            "frames": [2],
                        }
                    ]
                }
            },
            "frame 2 does not exist",
        ),
        ("study_documents", {"StudyInstanceUID": 7}, "must be a Study Instance UID"),
    ]
    for method, params, named in cases:
        with pytest.raises(LinkError, match=named):
            core.client.call(method, **params)
    assert core.client.call("ping")["pid"] == core.server.proc.pid
    assert core.server.proc.poll() is None


# -- jivex key-images --------------------------------------------------------


def test_key_images_from_a_script(core):
    mr, knee = headers(*MR), headers(KNEE)[0]
    run = run_jivex(
        "key-images",
        "--data",
        str(core.data),
        "--title",
        "For Teaching",
        "--text",
        "Für die Lehre",
        "--creator",
        "Müller^Jürgen",
        "--json",
        str(mr[0].SOPInstanceUID),
        str(mr[2].SOPInstanceUID),
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    document = pydicom.dcmread(result["path"])
    assert document.SpecificCharacterSet == "ISO_IR 100"
    selection = key_objects_from_dataset(document)
    assert [r.SOPInstanceUID for r in selection.images] == [
        str(mr[0].SOPInstanceUID),
        str(mr[2].SOPInstanceUID),
    ]
    assert (selection.title.value, selection.text, selection.creator) == (
        "113004",
        "Für die Lehre",
        "Müller^Jürgen",
    )
    errors, _warnings = iod.dciodvfy(Path(result["path"]))
    assert not errors, errors
    run = run_jivex(
        "key-images", "--data", str(core.data), f"{knee.SOPInstanceUID}:2,5"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("key object selection ")
    path = run.stdout.strip().rsplit(": ", 1)[1]
    selection = key_objects_from_dataset(pydicom.dcmread(path))
    assert selection.images[0].frames == (2, 5)
    assert selection.title.meaning == "Of Interest"  # the default


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("abc", "'abc' is not a SOP Instance UID"),
        ("1.2.3.999", "image '1.2.3.999' is not in the archive"),
        ("1.113654.5.15.1504:x", "frames are numbers from 1"),
        ("1.113654.5.15.1504:0", "frames are numbers from 1"),
        ("1.113654.5.15.1504:3", "has 1 frame(s); frame 3 does not exist"),
    ],
)
def test_key_images_with_bad_images(core, argument, message):
    run = run_jivex("key-images", "--data", str(core.data), argument)
    assert run.returncode == 2
    assert message in run.stderr
    assert run.stdout == ""


def test_key_images_with_a_title_outside_cid_7010(core):
    run = run_jivex(
        "key-images", "--data", str(core.data), "--title", "Nice", "1.113654.5.15.1504"
    )
    assert run.returncode == 2
    assert (
        "'Nice' is not a Key Object Selection Document title of CID 7010" in run.stderr
    )


def test_key_images_without_a_running_core(tmp_path):
    data = tmp_path / "data"
    assert run_jivex("import", "--data", str(data), str(MR[0])).returncode == 0
    run = run_jivex("key-images", "--data", str(data), "1.113654.5.15.1504")
    assert run.returncode == 0, run.stderr
    rows = [
        r
        for r in json.loads(
            run_jivex("ls", "--json", "--level", "instance", "--data", str(data)).stdout
        )
        if r["Modality"] == "KO"
    ]
    assert len(rows) == 1 and rows[0]["SeriesNumber"] == 9101


def test_key_objects_that_are_not_images(tmp_path):
    """A PDF and an ECG flagged from the command line: COMPOSITE and WAVEFORM
    items (TID 2010), listed by study_documents like any document; another
    system's document without content is listed with the reason."""
    from jivex_core.documents import Documents
    from jivex_core.store import Store

    pdf_path = D / "orthanc-tests" / "sample-pdf.dcm"
    ecg_path = Path(get_testdata_file("waveform_ecg.dcm"))
    data = tmp_path / "data"
    imported = run_jivex("import", "--data", str(data), str(pdf_path), str(ecg_path))
    assert imported.returncode == 0, imported.stderr
    pdf, ecg = headers(pdf_path, ecg_path)
    made, paths = {}, {}
    for ds, value_type in ((pdf, "COMPOSITE"), (ecg, "WAVEFORM")):
        run = run_jivex(
            "key-images", "--data", str(data), "--json", str(ds.SOPInstanceUID)
        )
        assert run.returncode == 0, run.stderr
        path = Path(json.loads(run.stdout)["path"])
        document = pydicom.dcmread(path)
        kinds = [item.ValueType for item in document.ContentSequence]
        assert kinds == [value_type]
        # Errors only: the ECG's Patient's Name (copied, as tables 49-50 say)
        # is in the retired form dciodvfy warns about.
        errors, _warnings = iod.dciodvfy(path)
        assert not errors, errors
        made[str(ds.StudyInstanceUID)] = str(document.SOPInstanceUID)
        paths[value_type] = path
    # Another system's KO of the PDF's study, without its Content Sequence.
    broken = pydicom.dcmread(paths["COMPOSITE"])
    del broken.ContentSequence
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = new_uid()
    broken.save_as(tmp_path / "broken.dcm")
    imported = run_jivex("import", "--data", str(data), str(tmp_path / "broken.dcm"))
    assert imported.returncode == 0, imported.stderr
    store = Store(data, fsync=False)
    try:
        documents = Documents(store, "JIVEX")
        rows = {
            row["SOPInstanceUID"]: row
            for study in made
            for row in documents.study_documents(study)
        }
    finally:
        store.close()
    assert rows[made[str(pdf.StudyInstanceUID)]]["references"] == [
        str(pdf.SOPInstanceUID)
    ]
    assert rows[made[str(ecg.StudyInstanceUID)]]["references"] == [
        str(ecg.SOPInstanceUID)
    ]
    assert "error" not in rows[made[str(pdf.StudyInstanceUID)]]
    bad = rows[str(broken.SOPInstanceUID)]
    assert bad["references"] == []
    assert "has no Content Sequence" in bad["error"]
