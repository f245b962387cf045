"""Tables of the index database (SQLAlchemy Core).

The index holds what the query tables 11-13 of the conformance statement
need, plus where each object's file is. Files stay the truth: the index can
be rebuilt from them. Column names are the DICOM keywords of the attribute
they hold; ``*_norm`` columns hold the folded form (upper case, plain
width, composed: :func:`jivex_core.charsets.fold`) person names match on;
``<Sequence>_<Attribute>`` columns hold an attribute of a sequence's first
item, for matching in SQL. Change the schema only through a new Alembic
revision in ``migrations/versions``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

_CODE: dict[str, Any] = dict.fromkeys(
    ("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning")
)

#: What ``instance.sequences`` keeps of each return-only sequence of tables 12
#: and 13: the sub-attributes the tables name, a nested dict for a nested
#: sequence. Nothing else of the items is kept: the column holds only what a
#: query can return.
STORED_SEQUENCES: dict[str, dict[str, Any]] = {
    "ReferencedSeriesSequence": {
        "SeriesInstanceUID": None,
        "ReferencedImageSequence": dict.fromkeys(
            ("ReferencedSOPClassUID", "ReferencedSOPInstanceUID")
        ),
    },
    "ReferencedRequestSequence": {
        "StudyInstanceUID": None,
        "AccessionNumber": None,
        "RequestedProcedureID": None,
        "RequestedProcedureCodeSequence": _CODE,
    },
    "ConceptNameCodeSequence": _CODE,
}


def _added(name: str, length: int) -> sa.Column:
    # Added by a later revision: rows that existed then hold ''.
    return sa.Column(
        name, sa.String(length), nullable=False, server_default=sa.text("''")
    )


patient = sa.Table(
    "patient",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    # PatientID + Issuer, or name + birth date when the object has no ID.
    sa.Column("patient_key", sa.String(256), nullable=False, unique=True),
    sa.Column("PatientID", sa.String(64), nullable=False, index=True),
    sa.Column("IssuerOfPatientID", sa.String(64), nullable=False),
    sa.Column("PatientName", sa.String(324), nullable=False),
    sa.Column("PatientName_norm", sa.String(324), nullable=False, index=True),
    sa.Column("PatientBirthDate", sa.String(8), nullable=False),
    sa.Column("PatientBirthTime", sa.String(16), nullable=False),
    sa.Column("PatientSex", sa.String(16), nullable=False),
    sa.Column("OtherPatientIDs", sa.String(1024), nullable=False),
    sa.Column("OtherPatientNames", sa.String(1024), nullable=False),
    sa.Column("SpecificCharacterSet", sa.String(256), nullable=False),
)

study = sa.Table(
    "study",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "patient_pk",
        sa.Integer,
        sa.ForeignKey("patient.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("StudyInstanceUID", sa.String(64), nullable=False, unique=True),
    sa.Column("StudyDate", sa.String(8), nullable=False, index=True),
    sa.Column("StudyTime", sa.String(16), nullable=False),
    sa.Column("AccessionNumber", sa.String(64), nullable=False, index=True),
    sa.Column("StudyID", sa.String(16), nullable=False),
    sa.Column("ReferringPhysicianName", sa.String(324), nullable=False),
    sa.Column("ReferringPhysicianName_norm", sa.String(324), nullable=False),
    sa.Column("StudyDescription", sa.String(1024), nullable=False),
    sa.Column("SpecificCharacterSet", sa.String(256), nullable=False),
    sa.Column("last_received", sa.DateTime, nullable=False),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "study_pk",
        sa.Integer,
        sa.ForeignKey("study.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("SeriesInstanceUID", sa.String(64), nullable=False, unique=True),
    sa.Column("Modality", sa.String(16), nullable=False, index=True),
    sa.Column("SeriesNumber", sa.Integer, nullable=True),
    sa.Column("SeriesDescription", sa.String(1024), nullable=False),
    sa.Column("BodyPartExamined", sa.String(16), nullable=False),
    sa.Column("PerformedProcedureStepStartDate", sa.String(8), nullable=False),
    sa.Column("PerformedProcedureStepStartTime", sa.String(16), nullable=False),
    sa.Column("RequestedProcedureID", sa.String(16), nullable=False),
    sa.Column("ScheduledProcedureStepID", sa.String(16), nullable=False),
)

instance = sa.Table(
    "instance",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "series_pk",
        sa.Integer,
        sa.ForeignKey("series.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("SOPInstanceUID", sa.String(64), nullable=False, unique=True),
    sa.Column("SOPClassUID", sa.String(64), nullable=False, index=True),
    sa.Column("InstanceNumber", sa.Integer, nullable=True),
    sa.Column("Rows", sa.Integer, nullable=True),
    sa.Column("Columns", sa.Integer, nullable=True),
    sa.Column("BitsAllocated", sa.Integer, nullable=True),
    sa.Column("NumberOfFrames", sa.Integer, nullable=True),
    sa.Column("ContentDate", sa.String(8), nullable=False),
    sa.Column("ContentTime", sa.String(16), nullable=False),
    # Relative to the data folder, with forward slashes.
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("TransferSyntaxUID", sa.String(64), nullable=False),
    sa.Column("calling_ae", sa.String(16), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    # The data set ended early; a complete copy of it replaces this one.
    sa.Column("incomplete", sa.Boolean, nullable=False, server_default=sa.false()),
    # Tables 12 and 13 (presentation states, key object documents), since
    # revision 0003.
    _added("ContentDescription", 1024),
    _added("PresentationCreationDate", 8),
    _added("PresentationCreationTime", 16),
    _added("ContentCreatorName", 324),
    _added("ContentCreatorName_norm", 324),
    _added("ObservationDateTime", 26),
    _added("ConceptNameCodeSequence_CodeValue", 64),
    _added("ConceptNameCodeSequence_CodingSchemeDesignator", 64),
    _added("ConceptNameCodeSequence_CodeMeaning", 1024),
    # JSON: {keyword: [item, ...]} of STORED_SEQUENCES, '' when none.
    sa.Column("sequences", sa.Text, nullable=False, server_default=sa.text("''")),
    # The remote AE (of the remote AE table) the object came from, '' when
    # none is known: where a removed object can be fetched again (0006).
    _added("origin_ae", 16),
)

#: What is kept of each object removed locally (``jivex delete``, the
#: lifetime policy): enough to list it in the browser and to fetch it again
#: from where it came from. A row goes away when its object is stored again.
#: ``path`` names the object's file until the file is gone: rows with a path
#: are the removals a crash interrupted (see jivex_core.store.removal).
removed_instance = sa.Table(
    "removed_instance",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("SOPInstanceUID", sa.String(64), nullable=False, unique=True),
    sa.Column("SOPClassUID", sa.String(64), nullable=False),
    sa.Column("InstanceNumber", sa.Integer, nullable=True),
    sa.Column("SeriesInstanceUID", sa.String(64), nullable=False, index=True),
    sa.Column("Modality", sa.String(16), nullable=False),
    sa.Column("SeriesNumber", sa.Integer, nullable=True),
    sa.Column("SeriesDescription", sa.String(1024), nullable=False),
    sa.Column("StudyInstanceUID", sa.String(64), nullable=False, index=True),
    sa.Column("StudyDate", sa.String(8), nullable=False),
    sa.Column("StudyTime", sa.String(16), nullable=False),
    sa.Column("AccessionNumber", sa.String(64), nullable=False),
    sa.Column("StudyID", sa.String(16), nullable=False),
    sa.Column("StudyDescription", sa.String(1024), nullable=False),
    sa.Column("ReferringPhysicianName", sa.String(324), nullable=False),
    sa.Column("PatientID", sa.String(64), nullable=False, index=True),
    sa.Column("IssuerOfPatientID", sa.String(64), nullable=False),
    sa.Column("PatientName", sa.String(324), nullable=False),
    sa.Column("PatientBirthDate", sa.String(8), nullable=False),
    sa.Column("PatientSex", sa.String(16), nullable=False),
    sa.Column("origin_ae", sa.String(16), nullable=False),
    sa.Column("calling_ae", sa.String(16), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("removed_at", sa.DateTime, nullable=False, index=True),
    # delete (an operator) or lifetime (the policy)
    sa.Column("reason", sa.String(16), nullable=False),
    # Relative to the data folder while the file still exists, then ''.
    sa.Column("path", sa.String(1024), nullable=False),
)

#: The job queue: every send, forward and retrieve the core runs. A job
#: survives a restart; its items say which objects are done, so a resumed
#: job sends only what has not been confirmed.
job = sa.Table(
    "job",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    # send, forward, move
    sa.Column("kind", sa.String(16), nullable=False),
    # queued, running, done, failed, cancelled
    sa.Column("state", sa.String(16), nullable=False, index=True),
    # The AE the objects go to (send, forward) or come from (move).
    sa.Column("remote_ae", sa.String(16), nullable=False),
    # What the job was asked for (UIDs, level, keys), as JSON.
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("completed", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("warning", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
)

job_item = sa.Table(
    "job_item",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "job_pk",
        sa.Integer,
        sa.ForeignKey("job.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("SOPInstanceUID", sa.String(64), nullable=False),
    # pending, done (stored, warnings included), failed
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=False),
)
