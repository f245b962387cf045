"""Initial index: patient, study, series and instance.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text(name: str, length: int) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "patient",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("patient_key", sa.String(256), nullable=False, unique=True),
        _text("PatientID", 64),
        _text("IssuerOfPatientID", 64),
        _text("PatientName", 324),
        _text("PatientName_norm", 324),
        _text("PatientBirthDate", 8),
        _text("PatientBirthTime", 16),
        _text("PatientSex", 16),
        _text("OtherPatientIDs", 1024),
        _text("OtherPatientNames", 1024),
        _text("SpecificCharacterSet", 256),
    )
    op.create_index("ix_patient_PatientID", "patient", ["PatientID"])
    op.create_index("ix_patient_PatientName_norm", "patient", ["PatientName_norm"])

    op.create_table(
        "study",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "patient_pk",
            sa.Integer,
            sa.ForeignKey("patient.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("StudyInstanceUID", sa.String(64), nullable=False, unique=True),
        _text("StudyDate", 8),
        _text("StudyTime", 16),
        _text("AccessionNumber", 64),
        _text("StudyID", 16),
        _text("ReferringPhysicianName", 324),
        _text("ReferringPhysicianName_norm", 324),
        _text("StudyDescription", 1024),
        _text("SpecificCharacterSet", 256),
        sa.Column("last_received", sa.DateTime, nullable=False),
    )
    op.create_index("ix_study_patient_pk", "study", ["patient_pk"])
    op.create_index("ix_study_StudyDate", "study", ["StudyDate"])
    op.create_index("ix_study_AccessionNumber", "study", ["AccessionNumber"])

    op.create_table(
        "series",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "study_pk",
            sa.Integer,
            sa.ForeignKey("study.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("SeriesInstanceUID", sa.String(64), nullable=False, unique=True),
        _text("Modality", 16),
        sa.Column("SeriesNumber", sa.Integer, nullable=True),
        _text("SeriesDescription", 1024),
        _text("BodyPartExamined", 16),
        _text("PerformedProcedureStepStartDate", 8),
        _text("PerformedProcedureStepStartTime", 16),
        _text("RequestedProcedureID", 16),
        _text("ScheduledProcedureStepID", 16),
    )
    op.create_index("ix_series_study_pk", "series", ["study_pk"])
    op.create_index("ix_series_Modality", "series", ["Modality"])

    op.create_table(
        "instance",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "series_pk",
            sa.Integer,
            sa.ForeignKey("series.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("SOPInstanceUID", sa.String(64), nullable=False, unique=True),
        _text("SOPClassUID", 64),
        sa.Column("InstanceNumber", sa.Integer, nullable=True),
        sa.Column("Rows", sa.Integer, nullable=True),
        sa.Column("Columns", sa.Integer, nullable=True),
        sa.Column("BitsAllocated", sa.Integer, nullable=True),
        sa.Column("NumberOfFrames", sa.Integer, nullable=True),
        _text("ContentDate", 8),
        _text("ContentTime", 16),
        _text("path", 1024),
        sa.Column("size", sa.Integer, nullable=False),
        _text("TransferSyntaxUID", 64),
        _text("calling_ae", 16),
        sa.Column("received_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_instance_series_pk", "instance", ["series_pk"])
    op.create_index("ix_instance_SOPClassUID", "instance", ["SOPClassUID"])


def downgrade() -> None:
    for table in ("instance", "series", "study", "patient"):
        op.drop_table(table)
