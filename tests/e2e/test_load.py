"""A grade does not depend on the machine's load (issue 16).

The reference and the fast sample are graded with the hostile batch's short limits
while CPU hogs keep every core busy. A timeout that the load causes is confirmed
before it costs anything (graded again, alone, with doubled limits): both must still
get every point they earn and no flag.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hostile import SAMPLES, Context, build

from autograder.grade import default_jobs, grade
from autograder.sandbox import Limits

#: The hogs would slow every test beside this one: it runs after the rest of the tier, alone.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

#: The hostile batch's limits: short enough that a busy machine reaches them.
LIMITS = Limits(cell_timeout=12, test_timeout=20, memory_mb=1536, processes=96)
#: A hog: ping-pong over its own loopback socket, CPU-bound, gone after ``argv[1]`` seconds.
HOG = """
import socket, sys, threading, time

stop = time.monotonic() + float(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0))


def echo():
    conn, _ = server.accept()
    while data := conn.recv(64):
        conn.sendall(data)


threading.Thread(target=echo, daemon=True).start()
client = socket.create_connection(server.getsockname())
while time.monotonic() < stop:
    client.sendall(b"x")
    client.recv(64)
    sum(i * i for i in range(2000))
"""


def test_the_reference_graded_next_to_a_cpu_hog_gets_full_marks_and_no_flag(tmp_path):
    names = ("reference", "fast")
    subs = build(tmp_path / "subs", Context(out=tmp_path / "out", victim=tmp_path), names)
    hogs = [
        subprocess.Popen([sys.executable, "-c", HOG, "900"], stdout=subprocess.DEVNULL)
        for _ in range(2 * default_jobs())
    ]
    try:
        reports = grade(
            list(subs.values()), week=1, out=tmp_path / "out", progress=False, jobs=2,
            limits=LIMITS,
        )  # fmt: skip
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    got = {r.student: r for r in reports}
    for name in names:
        report = got[name]
        coded = sum(t.score for t in report.tests if t.status != "manual")
        assert report.flags == [], (name, report.reasons)
        assert coded == SAMPLES[name][1].score, [(t.name, t.status, t.output) for t in report.tests]
