"""Platform commands: serve, demo, db, users, units."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from tocsin.core.errors import BadInput


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP server")
    p.add_argument("--host", help="bind address (default from TOCSIN_HOST)")
    p.add_argument("--port", type=int, help="port (default from TOCSIN_PORT)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="load the demo force and data, then serve")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--size", choices=["small", "full"], default="full",
                   help="full: a national force (4,300 units, 60,000 officers)")
    p.add_argument("--no-serve", action="store_true", help="load the data and exit")
    p.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_cmd",
                                                                      metavar="ACTION")
    p = db.add_parser("upgrade", help="apply all migrations")
    p.set_defaults(func=cmd_db_upgrade)

    users = sub.add_parser("users", help="user accounts").add_subparsers(dest="users_cmd",
                                                                          metavar="ACTION")
    p = users.add_parser("create", help="create a user")
    p.add_argument("username")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--unit", required=True, help="unit code")
    p.add_argument("--role", action="append", required=True, dest="roles",
                   help="role (repeat for several)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of prompting")
    p.set_defaults(func=cmd_users_create)
    p = users.add_parser("list", help="list users")
    p.add_argument("--unit", help="only this unit and below")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_users_list)
    p = users.add_parser("update", help="move a user, change her roles, (de)activate her")
    p.add_argument("username")
    p.add_argument("--unit", help="the unit code she moves to")
    p.add_argument("--role", action="append", dest="roles",
                   help="her roles from now on (repeat for several)")
    p.add_argument("--disable", action="store_const", const=False, dest="active")
    p.add_argument("--enable", action="store_const", const=True, dest="active")
    p.set_defaults(func=cmd_users_update)
    p = users.add_parser("revoke-sessions", help="log a user out of every device")
    p.add_argument("username")
    p.set_defaults(func=cmd_users_revoke)

    units = sub.add_parser("units", help="the unit tree").add_subparsers(dest="units_cmd",
                                                                          metavar="ACTION")
    p = units.add_parser("import", help="import a CSV of code,name,kind,parent_code")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_units_import)


def runtime():
    """A runtime with the schema brought up to date."""
    from tocsin.core import migrate
    from tocsin.core.runtime import Runtime

    rt = Runtime()
    migrate.upgrade(rt.db.engine)
    return rt


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tocsin.app import create_app

    rt = runtime()
    host = args.host or rt.settings.host
    port = args.port or rt.settings.port
    print(f"Tocsin listening on http://{host}:{port}/", flush=True)
    uvicorn.run(create_app(runtime=rt), host=host, port=port, log_level="warning",
                ws_per_message_deflate=rt.settings.ws_deflate)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tocsin.core import demo

    rt = runtime()
    logins = demo.populate(rt, seed=args.seed, size=args.size)
    rt.stop()
    if args.no_serve:
        return 0
    host = args.host or rt.settings.host  # environment, then the config file
    port = args.port or rt.settings.port
    print(f"\nTocsin demo: open http://{host}:{port}/")
    print(f"Demo logins (password for all: {demo.DEMO_PASSWORD}):")
    for username, role in logins:
        print(f"  {username:<16} {role}")
    print(flush=True)
    args.host, args.port = host, port
    return cmd_serve(args)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    rt = runtime()
    print(f"database schema is up to date ({rt.db.engine.url.render_as_string(hide_password=True)})")
    rt.stop()
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise BadInput("the two passwords differ", code="user.password_mismatch")
    from pydantic import ValidationError

    from tocsin.core.identity.schemas import UserIn

    roles = [r.replace("-", "_") for r in args.roles]
    try:
        UserIn(username=args.username, display_name=args.name, unit_code=args.unit,
               roles=roles, password=password)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadInput(problems, code="invalid_input") from None
    rt = runtime()
    user = rt.identity.create_user(username=args.username, display_name=args.name,
                                   unit_code=args.unit, roles=roles, password=password)
    print(f"created user {user.username} (id {user.id}) in unit {args.unit}")
    rt.stop()
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from tocsin.core.identity.models import Unit, User

    rt = runtime()
    with rt.db.read() as s:
        q = select(User, Unit).join(Unit, Unit.id == User.unit_id).order_by(User.id)
        if args.unit:
            q = q.where(Unit.path.like(rt.identity.unit_by_code(s, args.unit).path + "%"))
        rows = s.execute(q.limit(args.limit)).all()
    for user, unit in rows:
        state = "" if user.active else " (disabled)"
        print(f"{user.id:>7}  {user.username:<24} {unit.code:<14} {','.join(user.roles)}{state}")
    rt.stop()
    return 0


def cmd_users_update(args: argparse.Namespace) -> int:
    roles = [r.replace("-", "_") for r in args.roles] if args.roles else None
    if roles is not None:
        from tocsin.core.identity.models import Role

        unknown = sorted(set(roles) - {r.value for r in Role})
        if unknown:
            raise BadInput(f"unknown role(s): {', '.join(unknown)}", code="user.bad_role")
    rt = runtime()
    principal = rt.identity.principal_for(args.username)
    user = rt.identity.update_user(None, principal.user_id, unit_code=args.unit, roles=roles,
                                   active=args.active)
    with rt.db.read() as s:
        unit = rt.identity.get_user(s, user.id).unit.code
    state = "" if user.active else " (disabled)"
    print(f"{user.username}: unit {unit}, roles {','.join(user.roles)}{state}")
    rt.stop()
    return 0


def cmd_users_revoke(args: argparse.Namespace) -> int:
    rt = runtime()
    principal = rt.identity.principal_for(args.username)
    n = rt.identity.revoke_all(None, principal.user_id)
    print(f"revoked {n} session(s) of {args.username}")
    rt.stop()
    return 0


def cmd_units_import(args: argparse.Namespace) -> int:
    rt = runtime()
    n = rt.identity.import_units_csv(args.file)
    print(f"imported {n} unit(s) from {args.file}")
    rt.stop()
    return 0
