"""Auditor routes under /api/v1/ledger: checkpoint, inclusion and consistency proofs."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from tocsin.core.errors import NotFound
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.ledger.service import get_service

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])


@router.get("/checkpoint", response_class=PlainTextResponse)
def checkpoint(p: PrincipalDep, rt: RuntimeDep) -> PlainTextResponse:
    """The latest signed checkpoint (c2sp tlog-checkpoint note with cosignatures)."""
    svc = get_service(rt)
    svc.require_auditor(p)
    latest = svc.latest_checkpoint()
    if latest is None:
        raise NotFound("no checkpoint has been signed yet", code="ledger.no_checkpoint")
    return PlainTextResponse(latest.note, media_type="text/plain; charset=utf-8")


@router.get("/keys")
def keys(p: PrincipalDep, rt: RuntimeDep) -> dict:
    """The log's verifier key and the witness policy, for offline verification."""
    svc = get_service(rt)
    svc.require_auditor(p)
    return {"origin": svc.origin, "log_vkey": svc.vkey, "quorum": svc.policy.quorum,
            "witnesses": svc.witness_status()}


@router.get("/proof/{event_id}")
async def proof(event_id: str, p: PrincipalDep, rt: RuntimeDep,
                open: Annotated[bool, Query(description="include the salt and record")] = False
                ) -> dict:
    """An inclusion proof bundle for ``python -m tocsin.engines.ledger.verify``."""
    if not event_id.isalnum() or len(event_id) > 32:
        raise NotFound("no such event in the ledger", code="ledger.unknown_event")
    return await asyncio.to_thread(get_service(rt).proof_bundle, p, event_id, opening=open)


@router.get("/consistency")
def consistency(p: PrincipalDep, rt: RuntimeDep, old: Annotated[int, Query(ge=0)],
                new: Annotated[int | None, Query(ge=0)] = None) -> dict:
    """RFC 9162 consistency proof between two tree sizes (default new: the current size)."""
    return get_service(rt).consistency(p, old, new)
