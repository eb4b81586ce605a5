"""Admin console (``/admin``) and JSON API (``/admin/api``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from gateway.server import Gateway


def routes(gw: Gateway) -> list[BaseRoute]:
    return []
