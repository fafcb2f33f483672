"""Dispatch API shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from tocsin.core.schemas import Name, StrictModel, Text

Lat = float
UnitStatus = Literal["available", "dispatched", "en_route", "on_scene", "unavailable"]
IncidentStatus = Literal["new", "dispatched", "en_route", "on_scene", "closed"]


class Point(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


class CallIn(StrictModel):
    caller_number: str | None = Field(default=None, max_length=40, pattern=r"^[+0-9 ()*#-]*$")
    # The caller's location: a point, or raw AML (SMS/HTTPS) or PIDF-LO text to parse.
    caller_location: Point | None = None
    location_text: str | None = Field(default=None, max_length=200_000)
    # Where the event is, when the call-taker knows it: an address picked from the search.
    address: Name | None = None
    location: Point | None = None
    narrative: Text = ""
    received_at: dt.datetime | None = None
    unit_code: str | None = Field(default=None, max_length=64)


class CallUpdate(StrictModel):
    address: Name | None = None
    location: Point | None = None
    narrative: Text | None = None


class CallOut(StrictModel):
    id: int
    unit_id: int
    caller_number: str | None
    caller_lat: float | None
    caller_lon: float | None
    caller_accuracy_m: float | None
    location_source: str | None
    address: str | None
    lat: float | None
    lon: float | None
    narrative: str
    call_taker_id: int | None
    status: str
    incident_id: int | None
    received_at: dt.datetime
    created_at: dt.datetime
    close_reason: str | None = None


class CallCloseIn(StrictModel):
    reason: Name | None = None


class DuplicateOut(StrictModel):
    incident_id: int
    type_code: str
    priority: int
    status: str
    address: str
    distance_m: float
    minutes_ago: float


class CallCreated(CallOut):
    duplicates: list[DuplicateOut] = []


class LinkIn(StrictModel):
    incident_id: int


class IncidentIn(StrictModel):
    call_id: int | None = None
    type_code: str = Field(min_length=1, max_length=40)
    priority: int | None = Field(default=None, ge=1, le=4)
    address: Name | None = None
    location: Point | None = None
    summary: Text = ""
    unit_code: str | None = Field(default=None, max_length=64)


class IncidentPatch(StrictModel):
    priority: int | None = Field(default=None, ge=1, le=4)
    type_code: str | None = Field(default=None, min_length=1, max_length=40)
    summary: Text | None = None
    version: int | None = None


class StatusIn(StrictModel):
    status: IncidentStatus
    reason: Name | None = None


class NoteIn(StrictModel):
    text: Text = Field(min_length=1)


class AssignIn(StrictModel):
    unit_ids: list[int] = Field(min_length=1, max_length=20)


class UnitIn(StrictModel):
    call_sign: Name
    kind: Literal["patrol_car", "motorbike", "foot", "dog", "tactical", "traffic"]
    unit_code: str = Field(min_length=1, max_length=64)
    capabilities: list[Name] | None = None
    crew: list[str] = Field(default_factory=list, max_length=12)
    position: Point | None = None


class UnitStatusIn(StrictModel):
    status: UnitStatus
    reason: Name | None = None


class CrewIn(StrictModel):
    crew: list[str] = Field(max_length=12)


class AssignmentOut(StrictModel):
    id: int
    incident_id: int
    dispatch_unit_id: int | None
    call_sign: str
    status: str
    end_reason: str | None
    assigned_at: dt.datetime
    ended_at: dt.datetime | None
    travel_time_s: float | None
    distance_m: float | None
    route: list[Any] | None


class UnitOut(StrictModel):
    id: int
    call_sign: str
    kind: str
    capabilities: list[str]
    unit_id: int
    unit_code: str | None = None
    status: str
    lat: float | None
    lon: float | None
    position_at: dt.datetime | None
    incident_id: int | None
    crew: list[dict] = []
    version: int


class TimelineOut(StrictModel):
    id: int
    at: dt.datetime
    actor_id: int | None
    kind: str
    text: str
    data: dict | None


class AttachmentOut(StrictModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: dt.datetime


class IncidentOut(StrictModel):
    id: int
    unit_id: int
    type_code: str
    type_title: str | None = None
    priority: int
    status: str
    close_reason: str | None
    address: str
    lat: float
    lon: float
    summary: str
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    dispatched_at: dt.datetime | None
    en_route_at: dt.datetime | None
    on_scene_at: dt.datetime | None
    closed_at: dt.datetime | None
    version: int
    overdue: list[str] = []
    plan: dict[str, int] = {}


class IncidentDetail(IncidentOut):
    calls: list[CallOut] = []
    assignments: list[AssignmentOut] = []
    timeline: list[TimelineOut] = []
    attachments: list[AttachmentOut] = []
    allowed_transitions: list[str] = []


class RankedOut(StrictModel):
    rank: int
    unit_id: int
    call_sign: str
    kind: str
    capabilities: list[str]
    travel_time_s: float
    distance_m: float
    matches: list[str]
    fills: str | None
    suggested: bool
    explanation: str
    route: list[Any] | None = None


class RecommendationOut(StrictModel):
    incident_id: int
    plan: dict[str, int]
    ranked: list[RankedOut]
    missing: dict[str, int]
    unreachable: list[dict]
    considered: int


class SurroundingsOut(StrictModel):
    past_incidents: list[IncidentOut]
    open_calls: list[CallOut]
    hazards: dict


class BriefingOut(StrictModel):
    available: bool
    message: str
    content: dict | None = None
