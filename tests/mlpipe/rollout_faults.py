"""FAULT INJECTION for the rollout's slow tests: ``mlpipe.serve`` with latency or 500s added.

Not a mock of the backend: the real app (real model from the registry, real
Prometheus metrics) whose ``/predict`` endpoint is wrapped. The serving app answers
``/predict`` from its ``GuardMiddleware`` (``serve.direct_routes``), past every
middleware below it, so the fault wraps the endpoint that middleware calls; the
backend's own metrics count what the fault does::

    MLPIPE_FAULT_DELAY_S=0.3 uvicorn rollout_faults:create_app --factory --app-dir tests/mlpipe
    MLPIPE_FAULT_EVERY=3     ...   # every 3rd /predict answered 500 (without predicting)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlpipe import serve

Endpoint = Callable[[Request], Awaitable[Response]]


def faulty(endpoint: Endpoint, delay: float, every: int) -> Endpoint:
    """``endpoint``, delayed by ``delay`` seconds, and answering every ``every``-th call with a 500."""
    seen = 0

    async def wrapped(request: Request) -> Response:
        nonlocal seen
        seen += 1
        if delay:
            await asyncio.sleep(delay)
        if every and seen % every == 0:
            return JSONResponse({"detail": "injected fault"}, status_code=500)
        return await endpoint(request)

    return wrapped


def create_app() -> Any:
    """The serving app whose direct ``/predict`` route carries the faults of the environment."""
    app = serve.create_app()
    delay = float(os.environ.get("MLPIPE_FAULT_DELAY_S", "0"))
    every = int(os.environ.get("MLPIPE_FAULT_EVERY", "0"))
    routes = app.router.routes
    for i, route in enumerate(routes):
        if type(route) is Route and route.path == "/predict":
            wrapped = faulty(route.endpoint, delay, every)
            routes[i] = Route(
                route.path, wrapped, methods=list(route.methods or ()), name=route.name
            )
            return app
    raise RuntimeError("mlpipe.serve has no direct /predict route to put the faults on")
