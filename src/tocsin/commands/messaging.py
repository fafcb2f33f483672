"""Messenger commands: purge what is past its retention."""

from __future__ import annotations

import argparse

from tocsin.commands.core import runtime


def register(sub: argparse._SubParsersAction) -> None:
    messaging = sub.add_parser("messaging", help="the secure messenger").add_subparsers(
        dest="messaging_cmd", metavar="ACTION")
    p = messaging.add_parser("purge", help="delete now the messages past their "
                             "conversation's retention (not under legal hold) and the media "
                             "only they used (the server also does it periodically)")
    p.set_defaults(func=cmd_purge)


def cmd_purge(_args: argparse.Namespace) -> int:
    from tocsin.messaging.service import get_service

    rt = runtime()
    try:
        report = get_service(rt).purge_expired()
    finally:
        rt.stop()
    print(f"{report}.")
    return 0
