"""``course gradescope-package --week N``: the autograder zip that Gradescope builds and runs.

The zip holds, at its root (Gradescope unpacks it into ``/autograder/source``):

* ``setup.sh``, which installs Python 3.11 and bubblewrap when missing, uv at the
  course's version (the Makefile's ``UV_VERSION``), the packages of the lock and the
  grader itself (``autograder/templates/gradescope-setup.sh``);
* ``run_autograder``, which grades ``/autograder/submission`` (the student's checkout)
  with ``course grade --week N --gradescope`` and writes ``/autograder/results/results.json``
  (``autograder/templates/gradescope-run_autograder``; :func:`collect`);
* the course's grader (``autograder/``, ``pyproject.toml``, ``README.md``,
  ``requirements/lock.txt``), the released ``labs/mlpipe`` and ``labs/weekNN`` (what the
  editable install and the feedback scrubber read), and the instructor's material of
  week N: :func:`autograder.sources.material_files` of ``solutions/``, the source notebook
  and the hidden tests included, other weeks' lab folders left out.

The package is built offline, from the files of this repository only; the same files
give the same zip, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from autograder import CourseError
from autograder.config import LABS, REPO_ROOT, SOLUTIONS, get_week, is_litter
from autograder.report import HIDDEN_VISIBILITIES, atomic_write
from autograder.sources import find_source, material_files

TEMPLATES = Path(__file__).with_name("templates")
SETUP_TEMPLATE = TEMPLATES / "gradescope-setup.sh"
RUN_TEMPLATE = TEMPLATES / "gradescope-run_autograder"
#: The course's files that the grader needs besides autograder/, solutions/ and labs/.
GRADER_FILES = ("pyproject.toml", "README.md", "requirements/lock.txt")
#: Folders of autograder/ a package leaves out (the student template's reference copy).
LEFT_OUT = ("reference",)
#: Every entry's time in the zip: the same files give the same bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def uv_version(root: Path = REPO_ROOT) -> str:
    """The uv version that ``make install`` uses (the Makefile's ``UV_VERSION``).

    Raises:
        CourseError: When the Makefile does not set it.
    """
    found = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (root / "Makefile").read_text(), re.M)
    if not found:
        raise CourseError("The Makefile sets no UV_VERSION; it is the uv that setup.sh installs.")
    return found.group(1)


def _tree(root: Path, folder: str, skip: tuple[str, ...] = ()) -> list[str]:
    """The files under ``root/folder`` as paths relative to ``root``, without litter."""
    base = root / folder
    found = []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and rel.parts[0] not in skip and not any(map(is_litter, rel.parts)):
            found.append(f"{folder}/{rel.as_posix()}")
    return found


def package_files(week: int | str, root: Path = REPO_ROOT) -> dict[str, Path]:
    """What the package of ``week`` holds: its name in the zip -> the file it is made from.

    Raises:
        CourseError: For a week without a lab, or a checkout without ``solutions/``.
    """
    wk = get_week(week)
    source = find_source(root)
    if not source.hidden_tests:
        raise CourseError(
            f"There is no {SOLUTIONS}/ here: a Gradescope package needs the instructor's "
            "source notebook and hidden tests; build it in the course repository."
        )
    names = [*GRADER_FILES, *_tree(root, "autograder", LEFT_OUT)]
    names += _tree(root, f"{LABS}/mlpipe") + _tree(root, f"{LABS}/{wk.lab}")
    names += [f"{SOLUTIONS}/{rel.as_posix()}" for rel in material_files(source, wk)]
    return {name: root / name for name in names}


def render(template: Path, week: int, hidden_visibility: str, root: Path = REPO_ROOT) -> str:
    """A script template with the week, the hidden tests' visibility and uv's version."""
    values = {"week": str(week), "visibility": hidden_visibility, "uv_version": uv_version(root)}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template.read_text())


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def package(
    week: int | str,
    out: Path = Path("build/gradescope"),
    hidden_visibility: str = "after_published",
    root: Path = REPO_ROOT,
) -> Path:
    """Write ``<out>/weekNN-autograder.zip``, Gradescope's autograder for ``week``.

    Args:
        week: The week to grade.
        out: The folder of the zip.
        hidden_visibility: What students see of hidden tests on Gradescope:
            ``after_published`` (once grades are published) or ``hidden`` (never).
        root: The course repository.

    Returns:
        The zip.

    Raises:
        CourseError: See :func:`package_files`; also for an unknown visibility.
    """
    if hidden_visibility not in HIDDEN_VISIBILITIES:
        raise CourseError(
            f"--hidden-visibility '{hidden_visibility}' is not one of: "
            f"{', '.join(HIDDEN_VISIBILITIES)}."
        )
    wk = get_week(week)
    files = package_files(wk.number, root)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{wk.lab}-autograder.zip"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{target.name}.")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, template in (("setup.sh", SETUP_TEMPLATE), ("run_autograder", RUN_TEMPLATE)):
                text = render(template, wk.number, hidden_visibility, root)
                _add(archive, name, text.encode(), 0o755)
            for name, path in sorted(files.items()):
                _add(archive, name, path.read_bytes(), 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def collect(grades: Path, results: Path, week: int, status: int, stderr: Path | None) -> dict:
    """Put ``course grade``'s Gradescope file at ``results`` (``run_autograder``'s last step).

    When grading wrote none (``course grade`` refused the submission, exit status 2),
    ``results`` gets a score of 0 and ``course grade``'s one-sentence reason.
    """
    found = sorted(Path(grades).glob(f"*/week{week:02d}-results.json"))
    if found:
        data = json.loads(found[0].read_text(encoding="utf-8"))
    else:
        lines = stderr.read_text(errors="replace").splitlines() if stderr and stderr.is_file() else []  # fmt: skip
        reason = next((x for x in reversed(lines) if x.strip()), f"course grade exited {status}")
        data = {
            "score": 0.0,
            "output": f"Your submission could not be graded: {reason.removeprefix('course: ')}",
            "stdout_visibility": "hidden",
            "tests": [],
        }
    atomic_write(Path(results), json.dumps(data, indent=2) + "\n")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m autograder.gradescope collect GRADES RESULTS --week N --status S``."""
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope")
    verbs = parser.add_subparsers(dest="verb", required=True)
    col = verbs.add_parser("collect", help="write results.json from course grade's output")
    col.add_argument("grades")
    col.add_argument("results")
    col.add_argument("--week", type=int, required=True)
    col.add_argument("--status", type=int, default=0)
    col.add_argument("--stderr")
    args = parser.parse_args(argv)
    data = collect(
        Path(args.grades),
        Path(args.results),
        args.week,
        args.status,
        Path(args.stderr) if args.stderr else None,
    )
    print(f"results.json: {data['score']:g} points, {len(data['tests'])} tests")
    return 0


__all__ = ["package", "package_files", "collect"]

if __name__ == "__main__":
    sys.exit(main())
