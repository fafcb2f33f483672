"""API shapes of the investigations module (requests are strict: unknown fields fail)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tocsin.core.schemas import Name, StrictModel, Text

EntityType = Literal["person", "vehicle", "phone", "email", "address", "document", "weapon",
                     "bank_account", "event"]
LinkType = Literal["owns", "uses", "called", "met", "lives_at", "associate_of"]
Status = Literal["open", "suspended", "closed"]
Classification = Literal["restricted", "confidential", "secret"]


class CaseIn(StrictModel):
    title: Name
    summary: Text = ""
    unit_code: str | None = Field(default=None, max_length=64)
    classification: Classification = "restricted"


class CasePatch(StrictModel):
    title: Name | None = None
    summary: Text | None = None
    status: Status | None = None
    classification: Classification | None = None
    contact_username: str | None = Field(default=None, max_length=64)


class MoveIn(StrictModel):
    unit_code: str = Field(max_length=64)


class InvestigatorIn(StrictModel):
    username: str = Field(max_length=64)
    role: Literal["lead", "member"] = "member"


class GrantIn(StrictModel):
    username: str | None = Field(default=None, max_length=64)
    unit_code: str | None = Field(default=None, max_length=64)
    action: Literal["read", "write"] = "read"
    days: int = Field(default=90, ge=1, le=365)


class EntityIn(StrictModel):
    type: EntityType
    properties: dict[str, Any] = Field(default_factory=dict)


class EntityPatch(StrictModel):
    properties: dict[str, Any]


class LinkIn(StrictModel):
    source_id: int
    target_id: int
    type: LinkType
    start_date: str | None = Field(default=None, max_length=10)
    end_date: str | None = Field(default=None, max_length=10)
    source: Name | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


class SearchIn(StrictModel):
    q: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=200)
    birth_date: str | None = Field(default=None, max_length=10)
    dob_tolerance_days: int = Field(default=0, ge=0, le=3660)
    plate: str | None = Field(default=None, max_length=20)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=128)
    vin: str | None = Field(default=None, max_length=40)
    iban: str | None = Field(default=None, max_length=40)
    document: str | None = Field(default=None, max_length=40)
    serial: str | None = Field(default=None, max_length=40)
    types: list[str] | None = Field(default=None, max_length=12)
    status: list[Status] | None = None
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=10_000)


class WatchIn(StrictModel):
    kind: Literal["phone", "plate", "email", "vin", "iban", "doc", "serial", "person"]
    value: str | None = Field(default=None, max_length=128)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    birth_date: str | None = Field(default=None, max_length=10)


class AccessRequestIn(StrictModel):
    hit_id: int | None = None
    alert_id: int | None = None
    reason: str = Field(min_length=3, max_length=1000)


class DecisionIn(StrictModel):
    grant: bool
    note: str | None = Field(default=None, max_length=1000)
    days: int = Field(default=90, ge=1, le=365)
