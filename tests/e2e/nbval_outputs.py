"""A pytest plugin for nbval runs: append every executed cell's text output to a file.

nbval in ``--nbval-lax`` mode checks that the cells run; it does not keep their
outputs. The lesson tests load this plugin (``-p nbval_outputs``) with
``NBVAL_OUTPUTS`` naming a file, to check what a lesson printed.
"""

from __future__ import annotations

import os


def _text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data") or {}
    return "".join(data.get("text/plain", ""))


def pytest_runtest_makereport(item, call) -> None:
    path = os.environ.get("NBVAL_OUTPUTS")
    outputs = getattr(item, "test_outputs", None)
    if path and call.when == "call" and outputs:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(_text(o) for o in outputs) + "\n")
