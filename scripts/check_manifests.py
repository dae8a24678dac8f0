"""Validate Kubernetes manifests strictly and check the course's policies (used by demo.sh).

Usage: python scripts/check_manifests.py k8s/*.yaml

Prints each policy problem, then one line: how many objects are valid and where they are.
Exits 1 when a policy is broken, 2 when a file is not a valid manifest.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlpipe import manifests


def main(files: list[str]) -> int:
    """Check ``files`` together; return the exit code."""
    try:
        docs = [doc for path in files for doc in manifests.validate_file(path)]
    except manifests.ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    problems = manifests.policy_problems(docs)
    for problem in problems:
        print(f"  - {problem}")
    where = Path(files[0]).parent if files else Path(".")
    print(
        f"k8s: {len(docs)} objects valid (strict, Kubernetes {manifests.KUBERNETES_VERSION}), "
        f"{len(problems)} policy problems: {where}/"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
