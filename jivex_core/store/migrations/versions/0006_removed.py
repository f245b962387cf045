"""Local removal: where each object came from, and what is kept of removed ones.

``instance.origin_ae`` names the remote AE an object can be fetched again
from. Objects stored before this revision get their calling AE: the best
guess there is (the lifetime policy and reload still require it to be in the
remote AE table). ``removed_instance`` holds one reference per object removed
locally.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance") as batch:
        batch.add_column(
            sa.Column(
                "origin_ae",
                sa.String(16),
                nullable=False,
                server_default=sa.text("''"),
            )
        )
    op.execute("UPDATE instance SET origin_ae = calling_ae")
    op.create_table(
        "removed_instance",
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
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("removed_instance")
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("origin_ae")
