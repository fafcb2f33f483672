"""Ledger and witness commands: checkpoint, verify, prove, erase; run a witness."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tocsin.commands.core import runtime
from tocsin.core.errors import BadInput


def register(sub: argparse._SubParsersAction) -> None:
    ledger = sub.add_parser("ledger", help="the tamper-evident history").add_subparsers(
        dest="ledger_cmd", metavar="ACTION")
    p = ledger.add_parser("checkpoint", help="seal pending events, print the signed checkpoint")
    p.set_defaults(func=cmd_checkpoint)
    p = ledger.add_parser("verify", help="re-check the whole log; non-zero exit names the fault")
    p.set_defaults(func=cmd_verify)
    p = ledger.add_parser("prove", help="print an inclusion proof bundle for one event")
    p.add_argument("event_id")
    p.add_argument("--open", action="store_true",
                   help="include the salt and the record (reveals the event)")
    p.add_argument("--out", type=Path, help="write the bundle to this file")
    p.set_defaults(func=cmd_prove)
    p = ledger.add_parser("vkey", help="print the log's public verifier key")
    p.set_defaults(func=cmd_vkey)
    p = ledger.add_parser("erase", help="erase events' content and salt (GDPR, retention)")
    p.add_argument("event_ids", nargs="+")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_erase)

    witness = sub.add_parser("witness", help="an independent witness that cosigns checkpoints"
                             ).add_subparsers(dest="witness_cmd", metavar="ACTION")
    p = witness.add_parser("serve", help="serve c2sp tlog-witness POST /add-checkpoint")
    _witness_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7380)
    p.add_argument("--log-vkey", action="append", default=[],
                   help="trust this log verifier key (repeatable)")
    p.set_defaults(func=cmd_witness_serve)
    p = witness.add_parser("add-log", help="trust a log's verifier key")
    _witness_args(p)
    p.add_argument("vkey")
    p.set_defaults(func=cmd_witness_add_log)
    p = witness.add_parser("vkey", help="print the witness's public key (for a tlog-policy)")
    _witness_args(p)
    p.set_defaults(func=cmd_witness_vkey)


def _ledger():
    from tocsin.ledger.service import get_service

    return get_service(runtime())


def cmd_checkpoint(_args: argparse.Namespace) -> int:
    svc = _ledger()
    sealed = svc.seal()
    cp = svc.checkpoint()
    if cp is None:
        cp = svc.latest_checkpoint()
        if cp is None:
            raise BadInput("the log is held by a running server and has no checkpoint yet",
                           code="ledger.no_checkpoint")
        print("(the running server holds the log: its latest checkpoint)", file=sys.stderr)
    else:
        print(f"sealed {sealed} events; checkpoint at size {cp.size}"
              + (f", cosigned by {', '.join(cp.cosigned_by)}" if cp.cosigned_by else "")
              + ("" if cp.quorum_met else ", witness quorum NOT met"), file=sys.stderr)
    sys.stdout.write(cp.note)
    return 0


def cmd_verify(_args: argparse.Namespace) -> int:
    from tocsin.ledger.audit import AuditFailure, audit

    svc = _ledger()
    try:
        report = audit(svc)
    except AuditFailure as exc:
        print(f"FAIL: {exc}")
        return 1
    print(report.summary())
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    bundle = _ledger().proof_bundle(None, args.event_id, opening=args.open)
    text = json.dumps(bundle, indent=2) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote the proof of leaf {bundle['index']} to {args.out}; check it with "
              f"python -m tocsin.engines.ledger.verify {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_vkey(_args: argparse.Namespace) -> int:
    print(_ledger().vkey)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    n = _ledger().erase(args.event_ids, args.reason)
    print(f"erased {n} of {len(args.event_ids)} events (their leaves stay and still verify)")
    return 0


# ------------------------------------------------------------------ witness


def _witness_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=None,
                   help="the witness's own state and key (default: DATA_DIR/witness)")
    p.add_argument("--name", default="tocsin.local/witness",
                   help="the witness key name, used when its key is first generated")


def _witness_state(args: argparse.Namespace):
    from tocsin.core import secrets
    from tocsin.core.config import get_settings
    from tocsin.engines.ledger import WitnessState, generate_witness_key

    directory = args.dir or get_settings().data_dir / "witness"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        skey = secrets.load_or_create_text(directory, "witness.skey",
                                           lambda: generate_witness_key(args.name)[0])
        return WitnessState(directory / "state.sqlite3", skey)
    except ValueError as exc:
        raise BadInput(f"witness: {exc}", code="witness.bad_key") from None


def _add_logs(state, vkeys: list[str]) -> None:
    for vkey in vkeys:
        try:
            origin = state.add_log(vkey)
        except ValueError as exc:
            raise BadInput(f"not a log verifier key: {exc}", code="witness.bad_log_key") from None
        print(f"trusting log {origin}", flush=True)


def cmd_witness_serve(args: argparse.Namespace) -> int:
    from tocsin.engines.ledger.witness_server import serve

    state = _witness_state(args)
    _add_logs(state, args.log_vkey)
    try:
        serve(args.host, args.port, state.path, Path(state.path).parent / "witness.skey",
              verbose=False)
    except OSError as exc:
        raise BadInput(f"cannot listen on {args.host}:{args.port}: {exc.strerror}",
                       code="witness.bind") from None
    return 0


def cmd_witness_add_log(args: argparse.Namespace) -> int:
    _add_logs(_witness_state(args), [args.vkey])
    return 0


def cmd_witness_vkey(args: argparse.Namespace) -> int:
    print(_witness_state(args).vkey)
    return 0
