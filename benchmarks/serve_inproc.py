"""Benchmark: the in-process cost of one request, ``mlpipe.serve`` vs the bare app.

No server and no socket: each ASGI app (``mlpipe.serve``'s, with the Iris model
registered as ``benchmarks/serve.py`` does, and ``benchmarks/bare_app.py``) is
called directly, ``--requests`` times in a row on one event loop, with the same
single-row ``POST /predict`` that wrk sends. What is left of the request is the
app's own work: routing, middleware, parsing and validation, the prediction, the
inference log and the metrics. The figures are the best and the median of
``--rounds`` rounds (alternating apps), in CPU microseconds per request (the
thread's CPU time, which a loaded machine disturbs far less than the wall
clock); ``--profile`` also prints where ``mlpipe.serve``'s time goes (cProfile,
the top functions by own time).

    .venv/bin/python benchmarks/serve_inproc.py
    .venv/bin/python benchmarks/serve_inproc.py --requests 20000 --profile

Every answer is checked (status 200, the expected label) before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import serve as bench  # benchmarks/serve.py: the registry, the sample row

ASGIApp = Callable[..., Awaitable[None]]


def scope_of(body: bytes) -> dict[str, Any]:
    """The ASGI scope of a single-row ``POST /predict`` as uvicorn builds it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }


async def call(app: ASGIApp, body: bytes) -> tuple[int, bytes]:
    """One request through ``app``: its status and body."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope_of(body), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def per_request_us(app: ASGIApp, body: bytes, requests: int) -> float:
    """CPU microseconds (of this thread) per request over ``requests`` calls in a row."""
    scope = scope_of(body)
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    start = time.thread_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.thread_time() - start) / requests * 1e6


async def lifespan_start(app: ASGIApp) -> None:
    """Run the app's start-up (``mlpipe.serve`` starts loading its model there)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    asyncio.get_running_loop().create_task(app({"type": "lifespan", "state": {}}, receive, send))
    await started.wait()


def build_apps(tmp: Path) -> tuple[ASGIApp, ASGIApp, str]:
    """``mlpipe.serve``'s app (model loaded) and the bare app, and the expected label."""
    uri, model = bench.register_model(tmp)
    os.environ.update(bench.server_env(tmp, uri))
    from bare_app import app as bare

    from mlpipe import serve

    app = serve.create_app(serve.load_settings())
    asyncio.run(lifespan_start(app))
    if not app.state.serve.loaded.wait(120) or app.state.serve.model is None:
        sys.exit(f"the model did not load: {app.state.serve.error}")
    import pandas as pd

    row = bench.sample_rows()[1]
    return app, bare, str(model.predict(pd.DataFrame([row]))[0])


def check(app: ASGIApp, body: bytes, label: str | None) -> None:
    """Exit unless ``app`` answers 200 (and ``label``, when given)."""
    status, answer = asyncio.run(call(app, body))
    if status != 200 or (label is not None and json.loads(answer)["prediction"] != label):
        sys.exit(f"unexpected answer {status}: {answer[:300]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round (3000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per app (default: 7)")
    parser.add_argument("--profile", action="store_true", help="profile mlpipe.serve's requests")
    parser.add_argument("--top", type=int, default=25, help="functions the profile lists (25)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        app, bare, label = build_apps(Path(tmp))
        body = json.dumps(bench.sample_rows()[1]).encode()
        check(app, body, label)
        check(bare, body, None)
        apps = {"mlpipe.serve": app, bench.BARE: bare}
        times: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.rounds):  # alternate, so a load change hits both
            for name, one in apps.items():
                times[name].append(asyncio.run(per_request_us(one, body, args.requests)))
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(per_request_us(app, body, args.requests))
            profiler.disable()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{args.rounds} rounds of {args.requests} single-row POST /predict, in-process (ASGI)")
    print(f"{'CPU us/request':>40}{'best':>8}{'median':>8}   rounds")
    for name, values in times.items():
        spread = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:40}{min(values):8.1f}{statistics.median(values):8.1f}   {spread}")
    for kind, pick in (("best", min), ("median", statistics.median)):
        ours, bare_us = pick(times["mlpipe.serve"]), pick(times[bench.BARE])
        print(
            f"mlpipe.serve, {kind} round: its own work {ours - bare_us:.1f} us, "
            f"{bare_us / ours:.0%} of the bare app's rate"
        )
    if args.profile:
        print()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
