"""safety identity records: address, id number, birth (maiden) and usage names

Revision ID: safety_0002
Revises: safety_0001
"""
import sqlalchemy as sa
from alembic import op

revision = 'safety_0002'
down_revision = 'safety_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('safety_identity_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('id_number', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('birth_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('usage_name', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('safety_identity_records', schema=None) as batch_op:
        batch_op.drop_column('usage_name')
        batch_op.drop_column('birth_name')
        batch_op.drop_column('id_number')
        batch_op.drop_column('address')
