"""Schema migrations (Alembic), run from code: ``tocsin db upgrade`` and at start-up.

Each domain module keeps its own migration branch (``branch_labels``) that
depends on ``core``; ``upgrade`` brings every branch to its head, so modules
add migrations without contending for a single linear history.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Engine

from tocsin.core.database import Base

# Every module whose tables live in ``Base.metadata``; a domain module adds its models here.
MODEL_MODULES = [
    "tocsin.core.events",
    "tocsin.core.identity.models",
    "tocsin.safety.models",
    "tocsin.cases.models",
    "tocsin.dispatch.models",
    "tocsin.messaging.models",
    "tocsin.operations.models",
    "tocsin.ledger.models",
]
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def target_metadata() -> MetaData:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


def _config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    with engine.begin() as conn:
        command.upgrade(_config(conn), "heads")


def revision(engine: Engine, message: str, branch: str | None = None,
             head: str = "heads") -> None:
    """Autogenerate a migration (developer tool)."""
    with engine.begin() as conn:
        kwargs = {"autogenerate": True, "message": message}
        if branch:
            kwargs.update(branch_label=branch, head="base", depends_on=None)
        else:
            kwargs["head"] = head
        command.revision(_config(conn), **kwargs)


def is_current(engine: Engine) -> bool:
    with engine.connect() as conn:
        script = ScriptDirectory.from_config(_config(conn))
        current = MigrationContext.configure(conn).get_current_heads()
        # a module branch ``depends_on`` core: core's head is applied without being "current"
        applied = {r.revision for r in script.iterate_revisions(current, "base")}
    return set(script.get_heads()) <= applied
