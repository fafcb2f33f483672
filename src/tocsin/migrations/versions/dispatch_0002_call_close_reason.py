"""dispatch calls: the reason a call was closed without an incident, on the call

Revision ID: dispatch_0002
Revises: dispatch_0001

Until now the reason lived only in the ``dispatch.call.closed`` event; the calls
already closed get it from there (the last close event of each, unless erased).
"""
import sqlalchemy as sa
from alembic import op

revision = 'dispatch_0002'
down_revision = 'dispatch_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dispatch_calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('close_reason', sa.String(length=200), nullable=True))

    events = sa.table('events', sa.column('seq', sa.Integer), sa.column('type', sa.String),
                      sa.column('record_kind', sa.String), sa.column('record_id', sa.String),
                      sa.column('payload', sa.JSON))
    calls = sa.table('dispatch_calls', sa.column('id', sa.Integer),
                     sa.column('status', sa.String), sa.column('close_reason', sa.String))
    conn = op.get_bind()
    reasons: dict[int, str] = {}
    for record_id, payload in conn.execute(
            sa.select(events.c.record_id, events.c.payload)
            .where(events.c.type == 'dispatch.call.closed', events.c.record_kind == 'call')
            .order_by(events.c.seq)):
        reason = payload.get('reason') if isinstance(payload, dict) else None
        if reason and record_id and record_id.isdigit():
            reasons[int(record_id)] = str(reason)[:200]
    for call_id, reason in reasons.items():
        conn.execute(sa.update(calls).where(calls.c.id == call_id, calls.c.status == 'closed')
                     .values(close_reason=reason))


def downgrade() -> None:
    with op.batch_alter_table('dispatch_calls', schema=None) as batch_op:
        batch_op.drop_column('close_reason')
