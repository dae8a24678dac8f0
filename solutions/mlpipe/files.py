"""Writing the pipeline's files so that a failed run never leaves a half-written one.

Every file a stage writes (processed data, fingerprints, metrics, reports,
schemas) goes through a temporary file in the same folder and a rename, which
replaces the old file in one step.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON with sorted keys (stable diffs, DVC-friendly).

    Returns:
        The path written.
    """
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
