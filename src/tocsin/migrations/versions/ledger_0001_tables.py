"""ledger tables

Revision ID: ledger_0001
Revises:
Create Date: 2026-12-01 19:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'ledger_0001'
down_revision = None
branch_labels = ('ledger',)
depends_on = 'core_0001'


def upgrade() -> None:
    op.create_table(
        'ledger_entries',
        sa.Column('index', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=False, nullable=False),
        sa.Column('event_id', sa.String(length=32), nullable=False),
        sa.Column('commitment', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('index', name=op.f('pk_ledger_entries')),
        sa.UniqueConstraint('event_id', name=op.f('uq_ledger_entries_event_id')),
    )
    op.create_table(
        'ledger_checkpoints',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('cosigned_by', sa.String(length=400), nullable=False),
        sa.Column('quorum_met', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_checkpoints')),
    )
    op.create_index(op.f('ix_ledger_checkpoints_size'), 'ledger_checkpoints', ['size'])
    op.create_table(
        'ledger_witness_progress',
        sa.Column('witness', sa.String(length=120), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('last_error', sa.String(length=400), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('witness', name=op.f('pk_ledger_witness_progress')),
    )


def downgrade() -> None:
    op.drop_table('ledger_witness_progress')
    op.drop_index(op.f('ix_ledger_checkpoints_size'), table_name='ledger_checkpoints')
    op.drop_table('ledger_checkpoints')
    op.drop_table('ledger_entries')
