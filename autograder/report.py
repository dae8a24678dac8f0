"""The grading report: one per student and week, as JSON, Markdown and HTML.

The JSON fields are the course's contract (see the README's instructors'
section): ``student``, ``week``, ``score``, ``max_score``, ``hidden_tests``,
``needs_manual_grading``, ``flags`` and ``tests``.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from autograder.config import MAX_OUTPUT, MIN_HIDDEN, WEEKS

Status = Literal["passed", "failed", "error", "manual", "skipped"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clip(text: str, limit: int = MAX_OUTPUT) -> str:
    """Output as a report keeps it: no terminal colours, at most about ``limit`` characters.

    A long failure keeps its end (where the error was raised) and also its first ``E``
    lines, the assertion's own message, which a long diff would otherwise push out.
    """
    text = _ANSI.sub("", text or "").strip()
    if len(text) <= limit:
        return text
    found = re.search(r"^E .*(?:\n^E .*){0,4}", text, re.MULTILINE)
    if not found or found.start() >= len(text) - limit:
        return "...\n" + text[-limit:]
    head = found.group(0)[: limit // 4]
    return f"{head}\n...\n{text[-(limit - len(head)) :]}"


@dataclass
class TestResult:
    """One graded item: a notebook cell or a pytest test.

    Attributes:
        name: The nbgrader grade id or the pytest node name.
        source: ``notebook`` or ``pytest``.
        score: Points earned.
        max_score: Points available.
        status: ``passed``, ``failed``, ``error``, ``manual`` or ``skipped`` (the
            instructor's test skipped itself; no points).
        output: Why it failed (empty when it passed).
        hidden: True when the item contains hidden tests.
    """

    name: str
    source: Literal["notebook", "pytest"]
    score: float
    max_score: float
    status: Status
    output: str = ""
    hidden: bool = False


@dataclass
class Report:
    """The grade of one student for one week."""

    student: str
    week: int
    hidden_tests: bool
    tests: list[TestResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    isolation: str = ""
    digest: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    #: sha256 of the instructor's material graded against (:func:`autograder.sources.material_digest`).
    source_digest: str = ""

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 2)

    @property
    def max_score(self) -> float:
        return round(sum(t.max_score for t in self.tests), 2)

    @property
    def needs_manual_grading(self) -> bool:
        return any(t.status == "manual" for t in self.tests)

    def to_dict(self) -> dict:
        """The report as the JSON-ready mapping of the contract."""
        return {
            "student": self.student,
            "week": self.week,
            "score": self.score,
            "max_score": self.max_score,
            "hidden_tests": self.hidden_tests,
            "needs_manual_grading": self.needs_manual_grading,
            "flags": self.flags,
            "reasons": self.reasons,
            "tests": [asdict(t) for t in self.tests],
            "isolation": self.isolation,
            "digest": self.digest,
            "seconds": self.seconds,
            "source_digest": self.source_digest,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """Read a report back from its JSON mapping."""
        return cls(
            student=data["student"],
            week=data["week"],
            hidden_tests=data["hidden_tests"],
            tests=[TestResult(**t) for t in data["tests"]],
            flags=list(data.get("flags", [])),
            reasons=list(data.get("reasons", [])),
            isolation=data.get("isolation", ""),
            digest=data.get("digest", ""),
            seconds=dict(data.get("seconds", {})),
            source_digest=data.get("source_digest", ""),
        )


def scrub(text: str, hidden: Iterable[str] = ()) -> str:
    """Replace every line of hidden-test source found in ``text`` by ``[hidden test]``."""
    for line in hidden:
        if len(line) >= MIN_HIDDEN and line in text:
            text = text.replace(line, "[hidden test]")
    return text


#: What a student reads of a hidden test that did not pass: one line the grader wrote.
#: Nothing of its output is shown: a student's code ran beside the hidden test and could
#: have put anything there (even the hidden test's source, encoded).
HIDDEN_REASONS = {
    "failed": "a hidden check failed: compare your work with every requirement of the task",
    "error": "a hidden check could not run to its end: your code raised an error or stopped",
    "skipped": "a hidden check was skipped",
}


def _student_reason(test: TestResult, hidden: Iterable[str] = ()) -> str:
    """What a student may see of a test that did not pass.

    A visible test shows the last lines of its output (hidden-test source scrubbed); a
    hidden test, only the grader's line for its status (:data:`HIDDEN_REASONS`).
    """
    if test.status == "passed":
        return ""
    if test.status == "manual":
        return "graded by your instructor"
    if test.hidden:
        return HIDDEN_REASONS.get(test.status, f"a hidden check {test.status}")
    lines = [line for line in test.output.strip().splitlines() if line.strip()]
    return scrub("\n".join(lines[-15:]), hidden)


def to_markdown(report: Report, hidden: Iterable[str] = ()) -> str:
    """Render the report as a short Markdown summary for the student."""
    hidden = list(hidden)
    lines = [
        f"# Week {report.week}: {report.student}",
        "",
        f"**Score: {report.score:g} / {report.max_score:g}**"
        + (" (written answers still to be graded)" if report.needs_manual_grading else ""),
        "",
    ]
    if not report.hidden_tests:
        lines += ["Hidden tests were not available: this grade uses the visible tests only.", ""]
    if report.needs_manual_grading and report.week in WEEKS:
        lines += [f"Written answers: what a full answer covers is in weeks/{WEEKS[report.week].slug}/RUBRIC.md.", ""]  # fmt: skip
    for reason in report.reasons:
        lines.append(f"> {scrub(reason, hidden)}")
    if report.reasons:
        lines.append("")
    lines += ["| test | part | score | status |", "|---|---|---|---|"]
    for t in report.tests:
        name = t.name + (" (hidden)" if t.hidden else "")
        lines.append(f"| `{name}` | {t.source} | {t.score:g} / {t.max_score:g} | {t.status} |")
    failures = [t for t in report.tests if t.status in ("failed", "error", "skipped")]
    if failures:
        lines += ["", "## What to fix", ""]
        for t in failures:
            reason = _student_reason(t, hidden) or t.status
            lines += [f"### `{t.name}`", "", "```", reason, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:60em}td,th{border:1px solid #ccc;"
    "padding:4px;vertical-align:top}table{border-collapse:collapse}.passed{background:#e8f5e9}"
    ".failed,.error{background:#ffebee}.manual,.skipped{background:#fffde7}pre{white-space:pre-wrap;"
    "margin:0}.cell{border-left:4px solid #ccc;margin:1em 0;padding:0 .5em}.code pre{"
    "background:#f6f8fa;padding:.5em}.result{font-size:90%;padding:.3em}"
)


def _cells_html(notebook: dict, tests: dict[str, TestResult], hidden: list[str]) -> str:
    """The student's notebook: their cells, each graded cell with its result."""
    parts = []
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        kind = "code" if cell.get("cell_type") == "code" else "text"
        body = f"<div class='cell {kind}'><pre>{html.escape(scrub(source, hidden))}</pre>"
        test = tests.get(grade_id or "")
        if test is not None:
            why = html.escape(_student_reason(test, hidden))
            body += (
                f"<div class='result {test.status}'>{test.score:g} / {test.max_score:g}: "
                f"{test.status}{' (with hidden tests)' if test.hidden else ''}"
                f"{f'<pre>{why}</pre>' if why else ''}</div>"
            )
        parts.append(body + "</div>")
    return "".join(parts)


def to_feedback_html(
    report: Report, hidden: Iterable[str] = (), notebook: dict | None = None
) -> str:
    """Render student feedback as HTML: no hidden test source, no hidden traceback.

    Args:
        report: The report.
        hidden: Lines of hidden-test source, removed wherever they would appear.
        notebook: The notebook as graded, with the released (visible) test cells.
    """
    hidden = list(hidden)
    rows = []
    for t in report.tests:
        reason = html.escape(_student_reason(t, hidden))
        name = html.escape(t.name) + (" <em>(hidden test)</em>" if t.hidden else "")
        rows.append(
            f"<tr class='{t.status}'><td><code>{name}</code></td><td>{t.source}</td>"
            f"<td>{t.score:g} / {t.max_score:g}</td><td>{t.status}</td>"
            f"<td><pre>{reason}</pre></td></tr>"
        )
    note = "" if report.hidden_tests else "<p>Hidden tests were not available.</p>"
    reasons = "".join(f"<li>{html.escape(scrub(r, hidden))}</li>" for r in report.reasons)
    cells = ""
    if notebook is not None:
        tests = {t.name: t for t in report.tests if t.source == "notebook"}
        cells = "<h2>Your notebook</h2>" + _cells_html(notebook, tests, hidden)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Week {report.week} feedback: {html.escape(report.student)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Week {report.week} feedback</h1><p><strong>{report.score:g} / {report.max_score:g}</strong>"
        + (" (written answers still to be graded)" if report.needs_manual_grading else "")
        + f"</p>{note}"
        + (f"<ul class='reasons'>{reasons}</ul>" if reasons else "")
        + "<table><tr><th>test</th><th>part</th><th>score</th><th>status</th><th>why</th></tr>"
        + "".join(rows)
        + f"</table>{cells}</body></html>\n"
    )


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    report: Report, out: Path, hidden: Iterable[str] = (), notebook: dict | None = None
) -> Path:
    """Write ``<out>/<student>/weekNN.{json,md}`` and ``weekNN-feedback.html``.

    The JSON (written last, so that it marks a finished report) is the
    instructor's and keeps every output; the Markdown and HTML are the student's
    and never show hidden-test source (see :func:`scrub`).
    """
    hidden = list(hidden)
    folder = out / report.student
    stem = f"week{report.week:02d}"
    atomic_write(folder / f"{stem}-feedback.html", to_feedback_html(report, hidden, notebook))
    atomic_write(folder / f"{stem}.md", to_markdown(report, hidden))
    atomic_write(folder / f"{stem}.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return folder / f"{stem}.json"


def write_gradescope(
    report: Report,
    out: Path,
    hidden: Iterable[str] = (),
    hidden_visibility: str = "after_published",
) -> Path:
    """Write ``<out>/<student>/weekNN-results.json`` for Gradescope (see :func:`gradescope_results`)."""
    path = out / report.student / f"week{report.week:02d}-results.json"
    results = gradescope_results(report, hidden, hidden_visibility)
    atomic_write(path, json.dumps(results, indent=2) + "\n")
    return path


def read_reports(out: Path) -> list[Report]:
    """Read every report JSON under ``out``."""
    return [
        Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(out.glob("*/week[0-9][0-9].json"))
    ]


def write_class_csv(out: Path) -> Path:
    """Write ``<out>/grades.csv``: a row per student, a column per week, a total."""
    reports = read_reports(out)
    weeks = sorted({r.week for r in reports})
    students = sorted({r.student for r in reports})
    scores = {(r.student, r.week): r.score for r in reports}
    path = out / "grades.csv"
    rows = [["student", *(f"week{w:02d}" for w in weeks), "total"]]
    for student in students:
        cells = [scores.get((student, w), 0.0) for w in weeks]
        rows.append([student, *(f"{c:g}" for c in cells), f"{sum(cells):g}"])
    with tempfile.NamedTemporaryFile(
        "w", dir=out, delete=False, newline="", suffix=".csv"
    ) as handle:
        csv.writer(handle).writerows(rows)
    os.replace(handle.name, path)
    return path


#: Gradescope's visibilities a hidden test may get: shown once grades are published, or never.
HIDDEN_VISIBILITIES = ("after_published", "hidden")


def gradescope_results(
    report: Report, hidden: Iterable[str] = (), hidden_visibility: str = "after_published"
) -> dict:
    """A Gradescope ``results.json`` mapping built from a report (hidden source scrubbed).

    Each graded item is a test with ``name``, ``score``, ``max_score``, ``status`` and the
    student's ``output`` (:func:`_student_reason`: one error line for a hidden test, never
    its source); a hidden test gets ``hidden_visibility`` (``after_published`` or
    ``hidden``), every other test ``visible``. The run's stdout stays the instructor's;
    there is no leaderboard.

    Raises:
        ValueError: For a visibility other than :data:`HIDDEN_VISIBILITIES`.
    """
    if hidden_visibility not in HIDDEN_VISIBILITIES:
        raise ValueError(f"hidden tests' visibility must be one of {HIDDEN_VISIBILITIES}")
    hidden = list(hidden)
    results = {
        "score": report.score,
        "execution_time": round(sum(report.seconds.values())),
        "output": scrub("\n".join(report.reasons), hidden),
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": t.name,
                "score": t.score,
                "max_score": t.max_score,
                "status": "passed" if t.status == "passed" else "failed",
                "output": _student_reason(t, hidden),
                "visibility": hidden_visibility if t.hidden else "visible",
            }
            for t in report.tests
        ],
    }
    if not results["output"]:
        del results["output"]
    return results
