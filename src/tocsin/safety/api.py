"""Field safety routes under /api/v1/safety: persons, merges, flags, operations, briefing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tocsin.core.errors import BadInput
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.safety import service
from tocsin.safety.schemas import (
    BriefingIn,
    FlagIn,
    FlagReviewIn,
    IdentityRecordIn,
    MergeIn,
    OperationIn,
    SuggestionDecisionIn,
)

router = APIRouter(prefix="/api/v1/safety", tags=["safety"])


def _ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput("persons must be a comma-separated list of person ids",
                       code="safety.briefing.bad_persons") from None
    return ids


@router.get("/briefing")
def briefing(rt: RuntimeDep, principal: PrincipalDep,
             lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
             lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
             address: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
             radius: Annotated[float, Query()] = 50,
             persons: Annotated[str | None, Query(max_length=400)] = None) -> dict[str, Any]:
    """A briefing for a point or an address. Expected persons known by name and birth
    date go in the body of ``POST /briefing`` (names stay out of URLs and logs)."""
    if (lat is None) != (lon is None):
        raise BadInput("give both lat and lon, or neither", code="safety.briefing.bad_point")
    return service.briefing_for(rt, principal, lat, lon, radius_m=radius,
                                person_ids=_ids(persons), address=address)


@router.post("/briefing")
def briefing_post(body: BriefingIn, rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.briefing_for(rt, principal, body.lat, body.lon, radius_m=body.radius_m,
                                person_ids=body.person_ids, address=body.address,
                                expected=body.expected)


@router.post("/persons", status_code=201)
def create_person(body: IdentityRecordIn, rt: RuntimeDep, principal: PrincipalDep
                  ) -> dict[str, Any]:
    return service.add_record(rt, principal, body)


@router.post("/persons/{person_id}/records", status_code=201)
def add_record(person_id: int, body: IdentityRecordIn, rt: RuntimeDep, principal: PrincipalDep
               ) -> dict[str, Any]:
    return service.add_record(rt, principal, body, person_id=person_id)


@router.get("/persons")
def search_persons(rt: RuntimeDep, principal: PrincipalDep,
                   surname: Annotated[str, Query(min_length=1, max_length=200)],
                   given_names: Annotated[str, Query(min_length=1, max_length=400)],
                   birth_date: Annotated[str | None, Query(max_length=40)] = None
                   ) -> dict[str, Any]:
    return service.search_persons(rt, principal, given_names, surname, birth_date)


@router.get("/persons/{person_id}")
def get_person(person_id: int, rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.get_person(rt, principal, person_id)


@router.post("/merges", status_code=201)
def merge(body: MergeIn, rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.merge(rt, principal, body)


@router.post("/merges/{merge_id}/undo")
def unmerge(merge_id: int, rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.unmerge(rt, principal, merge_id)


@router.get("/merge-suggestions")
def suggestions(rt: RuntimeDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    return service.list_suggestions(rt, principal)


@router.post("/merge-suggestions/{suggestion_id}")
def decide_suggestion(suggestion_id: int, body: SuggestionDecisionIn, rt: RuntimeDep,
                      principal: PrincipalDep) -> dict[str, Any]:
    return service.reject_suggestion(rt, principal, suggestion_id)


@router.post("/flags", status_code=201)
def create_flag(body: FlagIn, rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.create_flag(rt, principal, body)


@router.post("/flags/{flag_id}/review")
def review_flag(flag_id: int, body: FlagReviewIn, rt: RuntimeDep, principal: PrincipalDep
                ) -> dict[str, Any]:
    return service.review_flag(rt, principal, flag_id, body)


@router.get("/review-queue")
def review_queue(rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.review_queue(rt, principal)


@router.post("/operations", status_code=201)
def record_operation(body: OperationIn, rt: RuntimeDep, principal: PrincipalDep
                     ) -> dict[str, Any]:
    return service.record_operation(rt, principal, body)


@router.get("/operations/{operation_id}")
def get_operation(operation_id: int, rt: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
    return service.get_operation(rt, principal, operation_id)
