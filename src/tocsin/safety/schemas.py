"""API shapes of field safety: what comes in (strict) and the briefing that goes out."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from tocsin.core.schemas import Name, StrictModel, Text, _no_control_chars, _single_line

PERSON_CATEGORIES = ("armed", "violent_towards_police", "dangerous_dog", "infectious",
                     "mental_health_crisis", "wanted", "protection_order")
PLACE_CATEGORIES = ("hazardous_materials", "fortified_door", "access_code", "dangerous_dog")
# health information is need-to-know: these follow the unit tree, the rest are force-wide
SENSITIVE_CATEGORIES = frozenset({"infectious", "mental_health_crisis"})
LABELS = {
    "armed": "Armed", "violent_towards_police": "Violent towards police",
    "dangerous_dog": "Dangerous dog", "infectious": "Infectious disease",
    "mental_health_crisis": "Mental health crisis", "wanted": "Wanted",
    "protection_order": "Protection order", "hazardous_materials": "Hazardous materials",
    "fortified_door": "Fortified door", "access_code": "Access code",
}
# most dangerous first: the order of the briefing
SEVERITY = ["armed", "violent_towards_police", "wanted", "dangerous_dog", "hazardous_materials",
            "fortified_door", "infectious", "mental_health_crisis", "protection_order",
            "access_code"]
ROLES = ("suspect", "victim", "witness", "complainant", "occupant", "subject", "other")
MAX_FLAG_DAYS = 5 * 366


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "UNKNOWN")
    return name.split(" ")[0]


def _one_script_per_word(value: str) -> str:
    """Refuse a word mixing scripts (``Pаul`` with a Cyrillic ``а``): a homoglyph that
    would hide a person from every search. Whole names in one script are fine."""
    for word in value.split():
        scripts = {_script(c) for c in word if unicodedata.category(c).startswith("L")}
        if len(scripts) > 1:
            raise ValueError(f"mixes scripts in one word ({', '.join(sorted(scripts))})")
    return value


PersonName = Annotated[str, Field(min_length=1, max_length=400), AfterValidator(_single_line),
                       AfterValidator(_one_script_per_word)]
Source = Annotated[str, Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_.-]*$")]


class IdentityRecordIn(StrictModel):
    source: Source
    source_ref: Annotated[str, Field(max_length=120), AfterValidator(_single_line)] | None = None
    given_names: PersonName
    surname: PersonName
    birth_date: Annotated[str, Field(max_length=40)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    birth_name: PersonName | None = None  # maiden name
    usage_name: PersonName | None = None  # married or usage name
    address: Annotated[str, Field(min_length=1, max_length=300),
                       AfterValidator(_single_line)] | None = None
    id_number: Annotated[str, Field(min_length=1, max_length=40),
                         AfterValidator(_single_line)] | None = None


class ExpectedPersonIn(StrictModel):
    """Someone expected at the address, known by name and birth date, not by id."""

    given_names: PersonName
    surname: PersonName
    birth_date: Annotated[str, Field(max_length=40)] | None = None


class BriefingIn(StrictModel):
    """A briefing for a point, or for an address (geocoded), and the persons expected."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    address: Annotated[str, Field(min_length=1, max_length=300),
                       AfterValidator(_single_line)] | None = None
    radius_m: float = 50
    person_ids: list[int] = Field(default_factory=list, max_length=100)
    expected: list[ExpectedPersonIn] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _where(self) -> BriefingIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        if self.lat is None and not self.address:
            raise ValueError("give a point (lat, lon) or an address")
        return self


class MergeIn(StrictModel):
    target_id: int
    source_id: int
    reason: Annotated[str, Field(min_length=3, max_length=500), AfterValidator(_single_line)]
    suggestion_id: int | None = None
    target_version: int | None = None
    source_version: int | None = None


class SuggestionDecisionIn(StrictModel):
    decision: Literal["reject"]


class PlaceIn(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: Annotated[str, Field(max_length=300), AfterValidator(_single_line)] | None = None


class FlagIn(StrictModel):
    category: str
    person_id: int | None = None
    place: PlaceIn | None = None
    reason: Annotated[str, Field(min_length=3, max_length=2000),
                      AfterValidator(_no_control_chars)]
    source: Name
    expires_at: dt.datetime

    @model_validator(mode="after")
    def _subject(self) -> FlagIn:
        if (self.person_id is None) == (self.place is None):
            raise ValueError("a flag is on exactly one subject: person_id or place")
        allowed = PERSON_CATEGORIES if self.person_id is not None else PLACE_CATEGORIES
        if self.category not in allowed:
            raise ValueError(f"category must be one of {', '.join(allowed)} for this subject")
        return self

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z)")
        return v.astimezone(dt.UTC)


class FlagReviewIn(StrictModel):
    decision: Literal["approve", "reject", "withdraw", "renew"]
    version: int
    note: Annotated[str, Field(max_length=500), AfterValidator(_no_control_chars)] | None = None
    expires_at: dt.datetime | None = None

    @model_validator(mode="after")
    def _renew(self) -> FlagReviewIn:
        if self.decision == "renew" and self.expires_at is None:
            raise ValueError("renew needs a new expires_at")
        if self.expires_at is not None:
            if self.expires_at.tzinfo is None:
                raise ValueError("expires_at needs a time zone")
            self.expires_at = self.expires_at.astimezone(dt.UTC)
        return self


class OperationPersonIn(StrictModel):
    person_id: int
    role: Literal["suspect", "victim", "witness", "complainant", "occupant", "subject", "other"]


class OperationIn(StrictModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: Annotated[str, Field(max_length=300), AfterValidator(_single_line)] | None = None
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    nature: Annotated[str, Field(min_length=2, max_length=80), AfterValidator(_single_line)]
    outcome: Annotated[str, Field(min_length=2, max_length=80), AfterValidator(_single_line)]
    summary: Text | None = None
    force_used: bool = False
    injury: bool = False
    units: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list,
                                                                         max_length=50)
    persons: list[OperationPersonIn] = Field(default_factory=list, max_length=100)
    client_ref: Annotated[str, Field(min_length=1, max_length=80)] | None = None

    @model_validator(mode="after")
    def _times(self) -> OperationIn:
        for name in ("started_at", "ended_at"):
            v = getattr(self, name)
            if v is not None and v.tzinfo is None:
                raise ValueError(f"{name} needs a time zone")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        ids = [p.person_id for p in self.persons]
        if len(set(ids)) != len(ids):
            raise ValueError("a person is listed twice; give one role per person")
        return self
