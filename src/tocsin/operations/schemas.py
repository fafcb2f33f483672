"""API shapes of the operations module."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from tocsin.core.schemas import Name, StrictModel, Text

PointKind = Literal["checkpoint", "command_post", "assembly_area", "restricted_zone"]
EntryKind = Literal["note", "report", "status"]
AlertKind = Literal["missing_person", "wanted_vehicle", "imminent_danger"]
UnitStatus = Literal["available", "en_route", "on_scene", "engaged", "unavailable", "off_duty"]
Lat = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
Lon = Field(default=None, ge=-180, le=180, allow_inf_nan=False)


class OperationIn(StrictModel):
    name: Name
    description: Text = ""
    unit_code: str | None = Field(default=None, max_length=64)
    commander_user_id: int | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    perimeter: dict[str, Any] | None = None


class OperationPatch(StrictModel):
    status: Literal["planned", "active", "closed"] | None = None
    ends_at: dt.datetime | None = None
    perimeter: dict[str, Any] | None = None


class ParticipantIn(StrictModel):
    unit_code: str = Field(min_length=1, max_length=64)


class StaffIn(StrictModel):
    user_id: int
    function: Name


class PhaseIn(StrictModel):
    name: Name
    starts_at: dt.datetime
    ends_at: dt.datetime | None = None


class SectorIn(StrictModel):
    name: Name
    geometry: dict[str, Any]
    commander_user_id: int | None = None


class PointIn(StrictModel):
    kind: PointKind
    name: Name
    geometry: dict[str, Any]


class OpUnitIn(StrictModel):
    callsign: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")
    unit_code: str = Field(min_length=1, max_length=64)
    kind: Literal["team", "vehicle", "foot", "horse", "dog", "boat", "air", "command"] = "team"
    member_user_ids: list[int] = Field(default_factory=list, max_length=50)
    member_usernames: list[str] = Field(default_factory=list, max_length=50)
    cot_uid: str | None = Field(default=None, min_length=1, max_length=120,
                                pattern=r"^[\x21-\x7e]+$")


class AssignIn(StrictModel):
    sector_id: int | None
    reassign: bool = False


class UnitStatusIn(StrictModel):
    status: UnitStatus


class EntryIn(StrictModel):
    kind: EntryKind = "note"
    text: Text = Field(min_length=1)
    sector_id: int | None = None
    op_unit_id: int | None = None
    lat: float | None = Lat
    lon: float | None = Lon
    photo: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class DecisionIn(StrictModel):
    text: Text = Field(min_length=1)
    rationale: Text = Field(min_length=1)
    sector_id: int | None = None
    supersedes_id: int | None = None


class OrderIn(StrictModel):
    text: Text = Field(min_length=1)
    op_unit_id: int | None = None
    sector_id: int | None = None
    due_at: dt.datetime | None = None


class AlertIn(StrictModel):
    kind: AlertKind
    headline: Name
    description: Text = ""
    instruction: Text = ""
    area: dict[str, Any] | None = None
    op_unit_ids: list[int] = Field(default_factory=list, max_length=5000)
    photo: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    expires_minutes: int = Field(default=240, ge=5, le=7 * 24 * 60)


class PositionIn(StrictModel):
    op_unit_id: int
    lat: float
    lon: float
    at: dt.datetime | float | None = None
    heading: float | None = None
    speed: float | None = None
    accuracy: float | None = None


class PositionsIn(StrictModel):
    items: list[dict[str, Any]] = Field(max_length=5000)
