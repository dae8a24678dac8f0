"""FAULT INJECTION for the rollout's slow tests: ``mlpipe.serve`` with latency or 500s added.

Not a mock of the backend: the real app (real model from the registry, real
Prometheus metrics), with one pure ASGI middleware placed *inside* its
``GuardMiddleware``, so that the backend's own metrics count what the fault does::

    MLPIPE_FAULT_DELAY_S=0.3 uvicorn rollout_faults:create_app --factory --app-dir tests/mlpipe
    MLPIPE_FAULT_EVERY=3     ...   # every 3rd /predict answered 500 (without predicting)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from starlette.middleware import Middleware

from mlpipe import serve


class Faults:
    """ASGI middleware: delay every ``/predict`` or answer every ``every``-th with a 500."""

    def __init__(self, app: Any, delay: float, every: int) -> None:
        self.app, self.delay, self.every, self.seen = app, delay, every, 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/predict":
            self.seen += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.every and self.seen % self.every == 0:
                body = b'{"detail": "injected fault"}'
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app() -> Any:
    """The serving app with :class:`Faults` inside its metrics middleware."""
    app = serve.create_app()
    delay = float(os.environ.get("MLPIPE_FAULT_DELAY_S", "0"))
    every = int(os.environ.get("MLPIPE_FAULT_EVERY", "0"))
    app.user_middleware.append(Middleware(Faults, delay=delay, every=every))  # innermost
    return app
