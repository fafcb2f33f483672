"""HTTP plumbing shared by every module: errors as JSON, body limits, who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tocsin.core.access import Principal
from tocsin.core.errors import TocsinError, TooManyRequests, Unauthorized
from tocsin.core.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token", code="token_missing")
    return token.strip()


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        principal = get_runtime(request).identity.authenticate(bearer_token(request))
        request.state.principal = principal
    return principal


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


def error_response(exc: TocsinError) -> JSONResponse:
    headers = {}
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TocsinError)
    async def _tocsin(_req: Request, exc: TocsinError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for err in exc.errors():
            # Never echo the rejected input back: it may be a password or personal data.
            details.append({"loc": [str(p) for p in err.get("loc", ())], "type": err.get("type"),
                            "message": err.get("msg")})
        body = {"error": {"code": "invalid_input", "message": "request does not match the schema",
                          "details": details}}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
                 413: "too_large"}
        body = {"error": {"code": codes.get(exc.status_code, f"http_{exc.status_code}"),
                          "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes, declared or streamed (413).

    Routes that take large uploads register their path prefix in ``overrides``.
    """

    BUFFER_MAX = 8 * 1024 * 1024

    def __init__(self, app: ASGIApp, limit: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        self.overrides = overrides or {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await _too_large(send, limit)
                    return
        if limit <= self.BUFFER_MAX:
            # Read the whole (small) body first, so an oversize one is refused before any
            # route sees it, whether or not it declared its length.
            chunks, seen, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    await self.app(scope, _replay([message]), send)
                    return
                seen += len(message.get("body", b""))
                if seen > limit:
                    await _too_large(send, limit)
                    return
                chunks.append(message)
                more = message.get("more_body", False)
            await self.app(scope, _replay(chunks, receive), send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(send, limit)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    import json

    body = json.dumps({"error": {"code": "too_large",
                                 "message": f"request body over {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
