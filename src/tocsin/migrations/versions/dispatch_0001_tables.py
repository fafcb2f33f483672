"""dispatch tables: calls, incidents, units, crews, assignments, timeline, attachments

Revision ID: dispatch_0001
Revises:
Create Date: 2026-11-23 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'dispatch_0001'
down_revision = None
branch_labels = ('dispatch',)
depends_on = 'core_0001'


def upgrade() -> None:
    op.create_table('dispatch_incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('type_code', sa.String(length=40), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('close_reason', sa.String(length=200), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('en_route_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('on_scene_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_dispatch_incidents_created_by_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_dispatch_incidents_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_incidents'))
    )
    op.create_index('ix_dispatch_incidents_place', 'dispatch_incidents', ['lat', 'lon'], unique=False)
    op.create_index(op.f('ix_dispatch_incidents_status'), 'dispatch_incidents', ['status'], unique=False)
    op.create_index(op.f('ix_dispatch_incidents_unit_id'), 'dispatch_incidents', ['unit_id'], unique=False)
    op.create_table('dispatch_attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['dispatch_incidents.id'], name=op.f('fk_dispatch_attachments_incident_id_dispatch_incidents')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_dispatch_attachments_uploaded_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_attachments')),
    sa.UniqueConstraint('incident_id', 'sha256', name='incident_sha256')
    )
    op.create_index(op.f('ix_dispatch_attachments_incident_id'), 'dispatch_attachments', ['incident_id'], unique=False)
    op.create_table('dispatch_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('caller_number', sa.String(length=40), nullable=True),
    sa.Column('caller_lat', sa.Float(), nullable=True),
    sa.Column('caller_lon', sa.Float(), nullable=True),
    sa.Column('caller_accuracy_m', sa.Float(), nullable=True),
    sa.Column('location_source', sa.String(length=20), nullable=True),
    sa.Column('location_raw', sa.Text(), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('narrative', sa.Text(), nullable=False),
    sa.Column('call_taker_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_taker_id'], ['users.id'], name=op.f('fk_dispatch_calls_call_taker_id_users')),
    sa.ForeignKeyConstraint(['incident_id'], ['dispatch_incidents.id'], name=op.f('fk_dispatch_calls_incident_id_dispatch_incidents')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_dispatch_calls_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_calls'))
    )
    op.create_index(op.f('ix_dispatch_calls_incident_id'), 'dispatch_calls', ['incident_id'], unique=False)
    op.create_index(op.f('ix_dispatch_calls_status'), 'dispatch_calls', ['status'], unique=False)
    op.create_index(op.f('ix_dispatch_calls_unit_id'), 'dispatch_calls', ['unit_id'], unique=False)
    op.create_table('dispatch_timeline',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_dispatch_timeline_actor_id_users')),
    sa.ForeignKeyConstraint(['incident_id'], ['dispatch_incidents.id'], name=op.f('fk_dispatch_timeline_incident_id_dispatch_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_timeline'))
    )
    op.create_index(op.f('ix_dispatch_timeline_incident_id'), 'dispatch_timeline', ['incident_id'], unique=False)
    op.create_table('dispatch_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_sign', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('capabilities', sa.JSON(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('position_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['dispatch_incidents.id'], name=op.f('fk_dispatch_units_incident_id_dispatch_incidents')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_dispatch_units_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_units')),
    sa.UniqueConstraint('call_sign', name=op.f('uq_dispatch_units_call_sign'))
    )
    op.create_index(op.f('ix_dispatch_units_status'), 'dispatch_units', ['status'], unique=False)
    op.create_index(op.f('ix_dispatch_units_unit_id'), 'dispatch_units', ['unit_id'], unique=False)
    op.create_table('dispatch_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('dispatch_unit_id', sa.Integer(), nullable=True),
    sa.Column('call_sign', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('end_reason', sa.String(length=200), nullable=True),
    sa.Column('assigned_by', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('travel_time_s', sa.Float(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('route', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['assigned_by'], ['users.id'], name=op.f('fk_dispatch_assignments_assigned_by_users')),
    sa.ForeignKeyConstraint(['dispatch_unit_id'], ['dispatch_units.id'], name=op.f('fk_dispatch_assignments_dispatch_unit_id_dispatch_units'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['incident_id'], ['dispatch_incidents.id'], name=op.f('fk_dispatch_assignments_incident_id_dispatch_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_assignments'))
    )
    op.create_index(op.f('ix_dispatch_assignments_dispatch_unit_id'), 'dispatch_assignments', ['dispatch_unit_id'], unique=False)
    op.create_index(op.f('ix_dispatch_assignments_incident_id'), 'dispatch_assignments', ['incident_id'], unique=False)
    op.create_table('dispatch_crew',
    sa.Column('dispatch_unit_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dispatch_unit_id'], ['dispatch_units.id'], name=op.f('fk_dispatch_crew_dispatch_unit_id_dispatch_units'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_dispatch_crew_user_id_users')),
    sa.PrimaryKeyConstraint('dispatch_unit_id', 'user_id', name=op.f('pk_dispatch_crew'))
    )
    op.create_index(op.f('ix_dispatch_crew_user_id'), 'dispatch_crew', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_dispatch_crew_user_id'), table_name='dispatch_crew')
    op.drop_table('dispatch_crew')
    op.drop_index(op.f('ix_dispatch_assignments_incident_id'), table_name='dispatch_assignments')
    op.drop_index(op.f('ix_dispatch_assignments_dispatch_unit_id'), table_name='dispatch_assignments')
    op.drop_table('dispatch_assignments')
    op.drop_index(op.f('ix_dispatch_units_unit_id'), table_name='dispatch_units')
    op.drop_index(op.f('ix_dispatch_units_status'), table_name='dispatch_units')
    op.drop_table('dispatch_units')
    op.drop_index(op.f('ix_dispatch_timeline_incident_id'), table_name='dispatch_timeline')
    op.drop_table('dispatch_timeline')
    op.drop_index(op.f('ix_dispatch_calls_unit_id'), table_name='dispatch_calls')
    op.drop_index(op.f('ix_dispatch_calls_status'), table_name='dispatch_calls')
    op.drop_index(op.f('ix_dispatch_calls_incident_id'), table_name='dispatch_calls')
    op.drop_table('dispatch_calls')
    op.drop_index(op.f('ix_dispatch_attachments_incident_id'), table_name='dispatch_attachments')
    op.drop_table('dispatch_attachments')
    op.drop_index(op.f('ix_dispatch_incidents_unit_id'), table_name='dispatch_incidents')
    op.drop_index(op.f('ix_dispatch_incidents_status'), table_name='dispatch_incidents')
    op.drop_index('ix_dispatch_incidents_place', table_name='dispatch_incidents')
    op.drop_table('dispatch_incidents')
