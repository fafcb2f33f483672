"""Dispatch routes under /api/v1/dispatch."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response, UploadFile

from tocsin.core.errors import BadInput
from tocsin.core.http import PrincipalDep, RuntimeDep
from tocsin.dispatch import schemas as sc
from tocsin.dispatch.models import Incident
from tocsin.dispatch.service import TRANSITIONS, DispatchService, get_service
from tocsin.geo.service import check_point

router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"])


def _svc(rt) -> DispatchService:
    return get_service(rt)


def _incident_out(svc: DispatchService, inc: Incident) -> sc.IncidentOut:
    out = sc.IncidentOut.model_validate(inc)
    itype = svc.catalogue.types.get(inc.type_code)
    out.type_title = itype.title if itype else inc.type_code
    out.plan = itype.plan if itype else {}
    out.overdue = svc.overdue(inc)
    return out


def _units_out(svc: DispatchService, units) -> list[sc.UnitOut]:
    crews = svc.crews([u.id for u in units])
    out = []
    for u in units:
        o = sc.UnitOut.model_validate(u)
        o.crew = crews.get(u.id, [])
        out.append(o)
    return out


@router.get("/catalogue")
def catalogue(principal: PrincipalDep, rt: RuntimeDep) -> dict:
    return _svc(rt).catalogue.to_dict()


@router.get("/addresses")
def addresses(principal: PrincipalDep, rt: RuntimeDep, q: str | None = None,
              autocomplete: bool = True, limit: int = Query(8, ge=1, le=30)) -> list[dict]:
    """Address search with typo tolerance, for the call-taker's address box."""
    return _svc(rt).geo.search_json(q, limit=limit, autocomplete=autocomplete)


@router.get("/reverse")
def reverse(principal: PrincipalDep, rt: RuntimeDep, lat: float | None = None,
            lon: float | None = None) -> dict:
    """The address at a point clicked on the map (refused off the map)."""
    svc = _svc(rt)
    lat, lon = check_point(lat, lon)
    svc.check_on_map(lat, lon)
    return svc.geo.reverse_json(lat, lon)


# Calls ------------------------------------------------------------------
@router.post("/calls", status_code=201, response_model=sc.CallCreated)
def create_call(body: sc.CallIn, principal: PrincipalDep, rt: RuntimeDep) -> sc.CallCreated:
    call, dups = _svc(rt).create_call(principal, body)
    out = sc.CallCreated.model_validate(call)
    out.duplicates = [sc.DuplicateOut(**d) for d in dups]
    return out


@router.post("/parse-location")
def parse_location(body: dict, principal: PrincipalDep, rt: RuntimeDep) -> dict:
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > 200_000:
        raise BadInput("give the location text as {text: ...}", code="invalid_input")
    return _svc(rt).parse_caller_location(text)


def _calls_out(svc: DispatchService, calls) -> list[sc.CallOut]:
    return [sc.CallOut.model_validate(c) for c in calls]


@router.get("/calls", response_model=list[sc.CallOut])
def list_calls(principal: PrincipalDep, rt: RuntimeDep,
               status: str | None = Query("open", pattern="^(open|linked|closed|all)$"),
               limit: int = Query(200, ge=1, le=1000)) -> list:
    svc = _svc(rt)
    return _calls_out(svc, svc.list_calls(principal, None if status == "all" else status, limit))


