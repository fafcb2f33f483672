"""Migrations build the whole schema from an empty database, matching the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tocsin.core import migrate
from tocsin.core.database import Database


def test_upgrade_from_empty_matches_models(database_url):
    db = Database(database_url)
    try:
        assert not migrate.is_current(db.engine)
        migrate.upgrade(db.engine)
        assert migrate.is_current(db.engine)
        migrate.upgrade(db.engine)  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), migrate.target_metadata())
        assert diff == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"units", "users", "device_sessions", "events", "shares"} <= tables
    finally:
        db.dispose()
