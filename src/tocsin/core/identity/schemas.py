"""API shapes of identity. Unknown fields are refused (``StrictModel``)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from tocsin.core.identity.models import Role, UnitKind
from tocsin.core.schemas import Name, StrictModel, Username


class LoginIn(StrictModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    totp_code: str | None = Field(default=None, max_length=10)
    device_name: Name = "unnamed device"


class RefreshIn(StrictModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class TokenOut(StrictModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    session_id: str


class UnitOut(StrictModel):
    id: int
    code: str
    name: str
    kind: UnitKind
    parent_id: int | None
    path: str


class UnitIn(StrictModel):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: Name
    kind: UnitKind
    parent_code: str | None = Field(default=None, max_length=64)


class UserOut(StrictModel):
    id: int
    username: str
    display_name: str
    unit_id: int
    unit_code: str
    roles: list[Role]
    totp_enabled: bool
    active: bool


class UserIn(StrictModel):
    username: Username
    display_name: Name
    unit_code: str = Field(min_length=1, max_length=64)
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    password: str = Field(min_length=1, max_length=256)


class UserPatch(StrictModel):
    """Move a user, change her roles, or (de)activate her account; omitted fields stay."""

    unit_code: str | None = Field(default=None, min_length=1, max_length=64)
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=len(Role))
    active: bool | None = None


class SessionOut(StrictModel):
    id: str
    device_name: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    current: bool = False


class TotpSetupOut(StrictModel):
    secret: str
    otpauth_uri: str


class TotpCodeIn(StrictModel):
    code: str = Field(min_length=6, max_length=10)


class PasswordChangeIn(StrictModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)
