"""Benchmark: the rollout's router (``mlpipe.rollout.Router``) in front of one ``mlpipe.serve``.

In a temporary folder the Iris model is registered as ``iris-classifier@champion``
(``benchmarks/serve.py``'s ``register_model``). Then, on loopback, with one uvicorn
worker each:

1. ``uvicorn mlpipe.serve:create_app --factory``: the backend, hit directly;
2. ``uvicorn mlpipe.rollout:router_from_env --factory`` in front of that same
   backend (weight 0: every request to the stable side, through the sticky hash,
   the pooled keep-alive ``httpx.AsyncClient`` and back).

The same wrk run (threads, connections, duration, after a warm-up) hits the
backend directly and through the router, alternating, ``--rounds`` times; each
side keeps its round of median req/s. Both must answer a few known rows with the
right species first, and every wrk answer must be a 2xx.

    .venv/bin/python benchmarks/router.py                # -t1 -c8 -d10s, 3 rounds
    make bench-router                                    # installs wrk first

Goals: the router adds at most 1.5 ms to the p50 latency, and keeps at least 70 %
of the backend's requests per second. A missed goal is a measurement, not a
failure: the script exits 0 unless something failed to run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import serve as bench  # benchmarks/serve.py: the registry, the servers, wrk

GOAL_ADDED_P50_MS = 1.5
GOAL_RATIO = 0.70


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.wrk_arguments(parser, rounds=3, per="side")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `sudo apt-get install wrk` (or `make bench-router`).")

    with (
        tempfile.TemporaryDirectory(prefix="bench-router-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp)
        uri, model = bench.register_model(tmp)
        env = bench.server_env(tmp, uri)
        direct = bench.AppTarget("backend directly", bench.free_port(), "/ready", "/predict",
                                 "/predict/batch")  # fmt: skip
        routed = bench.AppTarget("through the router", bench.free_port(), "/health", "/predict",
                                 "/predict/batch")  # fmt: skip
        uvicorn = [str(bench.BIN / "python"), "-m", "uvicorn", "--host", "127.0.0.1"]
        uvicorn += ["--workers", "1", "--no-access-log", "--factory"]
        backend_cmd = [*uvicorn, "--port", str(direct.port), "mlpipe.serve:create_app"]
        router_cmd = [*uvicorn, "--port", str(routed.port), "mlpipe.rollout:router_from_env"]
        router_env = {
            **env,
            "MLPIPE_ROLLOUT_STABLE_URL": f"http://127.0.0.1:{direct.port}",
            "MLPIPE_ROLLOUT_CANARY_URL": f"http://127.0.0.1:{direct.port}",
            "MLPIPE_ROLLOUT_WEIGHT": "0",
        }
        pids = {}
        for name, target, cmd, target_env in [
            ("backend", direct, backend_cmd, env),
            ("router", routed, router_cmd, router_env),
        ]:
            log = tmp / f"{target.port}.log"
            proc = stack.enter_context(bench.running(cmd, target_env, log))
            bench.wait_ready(target, proc, log)
            pids[name] = proc.pid
        bench.check([direct, routed], model)
        loads, cpu = measure(direct, routed, pids, tmp, args)
    report(args, loads[direct.label], loads[routed.label], cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    direct: bench.Target, routed: bench.Target, pids: dict[str, int], tmp: Path, args
) -> tuple[dict[str, bench.Load], dict[str, float]]:
    """wrk on each side in turn, ``--rounds`` times; per side the round of median req/s.

    Returns:
        The loads kept, and the CPU milliseconds per request of the backend and of
        the router during the routed runs (``/proc`` counters; wrk's own time excluded).
    """
    body = bench.sample_rows()[1]
    scripts = {
        t.label: bench.write_lua(tmp / f"{t.port}.lua", t.one_body(body)) for t in (direct, routed)
    }
    rounds: dict[str, list[bench.Load]] = {direct.label: [], routed.label: []}
    used = {"backend": 0.0, "router": 0.0}
    served = 0
    for _ in range(args.rounds):
        for target in (direct, routed):
            bench.wrk(target, scripts[target.label], args, args.warmup)
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            load = bench.wrk(target, scripts[target.label], args, args.duration)
            rounds[target.label].append(load)
            if target is routed:
                served += load.requests
                for name, pid in pids.items():
                    used[name] += cpu_seconds(pid) - before[name]
    kept = {
        label: sorted(runs, key=lambda r: r.rps)[len(runs) // 2] for label, runs in rounds.items()
    }
    return kept, {name: seconds * 1e3 / served for name, seconds in used.items()}


def report(
    args: argparse.Namespace, direct: bench.Load, routed: bench.Load, cpu: dict[str, float]
) -> None:
    """Print both runs, the p50 the router adds, the req/s ratio and the goals."""
    load = os.getloadavg()
    print(f"machine: {bench.machine()}")
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s --latency (after a "
        f"{args.warmup:g} s warm-up), one-row POST /predict on loopback, one uvicorn worker each; "
        f"{args.rounds} alternating rounds, the round of median req/s kept"
    )
    print()
    print(f"{'':21}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'requests':>10}")
    for label, one in (("backend directly", direct), ("through the router", routed)):
        print(f"{label:21}{one.rps:8.0f}{one.p50_ms:8.2f}{one.p99_ms:8.2f}{one.requests:10d}")
    print(f"CPU per routed request: backend {cpu['backend']:.3f} ms, router {cpu['router']:.3f} ms")
    print()
    added = routed.p50_ms - direct.p50_ms
    ratio = routed.rps / direct.rps
    for name, value, goal, ok in [
        ("p50 added by the router", f"{added:.2f} ms", f"<= {GOAL_ADDED_P50_MS:g} ms",
         added <= GOAL_ADDED_P50_MS),
        ("req/s through the router / direct", f"{ratio:.0%}", f">= {GOAL_RATIO:.0%}",
         ratio >= GOAL_RATIO),
    ]:  # fmt: skip
        print(f"{name + ':':36}{value:>10}  (goal {goal:>8})  {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
