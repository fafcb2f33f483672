"""Tocsin's messenger routes (/api/v1/messaging): what the Matrix API has no word for.

Rooms listing with unread counts, resumable uploads, broadcast alerts with
acknowledgement, delivery state, retention and court export, a user directory,
and the live websocket. The Matrix client-server routes (``matrix.py``) are
mounted from here too.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import or_, select

from tocsin.core.access import Principal
from tocsin.core.errors import BadInput, TocsinError
from tocsin.core.identity.models import Unit, User
from tocsin.core.runtime import Runtime
from tocsin.messaging import matrix
from tocsin.messaging.hub import get_hub
from tocsin.messaging.schemas import (
    AlertIn,
    AlertOut,
    AlertStatusIn,
    RetentionIn,
    RoomIn,
    RoomOut,
    UploadIn,
    UploadOut,
    UserHit,
)
from tocsin.messaging.service import get_service
from tocsin.messaging.storage import CHUNK_MAX, get_media

api = APIRouter(prefix="/api/v1/messaging", tags=["messaging"])
# Upload routes take large bodies (BODY_LIMIT_OVERRIDES in tocsin.app); each route
# still enforces the configured maximum while it streams.
UPLOAD_BODY_LIMIT = 1 << 31


def _p(request: Request) -> Principal:
    return matrix.principal_of(request)


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


@api.get("/rooms", response_model=list[RoomOut])
def rooms(request: Request) -> list[dict]:
    return get_service(_rt(request)).list_rooms(_p(request))


@api.post("/rooms", response_model=RoomOut, status_code=201)
def create_room(body: RoomIn, request: Request) -> dict:
    p = _p(request)
    rt = _rt(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        ids = [svc.user_id_of(s, u) for u in body.invite]
    bound = (body.bound_kind, body.bound_id) if body.bound_kind and body.bound_id else None
    room = svc.create_room(p, kind=body.kind, name=body.name, topic=body.topic, invite=ids,
                           bound=bound, audience_codes=body.unit_codes,
                           post_roles=[r.value for r in body.post_roles]
                           if body.post_roles is not None else None,
                           retention_days=body.retention_days)
    return next(r for r in svc.list_rooms(p) if r["room_id"] == svc.room_mx(room.id))


@api.post("/units/{code}/channel", response_model=RoomOut)
def unit_channel(code: str, request: Request) -> dict:
    """Open (creating if needed) the channel of a unit the caller belongs to."""
    p = _p(request)
    rt = _rt(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        unit = rt.identity.unit_by_code(s, code)
    if not p.unit_path.startswith(unit.path):
        raise BadInput("you can only open the channel of your own unit or one above it",
                       code="messaging.not_in_unit")
    room = svc.unit_channel(code, creator=p)
    return next(r for r in svc.list_rooms(p) if r["room_id"] == svc.room_mx(room.id))


@api.get("/rooms/{room_id}/delivery/{event_id}")
def delivery(room_id: str, event_id: str, request: Request) -> dict:
    return get_service(_rt(request)).delivery_state(_p(request), room_id, event_id)


@api.post("/rooms/{room_id}/retention", response_model=RoomOut)
def retention(room_id: str, body: RetentionIn, request: Request) -> dict:
    p = _p(request)
    svc = get_service(_rt(request))
    room = svc.set_retention(p, room_id, days=body.days, legal_hold=body.legal_hold)
    found = [r for r in svc.list_rooms(p) if r["room_id"] == svc.room_mx(room.id)]
    if found:
        return found[0]
    return {"room_id": svc.room_mx(room.id), "kind": room.kind, "name": room.name,
            "membership": "none", "can_post": False, "unread": 0, "last_stream": 0,
            "last_ts": 0, "retention_days": room.retention_days, "legal_hold": room.legal_hold}


@api.get("/rooms/{room_id}/export")
def export(room_id: str, request: Request) -> JSONResponse:
    data = get_service(_rt(request)).export(_p(request), room_id)
    return JSONResponse(data, headers={
        "Content-Disposition": 'attachment; filename="conversation-export.json"'})


@api.get("/users", response_model=list[UserHit])
def directory(request: Request, q: str = Query(min_length=2, max_length=64)) -> list[dict]:
    """Colleagues by name, to start a conversation (names and units only)."""
    _p(request)
    rt = _rt(request)
    svc = get_service(rt)
    like = "%" + q.lower().replace("%", "").replace("_", "") + "%"
    with rt.db.read() as s:
        rows = s.execute(select(User.id, User.display_name, Unit.code)
                         .join(Unit, Unit.id == User.unit_id)
                         .where(User.active.is_(True),
                                or_(User.username.like(like), User.display_name.ilike(like)))
                         .order_by(User.username).limit(20)).all()
    return [{"user_id": svc.mxid(i), "display_name": n, "unit_code": c} for i, n, c in rows]


# Resumable uploads -------------------------------------------------------------
def _upload_out(up, m=None, server: str = "") -> dict:
    out = {"upload_id": up.id, "size": up.size, "received": up.received}
    if m is not None:
        out.update(content_uri=f"mxc://{server}/{m.id}", content_type=m.content_type,
                   thumbnail_uri=f"mxc://{server}/{m.thumbnail_id}" if m.thumbnail_id else None)
    return out


@api.post("/uploads", response_model=UploadOut, status_code=201)
def start_upload(body: UploadIn, request: Request) -> dict:
    ms = get_media(_rt(request))
    up = ms.start_upload(_p(request), size=body.size, filename=body.filename,
                         room_id=body.room_id, scene=body.scene)
    return _upload_out(up)


@api.get("/uploads/{upload_id}", response_model=UploadOut)
def upload_status(upload_id: str, request: Request) -> dict:
    ms = get_media(_rt(request))
    return _upload_out(ms.upload_status(_p(request), upload_id))


@api.put("/uploads/{upload_id}", response_model=UploadOut)
async def upload_chunk(upload_id: str, request: Request,
                       offset: int = Query(ge=0)) -> dict:
    p = await run_in_threadpool(_p, request)
    ms = get_media(_rt(request))
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > CHUNK_MAX:
            from tocsin.core.errors import TooLarge

            raise TooLarge(f"chunk over {CHUNK_MAX} bytes", code="media.chunk_too_large")
    await run_in_threadpool(ms.put_chunk, p, upload_id, offset, bytes(data))
    return _upload_out(ms.upload_status(p, upload_id))


@api.post("/uploads/{upload_id}/complete", response_model=UploadOut)
def complete_upload(upload_id: str, request: Request) -> dict:
    p = _p(request)
    ms = get_media(_rt(request))
    m = ms.complete_upload(p, upload_id)
    return _upload_out(ms.upload_status(p, upload_id), m, ms.svc.server_name)


# Broadcast alerts --------------------------------------------------------------
@api.post("/alerts", response_model=AlertOut, status_code=201)
def create_alert(body: AlertIn, request: Request) -> dict:
    p = _p(request)
    svc = get_service(_rt(request))
    alert = svc.create_alert(p, kind=body.kind, title=body.title, description=body.description,
                             unit_codes=body.unit_codes, photo_mxc=body.photo,
                             priority=body.priority)
    return svc.alert_status(p, alert.id)


@api.get("/alerts", response_model=list[AlertOut])
def list_alerts(request: Request, active: bool = True) -> list[dict]:
    return get_service(_rt(request)).list_alerts(_p(request), active_only=active)


@api.get("/alerts/{alert_id}", response_model=AlertOut)
def alert(alert_id: str, request: Request) -> dict:
    return get_service(_rt(request)).alert_status(_p(request), alert_id)


@api.post("/alerts/{alert_id}/ack", response_model=AlertOut)
def ack(alert_id: str, request: Request) -> dict:
    p = _p(request)
    svc = get_service(_rt(request))
    svc.ack_alert(p, alert_id)
    return svc.alert_status(p, alert_id)


@api.post("/alerts/{alert_id}/seen", status_code=204)
def seen(alert_id: str, request: Request) -> None:
    get_service(_rt(request)).ack_alert(_p(request), alert_id, acknowledged=False)


@api.post("/alerts/{alert_id}/status", response_model=AlertOut)
def alert_status(alert_id: str, body: AlertStatusIn, request: Request) -> dict:
    p = _p(request)
    svc = get_service(_rt(request))
    svc.update_alert(p, alert_id, status=body.status, note=body.note)
    return svc.alert_status(p, alert_id)


# Live --------------------------------------------------------------------------
@api.websocket("/ws")
async def live(ws: WebSocket) -> None:
    await get_hub(ws.app.state.runtime).serve(ws)


router = APIRouter()
# The Matrix routes first: clients poll /sync and send through them all the time, and
# FastAPI tries routes in order (the Matrix catch-all only takes /_matrix/ paths).
router.include_router(matrix.router)


@router.get("/messenger-sw.js", include_in_schema=False)
def service_worker() -> FileResponse:
    """The service worker, served from the root so its scope covers /messenger."""
    from tocsin.web.pages import HERE

    return FileResponse(HERE / "static" / "messenger" / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


router.include_router(api)


# Demo --------------------------------------------------------------------------
DEMO_LINES = ["Vehicle check on the ring road, all clear.", "Who has the keys of car 12?",
              "Briefing moved to 14:30, room B.", "Traffic lights out at the market square.",
              "Found property handed in at the front desk.", "Patrol 3 back at the station.",
              "Reminder: body cams charged before shift.", "Road closed near the harbour."]


def populate_demo(runtime: Runtime, rng: random.Random, progress: Callable[[str], None]
                  ) -> None:
    """Unit channels with some messages and a broadcast alert (idempotent)."""
    from tocsin.messaging.models import Alert, Room

    svc = get_service(runtime)
    with runtime.db.read() as s:
        if s.scalar(select(Room.id).where(Room.kind == "unit").limit(1)) is not None:
            progress("messenger demo already loaded")
            return
    codes = ["NAT", "R01", "D0101", "C010101", "B010101-01", "B010101-02"]
    posted = 0
    for code in codes:
        try:
            room = svc.unit_channel(code)
        except TocsinError:  # no such unit in this force
            continue
        with runtime.db.read() as s:
            members = s.execute(select(User.username).join(Unit, Unit.id == User.unit_id)
                                .where(Unit.code == code).limit(5)).scalars().all()
        for i in range(6):
            if not members:
                break
            p = runtime.identity.principal_for(rng.choice(members))
            svc.send(p, svc.room_mx(room.id), "m.room.message",
                     {"msgtype": "m.text", "body": DEMO_LINES[(i + posted) % len(DEMO_LINES)]})
            posted += 1
    try:
        commander = runtime.identity.principal_for("commander")
        with runtime.db.read() as s:
            has_alert = s.scalar(select(Alert.id).limit(1)) is not None
        if not has_alert:
            svc.create_alert(commander, kind="missing_person", title="Missing: Elina, 9",
                             description="Last seen 15:10 near the central library, red coat, "
                                         "blue backpack. Call the station on sight.",
                             unit_codes=["R01"])
    except TocsinError as exc:  # a demo without the commander account: no alert
        progress(f"messenger demo: no alert ({exc})")
    progress(f"messenger demo: {len(codes)} unit channels, {posted} messages, one alert")
