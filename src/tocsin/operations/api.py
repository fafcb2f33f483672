"""Operations routes under /api/v1/operations and the operation websocket."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse

from tocsin.core.database import utcnow
from tocsin.core.errors import BadInput, TocsinError, TooManyRequests, Unavailable
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.operations import schemas as sc
from tocsin.operations.positions import Subscriber, get_hub
from tocsin.operations.service import MAX_PHOTO_BYTES, get_service

router = APIRouter(prefix="/api/v1/operations", tags=["operations"])
PHOTO_PREFIX = "/api/v1/operations/photos/"
AUTH_TIMEOUT = 10
MAX_WS_ITEMS = 5000
CLOSE_TIMEOUT = 2
STORE_TIMEOUT = 10  # seconds a position POST waits for its rows to be written


def _svc(rt):
    return get_service(rt)


@router.get("")
def list_operations(p: PrincipalDep, rt: RuntimeDep) -> list[dict]:
    return _svc(rt).list_operations(p)


@router.post("", status_code=201)
def create_operation(body: sc.OperationIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).create_operation(p, body)


@router.post("/photos/{op_id}", status_code=201)
async def upload_photo(op_id: int, request: Request, p: PrincipalDep, rt: RuntimeDep) -> dict:
    """The raw image as the body (image/jpeg, image/png or image/webp)."""
    body = await request.body()
    if len(body) > MAX_PHOTO_BYTES:
        raise BadInput("photo over 10 MB", code="photo.too_large")
    return await asyncio.to_thread(_svc(rt).store_photo, p, op_id, body)


@router.get("/{op_id}")
def get_operation(op_id: int, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).get_operation(p, op_id)


@router.patch("/{op_id}")
def update_operation(op_id: int, body: sc.OperationPatch, p: PrincipalDep, rt: RuntimeDep
                     ) -> dict:
    return _svc(rt).update_operation(p, op_id, body)


@router.post("/{op_id}/participants", status_code=201)
def add_participant(op_id: int, body: sc.ParticipantIn, p: PrincipalDep, rt: RuntimeDep
                    ) -> dict:
    return _svc(rt).add_participant(p, op_id, body.unit_code)


@router.post("/{op_id}/staff", status_code=201)
def add_staff(op_id: int, body: sc.StaffIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).add_staff(p, op_id, body.user_id, body.function)


@router.post("/{op_id}/phases", status_code=201)
def add_phase(op_id: int, body: sc.PhaseIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).add_phase(p, op_id, body)


@router.post("/{op_id}/sectors", status_code=201)
def create_sector(op_id: int, body: sc.SectorIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).create_sector(p, op_id, body)


@router.delete("/{op_id}/sectors/{sector_id}", status_code=204)
def retire_sector(op_id: int, sector_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    _svc(rt).retire_sector(p, op_id, sector_id)
    return Response(status_code=204)


@router.post("/{op_id}/points", status_code=201)
def create_point(op_id: int, body: sc.PointIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).create_point(p, op_id, body)


@router.delete("/{op_id}/points/{point_id}", status_code=204)
def retire_point(op_id: int, point_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    _svc(rt).retire_point(p, op_id, point_id)
    return Response(status_code=204)


@router.post("/{op_id}/units", status_code=201)
def create_unit(op_id: int, body: sc.OpUnitIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).create_unit(p, op_id, body)


@router.put("/{op_id}/units/{unit_id}/sector")
def assign_unit(op_id: int, unit_id: int, body: sc.AssignIn, p: PrincipalDep, rt: RuntimeDep
                ) -> dict:
    return _svc(rt).assign_unit(p, op_id, unit_id, body.sector_id, body.reassign)


@router.put("/{op_id}/units/{unit_id}/status")
def unit_status(op_id: int, unit_id: int, body: sc.UnitStatusIn, p: PrincipalDep,
                rt: RuntimeDep) -> dict:
    return _svc(rt).set_unit_status(p, op_id, unit_id, body.status)


@router.get("/{op_id}/journal")
def journal(op_id: int, p: PrincipalDep, rt: RuntimeDep,
            kind: Annotated[list[str] | None, Query()] = None, sector_id: int | None = None,
            op_unit_id: int | None = None, since: dt.datetime | None = None,
            until: dt.datetime | None = None, limit: int = Query(500, ge=1, le=5000)
            ) -> list[dict]:
    return _svc(rt).journal(p, op_id, kinds=kind, sector_id=sector_id, op_unit_id=op_unit_id,
                            since=since, until=until, limit=limit)


@router.post("/{op_id}/journal", status_code=201)
def add_entry(op_id: int, body: sc.EntryIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).add_entry(p, op_id, body)


@router.post("/{op_id}/decisions", status_code=201)
def decide(op_id: int, body: sc.DecisionIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).decide(p, op_id, body)


@router.get("/{op_id}/decisions/{entry_id}/verify")
def verify_decision(op_id: int, entry_id: int, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).verify_decision(p, op_id, entry_id)


@router.get("/{op_id}/orders")
def orders(op_id: int, p: PrincipalDep, rt: RuntimeDep, overdue: bool = False) -> list[dict]:
    return _svc(rt).orders(p, op_id, overdue_only=overdue)


@router.post("/{op_id}/orders", status_code=201)
def create_order(op_id: int, body: sc.OrderIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).create_order(p, op_id, body)


@router.post("/{op_id}/orders/{order_id}/{action}")
def advance_order(op_id: int, order_id: int, action: str, p: PrincipalDep, rt: RuntimeDep
                  ) -> dict:
    to = {"acknowledge": "acknowledged", "complete": "completed", "cancel": "cancelled"}.get(
        action)
    if to is None:
        raise BadInput("action is acknowledge, complete or cancel", code="order.bad_action")
    return _svc(rt).advance_order(p, op_id, order_id, to)


@router.get("/{op_id}/photos/{sha}")
def photo(op_id: int, sha: str, p: PrincipalDep, rt: RuntimeDep) -> FileResponse:
    if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        raise BadInput("bad photo id", code="photo.bad_id")
    path, mime = _svc(rt).photo(p, op_id, sha)
    return FileResponse(path, media_type=mime,
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})


@router.post("/{op_id}/alerts", status_code=201)
def publish_alert(op_id: int, body: sc.AlertIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).publish_alert(p, op_id, body)


@router.get("/{op_id}/alerts")
def alerts(op_id: int, p: PrincipalDep, rt: RuntimeDep) -> list[dict]:
    return _svc(rt).alerts(p, op_id)


@router.get("/{op_id}/alerts/{alert_id}/cap")
def alert_cap(op_id: int, alert_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    return Response(_svc(rt).alert_cap(p, op_id, alert_id),
                    media_type="application/cap+xml")


@router.post("/{op_id}/positions")
def post_positions(op_id: int, body: sc.PositionsIn, p: PrincipalDep, rt: RuntimeDep) -> dict:
    rights = _svc(rt).check(p, op_id)
    hub = get_hub(rt)
    result, mark = hub.accept(body.items, source="api", client=f"user:{p.session_id}",
                              principal=p, operation_id=op_id,
                              manage_ops=frozenset([op_id]) if rights["manage"] else
                              frozenset())
    stored = hub.wait_stored(mark, STORE_TIMEOUT)  # the answer says they are stored
    if not stored:
        raise Unavailable("positions could not be stored " + (
            "in time" if stored is None else "(database unreachable)") + "; send them again",
            code="positions.not_stored")
    if body.items and not result["accepted"]:
        reasons = {r["reason"] for r in result["rejected"]}
        if reasons == {"rate_limited"}:
            raise TooManyRequests("too many positions for these units; slow down",
                                  retry_after=1, code="positions.rate_limited")
        raise BadInput("no position accepted", code="positions.rejected",
                       details=result["rejected"][:100])
    return result


@router.get("/{op_id}/positions/latest")
def latest_positions(op_id: int, p: PrincipalDep, rt: RuntimeDep) -> list[dict]:
    _svc(rt).check(p, op_id)
    return [{"op_unit_id": r[0], "lat": r[1], "lon": r[2],
             "at": dt.datetime.fromtimestamp(r[3] / 1000, dt.timezone.utc).isoformat(),
             "heading": r[4], "speed": r[5]} for r in get_hub(rt).snapshot(op_id)]


@router.get("/{op_id}/replay")
def replay(op_id: int, p: PrincipalDep, rt: RuntimeDep, at: dt.datetime | None = None) -> dict:
    at = at or utcnow()
    if at.tzinfo is None:
        raise BadInput("give the time with its offset (e.g. Z)", code="replay.naive_time")
    return _svc(rt).replay(p, op_id, at, pending=get_hub(rt).pending_for(op_id))


@router.get("/{op_id}/report.html")
def report_html(op_id: int, p: PrincipalDep, rt: RuntimeDep) -> HTMLResponse:
    from tocsin.operations import report

    html = report.render_html(report.collect(rt, p, op_id))
    return HTMLResponse(html, headers={
        "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        "Content-Disposition": f'inline; filename="operation-{op_id}.html"'})


@router.get("/{op_id}/report.pdf")
def report_pdf(op_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    from tocsin.operations import report

    return Response(report.render_pdf(report.collect(rt, p, op_id)),
                    media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="operation-{op_id}.pdf"'})


# The operation websocket ------------------------------------------------------------------
@router.websocket("/live")
async def live(ws: WebSocket) -> None:
    """``{"type": "auth", "access_token", "operation_id", "paced"?, "format"?}`` first;
    then the server sends ``ready`` (with the latest positions), ``positions`` frames and
    ``event`` frames (journal, orders, sectors...). With ``"format": "binary"`` the
    ``positions`` frames are binary messages (``positions.encode_binary``; what the
    browser asks for), JSON text otherwise; ``"positions": false`` (a gateway feeding
    positions) gets no positions frames. A ``positions`` frame has the latest
    position of each unit that moved since the previous one: one per tick while the
    client keeps up, fewer and fuller when it lags (intermediate fixes are skipped,
    never reordered). A client that authenticated with ``"paced": true`` sends
    ``{"type": "seen"}`` when it has applied a ``positions`` frame, and never has more
    than two unconfirmed. The client may send its own ``position``/``positions``; each gets
    an ``ack`` with the rejected ones and why, once the accepted ones are stored."""
    rt = ws.app.state.runtime
    hub = get_hub(rt)
    await ws.accept()
    try:
        first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
        if not isinstance(first, dict) or not isinstance(first.get("access_token"), str):
            raise TocsinError("first message must be {type: auth, access_token, operation_id}",
                              code="token_missing")
        op_id = first.get("operation_id")
        if not isinstance(op_id, int) or isinstance(op_id, bool):
            raise TocsinError("operation_id must be an integer", code="invalid_input")
        principal = await asyncio.to_thread(rt.identity.authenticate, first["access_token"])
        rights = await asyncio.to_thread(_svc(rt).check, principal, op_id)
        await asyncio.to_thread(hub.snapshot, op_id)  # loads the stored latest positions
    except (TocsinError, TimeoutError, ValueError, WebSocketDisconnect) as exc:
        code = getattr(exc, "code", "token_missing")
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", "code": code})
            await ws.close(code=4401 if "token" in code or "session" in code else 4403)
        return
    sub = Subscriber(principal, op_id, rights["manage"], paced=first.get("paced") is True,
                     binary=first.get("format") == "binary",
                     positions=first.get("positions") is not False)
    snapshot = hub.subscribe(sub)  # the same rows, or newer ones that came meanwhile
    manage_ops = frozenset([op_id]) if rights["manage"] else frozenset()
    await ws.send_text(json.dumps({"type": "ready", "operation_id": op_id,
                                   "manage": rights["manage"], "positions": snapshot}))

    acks: list[asyncio.Task] = []

    async def receive() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            try:
                data = json.loads(msg.get("text") or msg.get("bytes") or b"")
            except ValueError:
                await ws.send_text(json.dumps({"type": "error", "code": "malformed"}))
                continue
            if not isinstance(data, dict):
                await ws.send_text(json.dumps({"type": "error", "code": "malformed"}))
                continue
            if data.get("type") == "seen":
                hub.confirm(sub)
                continue
            if data.get("type") == "position":
                items = [data]
            elif data.get("type") == "positions" and isinstance(data.get("items"), list):
                items = data["items"][:MAX_WS_ITEMS]
            else:
                continue  # pings and unknown frames are ignored
            result, mark = hub.accept(items, source="ws", client=f"ws:{id(sub)}",
                                      principal=principal, manage_ops=manage_ops,
                                      operation_id=op_id,
                                      rate_key=f"user:{principal.session_id}")
            # acknowledged once stored, without holding up the next batch
            acks.append(asyncio.create_task(ack(data.get("id"), result, mark)))
            if len(acks) > 64:
                acks[:] = [t for t in acks if not t.done()]

    async def ack(msg_id, result: dict, mark: tuple[int, int]) -> None:
        if not await hub.stored(mark):  # dropped: the database was unreachable too long
            result = {"accepted": 0, "rejected": result["rejected"],
                      "not_stored": result["accepted"]}
        await ws.send_text(json.dumps({"type": "ack", "id": msg_id, **result}))

    async def send(frame: str | bytes) -> None:
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_text(frame))

    tasks = [asyncio.create_task(hub.pump(sub, send)),
             asyncio.create_task(receive()), asyncio.create_task(sub.closed.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(sub)
        for t in tasks + acks:
            t.cancel()
        # a dead socket takes nothing: do not wait on it for ever
        if sub.close_code != 1000:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.send_json({"type": "closed", "code": sub.close_code}),
                                       CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=sub.close_code), CLOSE_TIMEOUT)
