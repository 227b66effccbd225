"""Malformed HTTP (a bad header byte, an over-long header line) is answered without echoing the request.

aiohttp answers a request it cannot parse itself, before any middleware runs: its plain-text 400 body and its
ERROR log line quote the offending raw line, which is where the caller's ``Authorization`` and
``X-Upstream-Authorization`` keys are. This replaces that one error path of aiohttp's protocol handler
(``RequestHandler._make_error_handler``) with one that answers the status and its phrase only, and logs neither
the raw text nor a traceback. Installed once, when the web package is imported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web_protocol
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse


def _quiet_error_handler(self: Any, err_info: Any) -> Callable[[BaseRequest], Awaitable[StreamResponse]]:
    status = int(getattr(err_info, "status", 400) or 400)

    async def handler(request: BaseRequest) -> StreamResponse:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return self.handle_error(request, status, None, f"{status} {phrase}: the request could not be parsed")

    return handler


def install() -> None:
    web_protocol.RequestHandler._make_error_handler = _quiet_error_handler  # type: ignore[method-assign]
