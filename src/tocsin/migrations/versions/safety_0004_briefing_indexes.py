"""safety briefing indexes: operations on (place_id, started_at, id, unit_id, force_used,
injury), places on (cell, lat, lon); each replaces the index it extends

A briefing finds the places near a point (grid cells, then the bounding box and the
distance on lat/lon), counts the operations at them (total, those the reader may see,
with force, with injury) and lists the most recent. With every column those queries
touch in the index, they read the index alone, not the rows, but for the few shown.

Revision ID: safety_0004
Revises: safety_0003
"""
from alembic import op

revision = 'safety_0004'
down_revision = 'safety_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('safety_operations', schema=None) as batch_op:
        batch_op.create_index('ix_safety_operations_briefing',
                              ['place_id', 'started_at', 'id', 'unit_id', 'force_used',
                               'injury'], unique=False)
        batch_op.drop_index('ix_safety_operations_place_started')
    with op.batch_alter_table('safety_places', schema=None) as batch_op:
        batch_op.create_index('ix_safety_places_cell_point', ['cell', 'lat', 'lon'],
                              unique=False)
        batch_op.drop_index('ix_safety_places_cell')


def downgrade() -> None:
    with op.batch_alter_table('safety_places', schema=None) as batch_op:
        batch_op.create_index('ix_safety_places_cell', ['cell'], unique=False)
        batch_op.drop_index('ix_safety_places_cell_point')
    with op.batch_alter_table('safety_operations', schema=None) as batch_op:
        batch_op.create_index('ix_safety_operations_place_started', ['place_id', 'started_at'],
                              unique=False)
        batch_op.drop_index('ix_safety_operations_briefing')
