"""Image-level keys of presentation states and key object documents.

Tables 12 and 13 of the statement. Objects indexed before this revision get
empty values: they keep answering, as objects without these attributes, until
the index is rebuilt from the files.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TEXT = [
    ("ContentDescription", 1024),
    ("PresentationCreationDate", 8),
    ("PresentationCreationTime", 16),
    ("ContentCreatorName", 324),
    ("ContentCreatorName_norm", 324),
    ("ObservationDateTime", 26),
    ("ConceptNameCodeSequence_CodeValue", 64),
    ("ConceptNameCodeSequence_CodingSchemeDesignator", 64),
    ("ConceptNameCodeSequence_CodeMeaning", 1024),
]


def upgrade() -> None:
    # Plain ADD COLUMN on SQLite: no copy of the table, however large.
    with op.batch_alter_table("instance") as batch:
        for name, length in _TEXT:
            batch.add_column(
                sa.Column(
                    name,
                    sa.String(length),
                    nullable=False,
                    server_default=sa.text("''"),
                )
            )
        batch.add_column(
            sa.Column(
                "sequences", sa.Text, nullable=False, server_default=sa.text("''")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("sequences")
        for name, _length in reversed(_TEXT):
            batch.drop_column(name)
