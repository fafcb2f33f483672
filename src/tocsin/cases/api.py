"""Investigation routes under /api/v1/cases (uploads under /api/v1/cases-upload)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from tocsin.cases import files
from tocsin.cases.schemas import (
    AccessRequestIn,
    CaseIn,
    CasePatch,
    DecisionIn,
    EntityIn,
    EntityPatch,
    GrantIn,
    InvestigatorIn,
    LinkIn,
    MoveIn,
    SearchIn,
    WatchIn,
)
from tocsin.cases.search import Criteria
from tocsin.cases.service import get_service
from tocsin.core.errors import BadInput, TooLarge
from tocsin.core.http import PrincipalDep, RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["cases"])
UPLOAD_PREFIX = "/api/v1/cases-upload/"
UPLOAD_LIMIT = files.MAX_ATTACHMENT + 64 * 1024  # the route gives the clear error first


# Static paths first: /cases/search must not be read as /cases/{case_id}.
@router.post("/cases/search")
def search(body: SearchIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).search(p, Criteria(**body.model_dump()))


@router.get("/cases/hits")
def my_hits(p: PrincipalDep, rt: RuntimeDep) -> list[dict[str, Any]]:
    return get_service(rt).my_hits(p)


@router.post("/cases/watches", status_code=201)
def create_watch(body: WatchIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).create_watch(p, body.kind, body.model_dump())


@router.get("/cases/watches")
def list_watches(p: PrincipalDep, rt: RuntimeDep) -> list[dict[str, Any]]:
    return get_service(rt).list_watches(p)


@router.delete("/cases/watches/{watch_id}", status_code=204)
def delete_watch(watch_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    get_service(rt).delete_watch(p, watch_id)
    return Response(status_code=204)


@router.get("/cases/watch-alerts")
def watch_alerts(p: PrincipalDep, rt: RuntimeDep) -> list[dict[str, Any]]:
    return get_service(rt).watch_alerts(p)


@router.post("/cases/access-requests", status_code=201)
def request_access(body: AccessRequestIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).request_access(p, reason=body.reason, hit_id=body.hit_id,
                                          alert_id=body.alert_id)


@router.get("/cases/access-requests")
def list_requests(p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).list_requests(p)


@router.post("/cases/access-requests/{request_id}/decision")
def decide_request(request_id: int, body: DecisionIn, p: PrincipalDep,
                   rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).decide_request(p, request_id, grant=body.grant, note=body.note,
                                          days=body.days)


@router.get("/cases/audit")
def audit(p: PrincipalDep, rt: RuntimeDep, username: str | None = Query(None, max_length=64),
          case_id: int | None = None, limit: int = Query(200, ge=1, le=1000),
          before: int | None = None) -> list[dict[str, Any]]:
    return get_service(rt).audit(p, username=username, case_id=case_id, limit=limit,
                                 before=before)


@router.post("/cases", status_code=201)
def create_case(body: CaseIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    svc = get_service(rt)
    case = svc.create_case(p, title=body.title, summary=body.summary, unit_code=body.unit_code,
                           classification=body.classification)
    return {"id": case.id, "reference": case.reference}


@router.get("/cases")
def list_cases(p: PrincipalDep, rt: RuntimeDep, status: str | None = Query(None, max_length=20),
               limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0)
               ) -> list[dict[str, Any]]:
    return get_service(rt).list_cases(p, status=status, limit=limit, offset=offset)


@router.get("/cases/{case_id}")
def open_case(case_id: int, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).open_case(p, case_id)


@router.patch("/cases/{case_id}")
def update_case(case_id: int, body: CasePatch, p: PrincipalDep, rt: RuntimeDep
                ) -> dict[str, Any]:
    case = get_service(rt).update_case(p, case_id, body.model_dump(exclude_unset=True))
    return {"id": case.id, "reference": case.reference, "status": case.status}


@router.post("/cases/{case_id}/move", status_code=204)
def move_case(case_id: int, body: MoveIn, p: PrincipalDep, rt: RuntimeDep) -> Response:
    get_service(rt).move_case(p, case_id, body.unit_code)
    return Response(status_code=204)


@router.post("/cases/{case_id}/investigators", status_code=204)
def add_investigator(case_id: int, body: InvestigatorIn, p: PrincipalDep,
                     rt: RuntimeDep) -> Response:
    get_service(rt).add_investigator(p, case_id, body.username, body.role)
    return Response(status_code=204)


@router.post("/cases/{case_id}/grants", status_code=201)
def grant(case_id: int, body: GrantIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).grant(p, case_id, username=body.username, unit_code=body.unit_code,
                                 action=body.action, days=body.days)


@router.delete("/cases/{case_id}/grants/{share_id}", status_code=204)
def revoke_grant(case_id: int, share_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    get_service(rt).revoke_grant(p, case_id, share_id)
    return Response(status_code=204)


@router.post("/cases/{case_id}/entities", status_code=201)
def add_entity(case_id: int, body: EntityIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).add_entity(p, case_id, body.type, body.properties)


@router.patch("/cases/{case_id}/entities/{entity_id}")
def update_entity(case_id: int, entity_id: int, body: EntityPatch, p: PrincipalDep,
                  rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).update_entity(p, case_id, entity_id, body.properties)


@router.delete("/cases/{case_id}/entities/{entity_id}", status_code=204)
def delete_entity(case_id: int, entity_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    get_service(rt).delete_entity(p, case_id, entity_id)
    return Response(status_code=204)


@router.post("/cases/{case_id}/links", status_code=201)
def add_link(case_id: int, body: LinkIn, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    return get_service(rt).add_link(p, case_id, **body.model_dump())


@router.delete("/cases/{case_id}/links/{link_id}", status_code=204)
def delete_link(case_id: int, link_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    get_service(rt).delete_link(p, case_id, link_id)
    return Response(status_code=204)


@router.get("/cases/{case_id}/chart")
def chart(case_id: int, p: PrincipalDep, rt: RuntimeDep, entity_id: int | None = None,
          depth: int = Query(1, ge=1, le=6), path_to: int | None = None) -> dict[str, Any]:
    return get_service(rt).chart(p, case_id, entity_id=entity_id, depth=depth, path_to=path_to)


@router.get("/cases/{case_id}/hits")
def case_hits(case_id: int, p: PrincipalDep, rt: RuntimeDep) -> list[dict[str, Any]]:
    return get_service(rt).case_hits(p, case_id)


@router.get("/cases/{case_id}/export")
def export_case(case_id: int, p: PrincipalDep, rt: RuntimeDep) -> Response:
    import json

    data = get_service(rt).export_case(p, case_id)
    body = json.dumps(data, default=str, ensure_ascii=False, indent=1).encode()
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="case-{case_id}.json"',
        "Cache-Control": "no-store"})


@router.get("/cases/{case_id}/attachments/{attachment_id}")
def download(case_id: int, attachment_id: int, p: PrincipalDep, rt: RuntimeDep) -> FileResponse:
    path, media_type, filename = get_service(rt).open_attachment(p, case_id, attachment_id)
    return FileResponse(path, media_type=media_type, filename=filename, headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox"},
        content_disposition_type="attachment")


@router.post("/cases-upload/{case_id}", status_code=201)
async def upload(case_id: int, request: Request, p: PrincipalDep, rt: RuntimeDep,
                 filename: str = Query(..., max_length=200)) -> dict[str, Any]:
    svc = get_service(rt)
    files.check_filename(filename)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > files.MAX_ATTACHMENT:
        raise TooLarge(f"attachments are limited to {files.MAX_ATTACHMENT // (1024 * 1024)} MB",
                       code="attachment.too_large")
    await run_in_threadpool(svc.require_write, p, case_id)  # before reading a byte
    fd, tmp = svc.spool_upload()
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > files.MAX_ATTACHMENT:
                    raise TooLarge("attachments are limited to "
                                   f"{files.MAX_ATTACHMENT // (1024 * 1024)} MB",
                                   code="attachment.too_large")
                out.write(chunk)
        if size == 0:
            raise BadInput("the file is empty", code="attachment.empty")
        return await run_in_threadpool(svc.add_attachment, p, case_id, filename, Path(tmp))
    finally:
        os.unlink(tmp)
