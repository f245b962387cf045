"""Recompute the person name columns names match on, with the name fold.

Revision 0001 stored names upper-cased; names now match on their folded
form (:func:`jivex_core.charsets.fold`: width and composition as well as
case), so existing rows get the new form and match like new ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from jivex_core.charsets import fold

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("patient", "PatientName"),
    ("study", "ReferringPhysicianName"),
    ("instance", "ContentCreatorName"),
)


def upgrade() -> None:
    conn = op.get_bind()
    for table, column in _COLUMNS:
        rows = conn.execute(
            sa.text(f'SELECT pk, "{column}" FROM {table} WHERE "{column}" != \'\'')
        ).all()
        updates = [
            {"pk": pk, "norm": fold(name)}
            for pk, name in rows
            if fold(name) != name.upper()
        ]
        if updates:
            conn.execute(
                sa.text(f'UPDATE {table} SET "{column}_norm" = :norm WHERE pk = :pk'),
                updates,
            )


def downgrade() -> None:
    conn = op.get_bind()
    for table, column in _COLUMNS:
        conn.execute(sa.text(f'UPDATE {table} SET "{column}_norm" = upper("{column}")'))
