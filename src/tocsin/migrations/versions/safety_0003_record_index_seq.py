"""safety identity records: index_seq, a commit-ordered sequence for the person directory

Revision ID: safety_0003
Revises: safety_0002
"""
import sqlalchemy as sa
from alembic import op

revision = 'safety_0003'
down_revision = 'safety_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('safety_counters',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_safety_counters'))
    )
    with op.batch_alter_table('safety_identity_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('index_seq', sa.BigInteger(), nullable=True))
    # records stored so far were committed: their id order is as good as any
    op.execute("UPDATE safety_identity_records SET index_seq = id")
    op.execute("INSERT INTO safety_counters (name, value) SELECT 'identity_records', "
               "COALESCE(MAX(id), 0) FROM safety_identity_records")
    with op.batch_alter_table('safety_identity_records', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f('uq_safety_identity_records_index_seq'), ['index_seq'])


def downgrade() -> None:
    with op.batch_alter_table('safety_identity_records', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_safety_identity_records_index_seq'),
                                 type_='unique')
        batch_op.drop_column('index_seq')
    op.drop_table('safety_counters')
