"""Identity routes under /api/v1: login, tokens, sessions, TOTP, users, units."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from tocsin.core import access
from tocsin.core.access import Resource
from tocsin.core.events import DomainEvent, emit
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.core.identity.models import Unit, User
from tocsin.core.identity.schemas import (
    LoginIn, PasswordChangeIn, RefreshIn, SessionOut, TokenOut, TotpCodeIn, TotpSetupOut,
    UnitIn, UnitOut, UserIn, UserOut, UserPatch,
)

router = APIRouter(prefix="/api/v1", tags=["identity"])


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name,
                   unit_id=user.unit_id, unit_code=user.unit.code, roles=user.roles,
                   totp_enabled=user.totp_enabled, active=user.active)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/auth/login", response_model=TokenOut)
def login(body: LoginIn, request: Request, rt: RuntimeDep) -> TokenOut:
    return rt.identity.login(username=body.username, password=body.password,
                             totp_code=body.totp_code, device_name=body.device_name,
                             client=_client(request))


@router.post("/auth/refresh", response_model=TokenOut)
def refresh(body: RefreshIn, rt: RuntimeDep) -> TokenOut:
    return rt.identity.refresh(body.refresh_token)


@router.post("/auth/logout", status_code=204)
def logout(principal: PrincipalDep, rt: RuntimeDep) -> Response:
    rt.identity.logout(principal)
    return Response(status_code=204)


@router.get("/auth/whoami", response_model=UserOut)
def whoami(principal: PrincipalDep, rt: RuntimeDep) -> UserOut:
    with rt.db.read() as s:
        return _user_out(rt.identity.get_user(s, principal.user_id))


@router.post("/auth/password", status_code=204)
def change_password(body: PasswordChangeIn, principal: PrincipalDep, rt: RuntimeDep) -> Response:
    rt.identity.change_password(principal, body.current_password, body.new_password)
    return Response(status_code=204)


@router.post("/auth/totp/setup", response_model=TotpSetupOut)
def totp_setup(principal: PrincipalDep, rt: RuntimeDep) -> TotpSetupOut:
    secret, uri = rt.identity.totp_setup(principal)
    return TotpSetupOut(secret=secret, otpauth_uri=uri)


@router.post("/auth/totp/confirm", status_code=204)
def totp_confirm(body: TotpCodeIn, principal: PrincipalDep, rt: RuntimeDep) -> Response:
    rt.identity.totp_confirm(principal, body.code)
    return Response(status_code=204)


@router.get("/auth/sessions", response_model=list[SessionOut])
def my_sessions(principal: PrincipalDep, rt: RuntimeDep) -> list[SessionOut]:
    return [SessionOut.model_validate(s, from_attributes=True).model_copy(
        update={"current": s.id == principal.session_id})
        for s in rt.identity.list_sessions(principal, principal.user_id)]


@router.delete("/auth/sessions/{session_id}", status_code=204)
def revoke_session(session_id: str, principal: PrincipalDep, rt: RuntimeDep) -> Response:
    rt.identity.revoke_session(principal, session_id)
    return Response(status_code=204)


@router.get("/users", response_model=list[UserOut])
def list_users(principal: PrincipalDep, rt: RuntimeDep, unit: str | None = None,
               limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
               ) -> list[UserOut]:
    return [_user_out(u) for u in rt.identity.list_users(principal, unit_code=unit, limit=limit,
                                                          offset=offset)]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, principal: PrincipalDep, rt: RuntimeDep) -> UserOut:
    user = rt.identity.create_user(username=body.username, display_name=body.display_name,
                                   unit_code=body.unit_code, roles=body.roles,
                                   password=body.password, actor=principal)
    with rt.db.read() as s:
        return _user_out(rt.identity.get_user(s, user.id))


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(user_id: int, principal: PrincipalDep, rt: RuntimeDep) -> UserOut:
    with rt.db.session() as s:
        user = rt.identity.get_user(s, user_id)
        if user.id != principal.user_id:
            access.require(principal, "read", Resource("user", user.unit.path))
            # A read of someone's account is itself a recorded event.
            emit(s, DomainEvent(type="identity.user.read", actor_id=principal.user_id,
                                unit_id=user.unit_id, record_kind="user",
                                record_id=str(user.id)))
        return _user_out(user)


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(user_id: int, body: UserPatch, principal: PrincipalDep, rt: RuntimeDep
                ) -> UserOut:
    rt.identity.update_user(principal, user_id, unit_code=body.unit_code, roles=body.roles,
                            active=body.active)
    with rt.db.read() as s:
        return _user_out(rt.identity.get_user(s, user_id))


@router.get("/users/{user_id}/sessions", response_model=list[SessionOut])
def user_sessions(user_id: int, principal: PrincipalDep, rt: RuntimeDep) -> list[SessionOut]:
    return [SessionOut.model_validate(s, from_attributes=True)
            for s in rt.identity.list_sessions(principal, user_id)]


@router.delete("/users/{user_id}/sessions", status_code=200)
def revoke_user_sessions(user_id: int, principal: PrincipalDep, rt: RuntimeDep) -> dict:
    return {"revoked": rt.identity.revoke_all(principal, user_id)}


@router.get("/units", response_model=list[UnitOut])
def list_units(principal: PrincipalDep, rt: RuntimeDep, parent: str | None = None,
               limit: int = Query(500, ge=1, le=5000), offset: int = Query(0, ge=0)
               ) -> list[UnitOut]:
    with rt.db.read() as s:
        q = select(Unit).order_by(Unit.id)
        if parent:
            q = q.where(Unit.parent_id == rt.identity.unit_by_code(s, parent).id)
        return [UnitOut.model_validate(u, from_attributes=True)
                for u in s.scalars(q.limit(limit).offset(offset))]


@router.post("/units", response_model=UnitOut, status_code=201)
def create_unit(body: UnitIn, principal: PrincipalDep, rt: RuntimeDep) -> UnitOut:
    with rt.db.session() as s:
        unit = rt.identity.create_unit(s, code=body.code, name=body.name, kind=body.kind.value,
                                       parent_code=body.parent_code, actor=principal)
        return UnitOut.model_validate(unit, from_attributes=True)