@router.get("/calls/{call_id}", response_model=sc.CallOut)
def get_call(call_id: int, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _calls_out(svc, [svc.get_call(principal, call_id)])[0]


@router.post("/calls/{call_id}/close", response_model=sc.CallOut)
def close_call(call_id: int, body: sc.CallCloseIn, principal: PrincipalDep, rt: RuntimeDep):
    """Close a call that needs no incident (hoax, advice given), with a reason."""
    svc = _svc(rt)
    return _calls_out(svc, [svc.close_call(principal, call_id, body.reason)])[0]


@router.patch("/calls/{call_id}", response_model=sc.CallOut)
def update_call(call_id: int, body: sc.CallUpdate, principal: PrincipalDep, rt: RuntimeDep):
    return _svc(rt).update_call(principal, call_id, body)


@router.get("/calls/{call_id}/duplicates", response_model=list[sc.DuplicateOut])
def call_duplicates(call_id: int, principal: PrincipalDep, rt: RuntimeDep) -> list:
    return _svc(rt).duplicates_for_call(principal, call_id)


@router.post("/calls/{call_id}/link", response_model=sc.CallOut)
def link_call(call_id: int, body: sc.LinkIn, principal: PrincipalDep, rt: RuntimeDep):
    return _svc(rt).link_call(principal, call_id, body.incident_id)


# Incidents ----------------------------------------------------------------
@router.post("/incidents", status_code=201, response_model=sc.IncidentOut)
def create_incident(body: sc.IncidentIn, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _incident_out(svc, svc.create_incident(principal, body))


@router.get("/incidents", response_model=list[sc.IncidentOut])
def list_incidents(principal: PrincipalDep, rt: RuntimeDep, all: bool = False,
                   limit: int = Query(500, ge=1, le=2000)) -> list:
    svc = _svc(rt)
    return [_incident_out(svc, i) for i in svc.list_incidents(principal, open_only=not all,
                                                               limit=limit)]


@router.get("/incidents/{incident_id}", response_model=sc.IncidentDetail)
def get_incident(incident_id: int, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    d = svc.get_incident(principal, incident_id)
    out = sc.IncidentDetail(**_incident_out(svc, d["incident"]).model_dump())
    out.calls = [sc.CallOut.model_validate(c) for c in d["calls"]]
    out.assignments = [sc.AssignmentOut.model_validate(a) for a in d["assignments"]]
    out.timeline = [sc.TimelineOut.model_validate(t) for t in d["timeline"]]
    out.attachments = [sc.AttachmentOut.model_validate(a) for a in d["attachments"]]
    out.allowed_transitions = sorted(TRANSITIONS.get(out.status, set()))
    return out


@router.patch("/incidents/{incident_id}", response_model=sc.IncidentOut)
def patch_incident(incident_id: int, body: sc.IncidentPatch, principal: PrincipalDep,
                   rt: RuntimeDep):
    svc = _svc(rt)
    return _incident_out(svc, svc.patch_incident(principal, incident_id, body))


@router.post("/incidents/{incident_id}/status", response_model=sc.IncidentOut)
def set_status(incident_id: int, body: sc.StatusIn, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _incident_out(svc, svc.set_status(principal, incident_id, body.status, body.reason))


@router.post("/incidents/{incident_id}/notes", status_code=201, response_model=sc.TimelineOut)
def add_note(incident_id: int, body: sc.NoteIn, principal: PrincipalDep, rt: RuntimeDep):
    return _svc(rt).add_note(principal, incident_id, body.text)


@router.post("/incidents/{incident_id}/attachments", status_code=201,
             response_model=sc.AttachmentOut)
async def add_attachment(incident_id: int, file: UploadFile, principal: PrincipalDep,
                         rt: RuntimeDep):
    import asyncio

    data = await file.read()
    return await asyncio.to_thread(_svc(rt).add_attachment, principal, incident_id,
                                   file.filename or "file", file.content_type or "", data)


@router.get("/incidents/{incident_id}/attachments/{attachment_id}")
def get_attachment(incident_id: int, attachment_id: int, principal: PrincipalDep,
                   rt: RuntimeDep) -> Response:
    att, data = _svc(rt).attachment_content(principal, incident_id, attachment_id)
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{att.filename.replace(chr(34), "")}"',
        "X-Content-Type-Options": "nosniff"})


@router.get("/incidents/{incident_id}/recommendations", response_model=sc.RecommendationOut)
def recommendations(incident_id: int, principal: PrincipalDep, rt: RuntimeDep,
                    limit: int = Query(10, ge=1, le=100)):
    inc, rec = _svc(rt).recommend(principal, incident_id, limit)
    plan = _svc(rt).catalogue.types.get(inc.type_code)
    return sc.RecommendationOut(
        incident_id=inc.id, plan=plan.plan if plan else {},
        ranked=[sc.RankedOut(**{**r.__dict__, "route": [list(p) for p in r.route]
                                if r.route else None}) for r in rec.ranked],
        missing=rec.missing, unreachable=rec.unreachable, considered=rec.considered)


@router.post("/incidents/{incident_id}/assign", status_code=201,
             response_model=list[sc.AssignmentOut])
def assign(incident_id: int, body: sc.AssignIn, principal: PrincipalDep, rt: RuntimeDep):
    return _svc(rt).assign(principal, incident_id, body.unit_ids)


@router.get("/incidents/{incident_id}/surroundings", response_model=sc.SurroundingsOut)
def surroundings(incident_id: int, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    d = svc.surroundings(principal, incident_id)
    return sc.SurroundingsOut(past_incidents=[_incident_out(svc, i) for i in d["past_incidents"]],
                              open_calls=[sc.CallOut.model_validate(c) for c in d["open_calls"]],
                              hazards=d["hazards"])


@router.get("/incidents/{incident_id}/briefing", response_model=sc.BriefingOut)
def briefing(incident_id: int, principal: PrincipalDep, rt: RuntimeDep):
    return _svc(rt).incident_briefing(principal, incident_id)


# Units ----------------------------------------------------------------------
@router.post("/units", status_code=201, response_model=sc.UnitOut)
def create_unit(body: sc.UnitIn, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _units_out(svc, [svc.create_unit(principal, body)])[0]


@router.get("/units", response_model=list[sc.UnitOut])
def list_units(principal: PrincipalDep, rt: RuntimeDep,
               status: str | None = Query(None, pattern="^[a-z_]+$")) -> list:
    svc = _svc(rt)
    return _units_out(svc, svc.list_units(principal, status))


@router.get("/units/mine", response_model=list[sc.UnitOut])
def my_units(principal: PrincipalDep, rt: RuntimeDep) -> list:
    svc = _svc(rt)
    return _units_out(svc, svc.my_units(principal))


@router.get("/units/{unit_id}", response_model=sc.UnitOut)
def get_unit(unit_id: int, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _units_out(svc, [svc.get_unit(principal, unit_id)])[0]


@router.get("/units/{unit_id}/assignment")
def unit_assignment(unit_id: int, principal: PrincipalDep, rt: RuntimeDep) -> dict:
    svc = _svc(rt)
    d = svc.assignment_for_unit(principal, unit_id)
    if d is None:
        return {"assignment": None, "incident": None, "briefing": None}
    return {"assignment": sc.AssignmentOut.model_validate(d["assignment"]).model_dump(mode="json")
            if d["assignment"] else None,
            "incident": _incident_out(svc, d["incident"]).model_dump(mode="json"),
            "summary": d["incident"].summary, "briefing": d["briefing"]}


@router.post("/units/{unit_id}/status", response_model=sc.UnitOut)
def unit_status(unit_id: int, body: sc.UnitStatusIn, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _units_out(svc, [svc.set_unit_status(principal, unit_id, body.status, body.reason)])[0]


@router.post("/units/{unit_id}/position", response_model=sc.UnitOut)
def unit_position(unit_id: int, body: sc.Point, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _units_out(svc, [svc.update_position(principal, unit_id, body.lat, body.lon)])[0]


@router.put("/units/{unit_id}/crew", response_model=sc.UnitOut)
def unit_crew(unit_id: int, body: sc.CrewIn, principal: PrincipalDep, rt: RuntimeDep):
    svc = _svc(rt)
    return _units_out(svc, [svc.set_crew(principal, unit_id, body.crew)])[0]


@router.delete("/units/{unit_id}", status_code=204)
def delete_unit(unit_id: int, principal: PrincipalDep, rt: RuntimeDep,
                request: Request) -> Response:
    _svc(rt).delete_unit(principal, unit_id, request.query_params.get("reason") or
                         "unit removed")
    return Response(status_code=204)
