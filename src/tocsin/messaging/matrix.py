"""The Matrix client-server API (a subset; one server, no federation).

Login goes through ``identity.login``: a Matrix access token names a Tocsin
device session (``device_id`` = session id), so revoking the session in Tocsin
cuts the Matrix client off on its next request. Errors use Matrix's
``{"errcode", "error"}`` shape. Police features are namespaced event types
(``org.tocsin.*``) that other clients show as their text ``body``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from tocsin.core.access import Principal
from tocsin.core.errors import (
    BadInput,
    Forbidden,
    NotFound,
    TocsinError,
    TooManyRequests,
    Unauthorized,
)
from tocsin.core.identity.models import DeviceSession
from tocsin.core.runtime import Runtime
from tocsin.messaging.hub import get_hub
from tocsin.messaging.models import MatrixToken
from tocsin.messaging.service import SyncToken, get_service
from tocsin.messaging.storage import get_media

VERSIONS = ["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9",
            "v1.10", "v1.11"]
TOKEN_PREFIX = "mat_"

_ERRCODES = {"token_missing": "M_MISSING_TOKEN", "login_failed": "M_FORBIDDEN",
             "totp_required": "M_FORBIDDEN", "login_throttled": "M_LIMIT_EXCEEDED",
             "messaging.too_large": "M_TOO_LARGE", "messaging.too_long": "M_TOO_LARGE",
             "media.too_large": "M_TOO_LARGE", "messaging.room_not_found": "M_NOT_FOUND",
             "messaging.user_not_found": "M_NOT_FOUND", "messaging.bad_token": "M_INVALID_PARAM",
             "messaging.bad_user_id": "M_INVALID_PARAM", "invalid_input": "M_BAD_JSON",
             "messaging.bad_content": "M_BAD_JSON", "media.unsupported_type": "M_UNKNOWN",
             "media.decompression_bomb": "M_TOO_LARGE"}


def matrix_error(exc: TocsinError) -> JSONResponse:
    errcode = _ERRCODES.get(exc.code)
    if errcode is None:
        errcode = {401: "M_UNKNOWN_TOKEN", 403: "M_FORBIDDEN", 404: "M_NOT_FOUND",
                   413: "M_TOO_LARGE", 429: "M_LIMIT_EXCEEDED"}.get(exc.status, "M_UNKNOWN")
    if exc.code in ("messaging.bad_content", "messaging.bad_event_type", "invalid_input"):
        errcode = "M_BAD_JSON"
    body: dict[str, Any] = {"errcode": errcode, "error": exc.message, "org.tocsin.code": exc.code}
    headers = {}
    if isinstance(exc, TooManyRequests):
        body["retry_after_ms"] = exc.retry_after * 1000
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized) and errcode == "M_UNKNOWN_TOKEN":
        body["soft_logout"] = exc.code == "token_expired"
        if exc.code in ("session_revoked", "account_disabled"):
            # A lost or revoked device wipes what it kept, on its next contact.
            headers["Clear-Site-Data"] = '"cache", "storage"'
    status = 403 if errcode == "M_FORBIDDEN" else exc.status  # Matrix: wrong password is 403
    return JSONResponse(body, status_code=status, headers=headers)


class MatrixRoute(APIRoute):
    """Turns Tocsin errors into Matrix errors on every /_matrix route."""

    def get_route_handler(self):
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except TocsinError as exc:
                return matrix_error(exc)
            except RequestValidationError:
                return matrix_error(BadInput("request does not match the API",
                                             code="invalid_input"))

        return handler


router = APIRouter(route_class=MatrixRoute, include_in_schema=False)
C3 = "/_matrix/client/v3"

# Tokens ---------------------------------------------------------------------
_token_cache: dict[str, tuple[int, str]] = {}
_cache_lock = threading.Lock()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate_token(rt: Runtime, token: str) -> Principal:
    """A Matrix token (``mat_...``) or a Tocsin access token -> Principal of a live session."""
    if not token.startswith(TOKEN_PREFIX):
        return rt.identity.authenticate(token)
    digest = _hash(token)
    found = _token_cache.get(digest)
    if found is None:
        with rt.db.read() as s:
            row = s.get(MatrixToken, digest)
        if row is None:
            raise Unauthorized("unknown access token", code="token_invalid")
        found = (row.user_id, row.session_id)
        with _cache_lock:
            if len(_token_cache) > 50_000:
                _token_cache.clear()
            _token_cache[digest] = found
    # the session is checked (revoked, expired, account disabled) as for any Tocsin client
    return rt.identity.authenticate_session(*found)


def request_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = request.query_params.get("access_token")
    if token:
        return token
    raise Unauthorized("missing access token", code="token_missing")


def principal_of(request: Request) -> Principal:
    p = getattr(request.state, "principal", None)
    if p is None:
        p = authenticate_token(request.app.state.runtime, request_token(request))
        request.state.principal = p
    return p


async def body_json(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadInput("body is not JSON", code="messaging.bad_content") from None
    if not isinstance(data, dict):
        raise BadInput("body must be a JSON object", code="messaging.bad_content")
    return data


def rt_of(request: Request) -> Runtime:
    return request.app.state.runtime


# The busiest routes first: FastAPI tries an app's routes in order on every request.
# Sync ------------------------------------------------------------------------
def _timeline_limit(filter_param: str | None) -> int:
    if not filter_param or filter_param == "0":
        return 20
    try:
        f = json.loads(filter_param)
        return int(((f.get("room") or {}).get("timeline") or {}).get("limit", 20))
    except (ValueError, TypeError, AttributeError):
        return 20


@router.get(C3 + "/sync")
async def sync(request: Request, since: str | None = None, timeout: int = 0,
               full_state: bool = False, filter: str | None = None) -> Response:
    rt = rt_of(request)
    hub = get_hub(rt)
    loop = asyncio.get_running_loop()
    hub.attach(loop)
    p = await run_in_threadpool(principal_of, request)
    token = SyncToken.parse(since)
    limit = _timeline_limit(filter)
    timeout = max(0, min(timeout, 30_000))
    deadline = loop.time() + timeout / 1000

    def answer(body: bytes) -> Response:
        return Response(body, media_type="application/json")

    # Registered before the first look, so nothing committed meanwhile is missed.
    with hub.waiting(p) as waiter:
        body, news = await hub.sync(p, token, limit, full_state, fresh=True)
        if token is None or news or not timeout:
            return answer(body)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return answer(body)
            try:
                await asyncio.wait_for(waiter.event.wait(), remaining)
            except TimeoutError:
                return answer(body)
            waiter.event.clear()
            if not waiter.checked:  # revoked, changed, or not checked with the others
                p = await run_in_threadpool(authenticate_token, rt, request_token(request))
                hub.rewait(waiter, p)
            waiter.checked = False
            body, news = await hub.sync(p, token, limit, full_state)
            if news:
                return answer(body)


# Sending ---------------------------------------------------------------------
@router.put(C3 + "/rooms/{room_id}/send/{event_type}/{txn_id}")
async def send(room_id: str, event_type: str, txn_id: str, request: Request) -> dict:
    body = await body_json(request)
    svc = get_service(rt_of(request))

    def run() -> str:
        return svc.send(principal_of(request), room_id, event_type, body, txn_id).event_id

    return {"event_id": await run_in_threadpool(run)}


# Discovery and login ----------------------------------------------------------
@router.get("/_matrix/client/versions")
def versions() -> dict:
    return {"versions": VERSIONS, "unstable_features": {}}


@router.get("/.well-known/matrix/client")
def well_known(request: Request) -> dict:
    return {"m.homeserver": {"base_url": str(request.base_url).rstrip("/")}}


@router.get(C3 + "/login")
def login_flows() -> dict:
    return {"flows": [{"type": "m.login.password"}]}


@router.post(C3 + "/login")
async def login(request: Request) -> dict:
    body = await body_json(request)
    if body.get("type") != "m.login.password":
        raise BadInput("only m.login.password is supported", code="messaging.bad_login_type")
    ident = body.get("identifier") or {}
    user = ident.get("user") if isinstance(ident, dict) else None
    user = user or body.get("user")
    password = body.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
        raise BadInput("user and password are required", code="invalid_input")
    rt = rt_of(request)
    svc = get_service(rt)
    if user.startswith("@"):
        user = user[1:].split(":", 1)[0]
    device = body.get("initial_device_display_name") or "Matrix client"
    if not isinstance(device, str):
        device = "Matrix client"
    device = " ".join(device.split())[:200] or "Matrix client"
    client = request.client.host if request.client else "unknown"
    pair = await run_in_threadpool(rt.identity.login, username=user.lower(), password=password,
                                   device_name=device, client=client)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def store() -> int:
        with rt.db.session() as s:
            sess = s.get(DeviceSession, pair.session_id)
            s.add(MatrixToken(token_hash=_hash(token), session_id=pair.session_id,
                              user_id=sess.user_id))
            return sess.user_id

    user_id = await run_in_threadpool(store)
    return {"user_id": svc.mxid(user_id), "access_token": token, "device_id": pair.session_id,
            "home_server": svc.server_name,
            "well_known": {"m.homeserver": {"base_url": str(request.base_url).rstrip("/")}}}


@router.post(C3 + "/logout")
def logout(request: Request) -> dict:
    p = principal_of(request)
    rt_of(request).identity.logout(p)
    return {}


@router.post(C3 + "/logout/all")
def logout_all(request: Request) -> dict:
    p = principal_of(request)
    rt_of(request).identity.revoke_all(p, p.user_id)
    return {}


@router.get(C3 + "/account/whoami")
def whoami(request: Request) -> dict:
    p = principal_of(request)
    return {"user_id": get_service(rt_of(request)).mxid(p.user_id), "device_id": p.session_id,
            "is_guest": False}


@router.get(C3 + "/capabilities")
def capabilities(request: Request) -> dict:
    principal_of(request)
    return {"capabilities": {"m.change_password": {"enabled": False},
                             "m.room_versions": {"default": "10", "available": {"10": "stable"}},
                             "m.set_displayname": {"enabled": False}}}


@router.post(C3 + "/user/{user_id}/filter")
def create_filter(user_id: str, request: Request) -> dict:
    principal_of(request)
    return {"filter_id": "0"}


@router.get(C3 + "/user/{user_id}/filter/{filter_id}")
def get_filter(user_id: str, filter_id: str, request: Request) -> dict:
    principal_of(request)
    return {}


@router.get(C3 + "/pushrules/")
def pushrules(request: Request) -> dict:
    principal_of(request)
    return {"global": {}}


@router.get(C3 + "/profile/{user_id}")
def profile(user_id: str, request: Request) -> dict:
    principal_of(request)
    rt = rt_of(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        uid = svc.user_id_of(s, user_id)
    return {"displayname": svc.display_name(uid)}


@router.get(C3 + "/profile/{user_id}/displayname")
def profile_name(user_id: str, request: Request) -> dict:
    return {"displayname": profile(user_id, request)["displayname"]}


# Devices ---------------------------------------------------------------------
def _device(s: DeviceSession) -> dict:
    return {"device_id": s.id, "display_name": s.device_name,
            "last_seen_ts": int(s.last_seen_at.timestamp() * 1000)}


@router.get(C3 + "/devices")
def devices(request: Request) -> dict:
    p = principal_of(request)
    rt = rt_of(request)
    return {"devices": [_device(s) for s in rt.identity.list_sessions(p, p.user_id)
                        if s.revoked_at is None]}


@router.get(C3 + "/devices/{device_id}")
def device(device_id: str, request: Request) -> dict:
    for d in devices(request)["devices"]:
        if d["device_id"] == device_id:
            return d
    raise NotFound("no such device", code="session.not_found")


@router.delete(C3 + "/devices/{device_id}")
def delete_device(device_id: str, request: Request) -> dict:
    p = principal_of(request)
    rt = rt_of(request)
    with rt.db.read() as s:
        sess = s.get(DeviceSession, device_id)
    if sess is None or sess.user_id != p.user_id:
        raise NotFound("no such device", code="session.not_found")
    rt.identity.revoke_session(p, device_id)
    return {}


@router.post(C3 + "/delete_devices")
async def delete_devices(request: Request) -> dict:
    body = await body_json(request)
    ids = body.get("devices")
    if not isinstance(ids, list):
        raise BadInput("devices must be a list", code="invalid_input")
    for d in ids:
        await run_in_threadpool(delete_device, str(d), request)
    return {}


# Rooms -----------------------------------------------------------------------
@router.post(C3 + "/createRoom")
async def create_room(request: Request) -> dict:
    body = await body_json(request)
    p = await run_in_threadpool(principal_of, request)
    rt = rt_of(request)
    svc = get_service(rt)

    def run() -> str:
        invite = body.get("invite") or []
        if not isinstance(invite, list) or len(invite) > 500:
            raise BadInput("invite must be a list of up to 500 users", code="invalid_input")
        with rt.db.read() as s:
            ids = [svc.user_id_of(s, str(u)) for u in invite]
        bound = body.get("org.tocsin.bound")
        if bound is not None:
            if not isinstance(bound, dict) or bound.get("kind") not in (
                    "operation", "incident", "case") or not str(bound.get("id", "")).strip():
                raise BadInput("bound must be {kind: operation|incident|case, id}",
                               code="messaging.bound_required")
            bound = (bound["kind"], str(bound["id"])[:64])
        retention = body.get("org.tocsin.retention_days")
        room = svc.create_room(
            p, kind=body.get("org.tocsin.kind") or ("bound" if bound else "group"),
            name=body.get("name"), topic=body.get("topic"), invite=ids,
            unit_code=body.get("org.tocsin.unit"), bound=bound,
            post_roles=body.get("org.tocsin.post_roles"),
            audience_codes=body.get("org.tocsin.audience") or (),
            retention_days=retention if isinstance(retention, int) else None,
            is_direct=bool(body.get("is_direct")))
        return svc.room_mx(room.id)

    return {"room_id": await run_in_threadpool(run)}


@router.post(C3 + "/join/{room_id}")
@router.post(C3 + "/rooms/{room_id}/join")
def join(room_id: str, request: Request) -> dict:
    p = principal_of(request)
    svc = get_service(rt_of(request))
    room = svc.join(p, room_id)
    return {"room_id": svc.room_mx(room.id)}


@router.post(C3 + "/rooms/{room_id}/leave")
def leave(room_id: str, request: Request) -> dict:
    get_service(rt_of(request)).leave(principal_of(request), room_id)
    return {}


@router.post(C3 + "/rooms/{room_id}/forget")
def forget(room_id: str, request: Request) -> dict:
    principal_of(request)
    return {}


@router.post(C3 + "/rooms/{room_id}/invite")
async def invite(room_id: str, request: Request) -> dict:
    body = await body_json(request)
    rt = rt_of(request)
    svc = get_service(rt)

    def run() -> None:
        p = principal_of(request)
        with rt.db.read() as s:
            uid = svc.user_id_of(s, str(body.get("user_id", "")))
        svc.invite(p, room_id, uid)

    await run_in_threadpool(run)
    return {}


async def _remove(room_id: str, request: Request, ban: bool) -> dict:
    body = await body_json(request)
    rt = rt_of(request)
    svc = get_service(rt)

    def run() -> None:
        p = principal_of(request)
        with rt.db.read() as s:
            uid = svc.user_id_of(s, str(body.get("user_id", "")))
        reason = body.get("reason")
        svc.kick(p, room_id, uid, reason if isinstance(reason, str) else None, ban=ban)

    await run_in_threadpool(run)
    return {}


@router.post(C3 + "/rooms/{room_id}/kick")
async def kick(room_id: str, request: Request) -> dict:
    return await _remove(room_id, request, False)


@router.post(C3 + "/rooms/{room_id}/ban")
async def ban(room_id: str, request: Request) -> dict:
    return await _remove(room_id, request, True)


@router.get(C3 + "/joined_rooms")
def joined_rooms(request: Request) -> dict:
    p = principal_of(request)
    rt = rt_of(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        return {"joined_rooms": [svc.room_mx(r) for r in svc.joined_room_ids(s, p)]}


@router.get(C3 + "/rooms/{room_id}/joined_members")
def joined_members(room_id: str, request: Request) -> dict:
    p = principal_of(request)
    rt = rt_of(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        room = svc.get_room(s, room_id)
        svc.require_member(s, room, p)
        ids = svc.members(s, room)[:5000]
    return {"joined": {svc.mxid(u): {"display_name": svc.display_name(u)} for u in ids}}


@router.get(C3 + "/rooms/{room_id}/members")
def members(room_id: str, request: Request) -> dict:
    p = principal_of(request)
    rt = rt_of(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        room = svc.get_room(s, room_id)
        svc.require_member(s, room, p)
        evs = [e for e in svc.current_state(s, room.id) if e.type == "m.room.member"]
        return {"chunk": [svc.client_event(e) for e in evs]}


@router.get(C3 + "/rooms/{room_id}/state")
def room_state(room_id: str, request: Request) -> list:
    p = principal_of(request)
    rt = rt_of(request)
    svc = get_service(rt)
    with rt.db.read() as s:
        room = svc.get_room(s, room_id)
        svc.require_member(s, room, p)
        return [svc.client_event(e) for e in svc.current_state(s, room.id)]


@router.get(C3 + "/rooms/{room_id}/state/{event_type}")
@router.get(C3 + "/rooms/{room_id}/state/{event_type}/{state_key}")
def room_state_event(room_id: str, event_type: str, request: Request, state_key: str = ""
                     ) -> dict:
    for e in room_state(room_id, request):
        if e["type"] == event_type and e.get("state_key", "") == state_key:
            return e["content"]
    raise NotFound("no such state", code="messaging.state_not_found")


# Events ----------------------------------------------------------------------
@router.put(C3 + "/rooms/{room_id}/redact/{event_id}/{txn_id}")
async def redact(room_id: str, event_id: str, txn_id: str, request: Request) -> dict:
    body = await body_json(request)
    svc = get_service(rt_of(request))

    def run() -> str:
        reason = body.get("reason")
        return svc.redact(principal_of(request), room_id, event_id,
                          reason if isinstance(reason, str) else None, txn_id).event_id

    return {"event_id": await run_in_threadpool(run)}


@router.get(C3 + "/rooms/{room_id}/messages")
def messages(room_id: str, request: Request, dir: str = "b", limit: int = 10,
             from_: str | None = None) -> dict:
    p = principal_of(request)
    from_token = request.query_params.get("from") or from_
    return get_service(rt_of(request)).messages(p, room_id, from_token=from_token,
                                                direction=dir, limit=limit)


@router.get(C3 + "/rooms/{room_id}/event/{event_id}")
def get_event(room_id: str, event_id: str, request: Request) -> dict:
    return get_service(rt_of(request)).get_event(principal_of(request), room_id, event_id)


@router.post(C3 + "/rooms/{room_id}/receipt/{receipt_type}/{event_id}")
def receipt(room_id: str, receipt_type: str, event_id: str, request: Request) -> dict:
    get_service(rt_of(request)).receipt(principal_of(request), room_id, event_id, receipt_type)
    return {}


@router.post(C3 + "/rooms/{room_id}/read_markers")
async def read_markers(room_id: str, request: Request) -> dict:
    body = await body_json(request)
    svc = get_service(rt_of(request))

    def run() -> None:
        p = principal_of(request)
        for key in ("m.read", "m.fully_read", "m.read.private"):
            if isinstance(body.get(key), str):
                svc.receipt(p, room_id, body[key], "m.read" if key == "m.fully_read" else key)

    await run_in_threadpool(run)
    return {}


@router.put(C3 + "/rooms/{room_id}/typing/{user_id}")
async def typing(room_id: str, user_id: str, request: Request) -> dict:
    body = await body_json(request)
    svc = get_service(rt_of(request))

    def run() -> None:
        p = principal_of(request)
        if user_id != svc.mxid(p.user_id):
            raise Forbidden("you may only set your own typing state", code="messaging.not_you")
        timeout = body.get("timeout", 30000)
        svc.typing(p, room_id, bool(body.get("typing")),
                   timeout if isinstance(timeout, int) else 30000)

    await run_in_threadpool(run)
    return {}


@router.post(C3 + "/search")
async def search(request: Request) -> dict:
    body = await body_json(request)
    crit = ((body.get("search_categories") or {}).get("room_events") or {})
    term = crit.get("search_term")
    if not isinstance(term, str):
        raise BadInput("search_term is required", code="invalid_input")
    svc = get_service(rt_of(request))
    results = await run_in_threadpool(lambda: svc.search(principal_of(request), term))
    return {"search_categories": {"room_events": {
        "count": len(results), "highlights": [term],
        "results": [{"rank": 1.0, "result": r} for r in results]}}}


# Media -----------------------------------------------------------------------
MEDIA_PREFIXES = ("/_matrix/media/v3", "/_matrix/client/v1/media")


@router.get("/_matrix/media/v3/config")
@router.get("/_matrix/client/v1/media/config")
def media_config(request: Request) -> dict:
    principal_of(request)
    return {"m.upload.size": get_service(rt_of(request)).config.max_upload_bytes}


@router.post("/_matrix/media/v3/upload")
@router.post("/_matrix/client/v1/media/upload")
async def upload(request: Request, filename: str | None = None) -> dict:
    rt = rt_of(request)
    p = await run_in_threadpool(principal_of, request)
    ms = get_media(rt)
    declared = request.headers.get("content-length")
    path = await ms.receive_to_file(request.stream(), int(declared) if declared and
                                    declared.isdigit() else None)
    room = request.query_params.get("org.tocsin.room_id")
    scene = request.query_params.get("org.tocsin.scene") in ("1", "true")
    m = await run_in_threadpool(lambda: ms.store_file(p, path, filename=filename, room_id=room,
                                                      scene=scene))
    svc = get_service(rt)
    out = {"content_uri": f"mxc://{svc.server_name}/{m.id}",
           "org.tocsin.content_type": m.content_type, "org.tocsin.size": m.size}
    if m.thumbnail_id:
        out["org.tocsin.thumbnail_uri"] = f"mxc://{svc.server_name}/{m.thumbnail_id}"
    if m.width:
        out["org.tocsin.w"], out["org.tocsin.h"] = m.width, m.height
    return out


def _download(request: Request, server: str, media_id: str, thumbnail: bool) -> Response:
    rt = rt_of(request)
    svc = get_service(rt)
    if server != svc.server_name:
        raise NotFound("no such media", code="media.not_found")
    p = principal_of(request)
    m, chunks = get_media(rt).open(p, media_id, thumbnail=thumbnail)
    headers = {"Content-Length": str(m.size), "X-Content-Type-Options": "nosniff",
               "Cache-Control": "private, max-age=86400",
               "Content-Security-Policy": "sandbox; default-src 'none'"}
    disposition = "inline" if m.content_type.startswith(("image/", "video/")) else "attachment"
    name = m.filename or m.id
    headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name)}"
    return StreamingResponse(chunks, media_type=m.content_type, headers=headers)


@router.get("/_matrix/client/v1/media/download/{server}/{media_id}")
@router.get("/_matrix/client/v1/media/download/{server}/{media_id}/{file_name}")
@router.get("/_matrix/media/v3/download/{server}/{media_id}")
@router.get("/_matrix/media/v3/download/{server}/{media_id}/{file_name}")
def download(server: str, media_id: str, request: Request, file_name: str | None = None
             ) -> Response:
    return _download(request, server, media_id, False)


@router.get("/_matrix/client/v1/media/thumbnail/{server}/{media_id}")
@router.get("/_matrix/media/v3/thumbnail/{server}/{media_id}")
def thumbnail(server: str, media_id: str, request: Request) -> Response:
    return _download(request, server, media_id, True)


@router.api_route("/_matrix/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
def unrecognized(rest: str) -> JSONResponse:
    return JSONResponse({"errcode": "M_UNRECOGNIZED", "error": "not supported by Tocsin"},
                        status_code=404)


