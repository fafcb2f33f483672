"""API shapes of Tocsin's own messenger routes (the Matrix routes take Matrix JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tocsin.core.identity.models import Role
from tocsin.core.schemas import Name, StrictModel


class RoomIn(StrictModel):
    kind: Literal["direct", "group", "unit", "bound", "broadcast"] = "group"
    name: Name | None = None
    topic: str | None = Field(default=None, max_length=1000)
    invite: list[str] = Field(default_factory=list, max_length=500)
    unit_codes: list[str] = Field(default_factory=list, max_length=200)
    bound_kind: Literal["operation", "incident", "case"] | None = None
    bound_id: str | None = Field(default=None, min_length=1, max_length=64)
    post_roles: list[Role] | None = None
    retention_days: int | None = Field(default=None, ge=1, le=36500)


class RoomOut(StrictModel):
    room_id: str
    kind: str
    name: str | None
    membership: str
    can_post: bool
    unread: int
    last_stream: int
    last_ts: int
    retention_days: int | None
    legal_hold: bool


class RetentionIn(StrictModel):
    days: int | None = Field(default=None, ge=1, le=36500)
    legal_hold: bool | None = None


class UploadIn(StrictModel):
    size: int = Field(gt=0)
    filename: str | None = Field(default=None, max_length=255)
    room_id: str | None = Field(default=None, max_length=100)
    scene: bool = False


class UploadOut(StrictModel):
    upload_id: str
    size: int
    received: int
    content_uri: str | None = None
    thumbnail_uri: str | None = None
    content_type: str | None = None


class AlertIn(StrictModel):
    kind: Literal["missing_person", "wanted_person", "wanted_vehicle", "imminent_danger",
                  "general"]
    title: Name
    description: str = Field(default="", max_length=4000)
    unit_codes: list[str] = Field(default_factory=list, max_length=500)
    photo: str | None = Field(default=None, max_length=200, pattern=r"^mxc://")
    priority: int = Field(default=1, ge=1, le=4)


class AlertStatusIn(StrictModel):
    status: Literal["active", "cancelled", "resolved"]
    note: str | None = Field(default=None, max_length=4000)


class AlertOut(StrictModel):
    alert_id: str
    room_id: str
    event_id: str
    kind: str
    title: str
    status: str
    revision: int
    audience: int
    seen: int
    acknowledged: int
    summary: str
    you_acknowledged: bool


class UserHit(StrictModel):
    user_id: str
    display_name: str
    unit_code: str
