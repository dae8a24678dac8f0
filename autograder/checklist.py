"""``course checklist [PATH]``: the interview-prep and portfolio checklist.

The items are in ``autograder/checklist.yaml`` (it ships with the package, so a student
template has it). There are three kinds:

* **hands-on** skills, ticked from evidence only, never by hand: the named graded items
  (component tests, notebook cells) of specific weeks must have passed, in the student's
  grade reports (``grades/<student>/weekNN.json``, written by ``course grade``) or in a
  fresh ``course check N`` (``run_checks``), which takes precedence for the weeks it ran;
* **concept** questions, each with the lesson section it comes from and a model answer;
* **design** prompts (system design), with a model answer too.

Concepts and design prompts are practised with :func:`quiz` (``course checklist --quiz``):
one question at a time, the student's answer, the model answer, a self-rating, saved at
once in the student's repository (``.course/checklist.json``, written atomically).

:func:`checklist` gathers the state; :func:`to_table`, :func:`to_markdown` (a portfolio
section for the student's README) and :func:`to_json` render it. Nothing heavy is
imported unless ``run_checks`` asks for ``course check``.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from autograder import CourseError
from autograder.config import LABS, WEEKS
from autograder.report import Report, atomic_write

#: The checklist's items.
ITEMS_FILE = Path(__file__).with_name("checklist.yaml")
#: Where ``--quiz`` keeps the self-ratings, relative to the student's checkout.
RATINGS_FILE = ".course/checklist.json"
#: The grade reports' folder in a checkout (``course grade . --out grades``).
GRADES_DIR = "grades"
KINDS = ("hands-on", "concept", "design")
#: Self-ratings of ``--quiz``.
RATINGS = {1: "missed it", 2: "partly", 3: "fully"}
BEST = max(RATINGS)


# --- the items -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """The graded items of one week that a hands-on item needs.

    Attributes:
        week: The week whose grade report or ``course check`` holds them.
        tests: Names as reports give them: ``file.py::test_name`` or a cell's grade id.
        pending: The week is being built: its items count once it is in ``WEEKS``.
    """

    week: int
    tests: tuple[str, ...]
    pending: bool = False

    @property
    def released(self) -> bool:
        """True when the week is part of the course (``WEEKS``)."""
        return self.week in WEEKS


@dataclass(frozen=True)
class Item:
    """One checklist item (see the comment at the top of ``checklist.yaml``)."""

    id: str
    title: str
    kind: str
    weeks: tuple[int, ...]
    evidence: tuple[Evidence, ...] = ()
    lesson: str = ""
    questions: tuple[str, ...] = ()
    question: str = ""
    answer: str = ""
    note: str = ""


def _item(raw: Any, where: str) -> Item:
    """One item of the YAML, checked; ``where`` names it in errors."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not a mapping")
    missing = [k for k in ("id", "title", "kind", "weeks") if k not in raw]
    if missing:
        raise ValueError(f"{where} has no {missing[0]}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise ValueError(f"{where} has kind {kind!r}, not one of {', '.join(KINDS)}")
    evidence = tuple(
        Evidence(int(e["week"]), tuple(str(t) for t in e["tests"]), bool(e.get("pending")))
        for e in raw.get("evidence") or ()
    )
    if kind == "hands-on" and not all(e.tests for e in evidence or [Evidence(0, ())]):
        raise ValueError(f"{where} is hands-on without evidence")
    if kind != "hands-on" and not (raw.get("question") and raw.get("answer") and raw.get("lesson")):
        raise ValueError(f"{where} needs a question, an answer and a lesson")
    return Item(
        id=str(raw["id"]),
        title=str(raw["title"]),
        kind=kind,
        weeks=tuple(int(w) for w in raw["weeks"]),
        evidence=evidence,
        lesson=str(raw.get("lesson", "")),
        questions=tuple(str(q) for q in raw.get("questions") or ()),
        question=" ".join(str(raw.get("question", "")).split()),
        answer=" ".join(str(raw.get("answer", "")).split()),
        note=" ".join(str(raw.get("note", "")).split()),
    )


def load_items(path: Path = ITEMS_FILE) -> list[Item]:
    """The checklist's items, in the file's order.

    Raises:
        CourseError: When the file is missing or an item is malformed (one sentence).
    """
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader(yaml))
        raw = data["items"]
        items = [_item(r, f"item {i + 1}") for i, r in enumerate(raw)]
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as err:
        why = " ".join(str(err).split())
        raise CourseError(f"{path} is not a valid checklist ({why}).") from None
    ids = [i.id for i in items]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise CourseError(f"{path} is not a valid checklist (id {dupes[0]!r} is used twice).")
    return items


def _loader(yaml: Any) -> Any:
    """libyaml's safe loader when it is there (ten times faster), else the pure one."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --- evidence ------------------------------------------------------------------------------


@dataclass
class Source:
    """Results of one week from one place: a grade report or a fresh ``course check``.

    Attributes:
        label: Where they come from, as shown next to each tick.
        results: Status by graded item's name.
    """

    week: int
    label: str
    results: dict[str, str]


def _shown(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it is inside it (as the student typed it)."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_report(path: Path) -> Report:
    """One grade report.

    Raises:
        CourseError: When it cannot be read as a report (one sentence naming the file).
    """
    try:
        report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
        int(report.week)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CourseError(
            f"{path} is not a readable grade report; grade that week again with "
            "`course grade` or delete the file."
        ) from None
    return report


def _students(grades: Path) -> dict[str, Path]:
    """The folders of ``grades`` that hold reports, by student (``grades`` itself may be one)."""
    if any(grades.glob("week[0-9][0-9].json")):
        return {grades.name: grades}
    return {
        d.name: d
        for d in sorted(grades.iterdir())
        if d.is_dir() and any(d.glob("week[0-9][0-9].json"))
    }


def report_sources(
    path: Path, grades: Path | None = None, student: str | None = None
) -> tuple[str | None, list[Source]]:
    """The student's grade reports as sources of evidence, one per week.

    Args:
        path: The student's checkout.
        grades: The reports' folder (default ``PATH/grades``, if it is there).
        student: Whose reports, when the folder holds several students'.

    Returns:
        The student (None without reports) and a source per week they have a report for.

    Raises:
        CourseError: For a ``grades`` folder that does not exist, several students and
            no ``student``, an unknown ``student``, or a report that does not parse.
    """
    if grades is None:
        grades = path / GRADES_DIR
        if not grades.is_dir():
            if student is not None:
                raise CourseError(
                    f"There are no grade reports in '{grades}'; grade with "
                    "`course grade . --out grades` or name the folder with --grades DIR."
                )
            return None, []
    elif not grades.is_dir():
        raise CourseError(f"The grades folder '{grades}' does not exist.")
    found = _students(grades)
    if student is not None:
        if student not in found:
            known = ", ".join(found) or "none"
            raise CourseError(
                f"'{grades}' has no reports of '{student}'; the students there are: {known}."
            )
        found = {student: found[student]}
    elif len(found) > 1:
        raise CourseError(
            f"'{grades}' holds the reports of {len(found)} students ({', '.join(found)}); "
            "choose one with --student NAME."
        )
    if not found:
        return None, []
    name, folder = next(iter(found.items()))
    sources = []
    for file in sorted(folder.glob("week[0-9][0-9].json")):
        report = read_report(file)
        results = {t.name: t.status for t in report.tests}
        sources.append(Source(int(report.week), _shown(file, path), results))
    return name, sources


RunCheck = Callable[[int, Path], Any]


def check_sources(
    path: Path,
    weeks: Iterable[int],
    run_check: RunCheck | None = None,
    on_week: Callable[[int], None] | None = None,
) -> tuple[list[Source], list[str]]:
    """Run ``course check N`` on the checkout's labs/ for each of ``weeks`` that has a lab.

    Args:
        path: The student's checkout (it holds ``labs/``).
        weeks: The weeks to check.
        run_check: ``check(week, labs)``; default :func:`autograder.check.check`.
        on_week: Called before each week's check (to show progress).

    Returns:
        A source per week checked, and a note per week that could not be.

    Raises:
        CourseError: When the checkout has no ``labs/`` folder.
    """
    labs = path / LABS
    if not labs.is_dir():
        raise CourseError(
            f"'{path}' has no {LABS}/ folder; --run-checks runs `course check` on a "
            "student's checkout."
        )
    if run_check is None:
        from autograder.check import check as run_check  # imports the notebook machinery
    sources, notes = [], []
    for week in sorted(set(weeks)):
        if week not in WEEKS:
            continue
        if not (labs / WEEKS[week].lab / "lab.ipynb").is_file():
            notes.append(f"week {week}: no {LABS}/{WEEKS[week].lab}/lab.ipynb to check")
            continue
        if on_week:
            on_week(week)
        try:
            result = run_check(week, labs)
        except CourseError as err:
            notes.append(f"week {week}: `course check {week}` could not run: {err}")
            continue
        rows = {t.name: t.status for t in result.tests}
        sources.append(Source(week, f"course check {week}", rows))
    return sources, notes


# --- the state of each item ----------------------------------------------------------------


@dataclass
class Proof:
    """One graded item an item needs, and what the evidence says of it.

    ``status`` is the report's or check's (``passed``, ``failed``, ...), ``missing`` when
    the week's results do not name it (shown as ``absent``), ``none`` without results
    for the week and ``pending`` for a week that is not in the course yet.
    """

    week: int
    name: str
    status: str
    source: str = ""


@dataclass
class Rating:
    """A self-rating of ``--quiz``."""

    rating: int
    at: str

    @property
    def word(self) -> str:
        return RATINGS.get(self.rating, "?")


@dataclass
class ItemState:
    """An item and where the student stands on it.

    ``state``: for hands-on items ``proven`` (every needed item passed), ``partial``,
    ``no-evidence`` or ``pending`` (its weeks are not in the course yet); for concepts and
    design prompts the latest rating's word (``fully``, ``partly``, ``missed it``) or
    ``not-practised``.
    """

    item: Item
    state: str
    proofs: list[Proof] = field(default_factory=list)
    rating: Rating | None = None

    @property
    def done(self) -> bool:
        return self.state in ("proven", RATINGS[BEST])

    @property
    def passed(self) -> int:
        return sum(p.status == "passed" for p in self.proofs)

    @property
    def needed(self) -> int:
        return sum(p.status != "pending" for p in self.proofs)

    def missing_weeks(self) -> list[int]:
        """The weeks without any results for this item."""
        return sorted({p.week for p in self.proofs if p.status == "none"})


def no_evidence_hint(week: int) -> str:
    """What to run to get evidence of ``week``."""
    return (
        f"no evidence yet: run `course check {week}` or `course grade . --week {week} --out grades`"
    )


def _proofs(item: Item, sources: dict[int, list[Source]]) -> list[Proof]:
    proofs = []
    for ev in item.evidence:
        for name in ev.tests:
            if not ev.released:
                proofs.append(Proof(ev.week, name, "pending"))
                continue
            found = [s for s in sources.get(ev.week, []) if name in s.results]
            if found:
                proofs.append(Proof(ev.week, name, found[0].results[name], found[0].label))
            elif sources.get(ev.week):
                proofs.append(Proof(ev.week, name, "missing", sources[ev.week][0].label))
            else:
                proofs.append(Proof(ev.week, name, "none"))
    return proofs


def _hands_on(item: Item, sources: dict[int, list[Source]]) -> ItemState:
    proofs = _proofs(item, sources)
    needed = [p for p in proofs if p.status != "pending"]
    if not needed:
        state = "pending"
    elif all(p.status == "passed" for p in needed):
        state = "proven"
    elif all(p.status == "none" for p in needed):
        state = "no-evidence"
    else:
        state = "partial"
    return ItemState(item, state, proofs)


def read_ratings(path: Path) -> dict[str, list[Rating]]:
    """The self-ratings saved in the checkout ``path`` (none yet: empty).

    Raises:
        CourseError: When the ratings file is there but unreadable (one sentence).
    """
    file = path / RATINGS_FILE
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return {
            str(key): [Rating(int(r["rating"]), str(r["at"])) for r in value]
            for key, value in data["ratings"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CourseError(
            f"{file} is not a readable ratings file; fix it or delete it to start the quiz afresh."
        ) from None


def write_ratings(path: Path, ratings: dict[str, list[Rating]]) -> Path:
    """Save the self-ratings in the checkout ``path``, atomically."""
    file = path / RATINGS_FILE
    data = {
        "ratings": {
            key: [{"rating": r.rating, "at": r.at} for r in value]
            for key, value in sorted(ratings.items())
        }
    }
    atomic_write(file, json.dumps(data, indent=2) + "\n")
    return file


def _practised(item: Item, ratings: dict[str, list[Rating]]) -> ItemState:
    history = ratings.get(item.id) or []
    if not history:
        return ItemState(item, "not-practised")
    return ItemState(item, history[-1].word, rating=history[-1])


@dataclass
class Checklist:
    """The checklist of one checkout.

    Attributes:
        path: The student's checkout.
        student: Whose grade reports were read (None: none were).
        sources: Where the evidence came from, one line each.
        notes: What could not be used (a week without a lab to check, ...).
    """

    path: Path
    student: str | None
    items: list[ItemState]
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[ItemState]:
        return [s for s in self.items if s.item.kind == kind]

    def summary(self) -> dict[str, dict[str, int]]:
        """Per kind, how many items are done (proven, or rated fully) of how many."""
        return {
            kind: {
                "done": sum(s.done for s in self.of_kind(kind)),
                "total": len(self.of_kind(kind)),
            }
            for kind in KINDS
        }

    def to_dict(self) -> dict:
        """The checklist as the JSON-ready mapping of ``--format json``."""
        items = []
        for s in self.items:
            entry: dict[str, Any] = {
                "id": s.item.id,
                "title": s.item.title,
                "kind": s.item.kind,
                "weeks": list(s.item.weeks),
                "state": s.state,
                "done": s.done,
            }
            if s.item.kind == "hands-on":
                entry["evidence"] = [
                    {"week": p.week, "name": p.name, "status": p.status, "source": p.source}
                    for p in s.proofs
                ]
            else:
                rating = s.rating and {"rating": s.rating.rating, "at": s.rating.at}
                entry.update(
                    lesson=s.item.lesson,
                    questions=list(s.item.questions),
                    question=s.item.question,
                    answer=s.item.answer,
                    rating=rating,
                )
            if s.item.note:
                entry["note"] = s.item.note
            items.append(entry)
        return {
            "path": str(self.path.resolve()),
            "student": self.student,
            "sources": self.sources,
            "notes": self.notes,
            "summary": self.summary(),
            "items": items,
        }


def checklist(
    path: Path | str = ".",
    *,
    grades: Path | None = None,
    student: str | None = None,
    run_checks: bool = False,
    weeks: Sequence[int] | None = None,
    run_check: RunCheck | None = None,
    on_week: Callable[[int], None] | None = None,
    items: list[Item] | None = None,
) -> Checklist:
    """The checklist of the checkout ``path``: each item with its evidence or rating.

    Args:
        path: The student's checkout.
        grades: The grade reports' folder (default ``PATH/grades`` when it exists).
        student: Whose reports, when ``grades`` holds several students'.
        run_checks: Also run ``course check N`` for the weeks with hands-on evidence
            (minutes); its results take precedence over the reports for those weeks.
        weeks: With ``run_checks``, only these weeks (default: every week with evidence).
        run_check: Replaces :func:`autograder.check.check` (tests).
        on_week: Called before each week's check.
        items: The items (default: :func:`load_items`).

    Raises:
        CourseError: For a checkout that is not a folder, or as :func:`report_sources`,
            :func:`check_sources` and :func:`read_ratings` say.
    """
    path = Path(path)
    if not path.is_dir():
        raise CourseError(f"'{path}' is not a folder; give the path of your course checkout.")
    items = load_items() if items is None else items
    student, reports = report_sources(path, grades, student)
    by_week: dict[int, list[Source]] = {}
    notes: list[str] = []
    labels: list[str] = []
    if run_checks:
        wanted = {e.week for i in items for e in i.evidence if e.released}
        if weeks is not None:
            wanted &= set(weeks)
        checks, notes = check_sources(path, wanted, run_check, on_week)
        for s in checks:
            by_week.setdefault(s.week, []).append(s)
        if checks:
            labels.append("course check, weeks " + ", ".join(str(s.week) for s in checks))
    for s in reports:  # after the fresh checks: they come first
        by_week.setdefault(s.week, []).append(s)
    if reports:
        folder = reports[0].label.rsplit("/", 1)[0]
        labels.append(
            f"grade reports of {student} in {folder}, weeks "
            + ", ".join(str(s.week) for s in reports)
        )
    ratings = read_ratings(path)
    states = [
        _hands_on(i, by_week) if i.kind == "hands-on" else _practised(i, ratings) for i in items
    ]
    return Checklist(path, student, states, labels, notes)


# --- rendering -----------------------------------------------------------------------------

_MARK = {"proven": "[x]", "partial": "[~]", "fully": "[x]", "partly": "[~]", "missed it": "[~]"}


def _weeks(weeks: Sequence[int]) -> str:
    return ("week " if len(weeks) == 1 else "weeks ") + ", ".join(map(str, weeks))


def _proof_lines(s: ItemState) -> list[str]:
    lines, hinted = [], set()
    for p in s.proofs:
        if p.status == "none":
            if p.week not in hinted:
                hinted.add(p.week)
                lines.append(f"      week {p.week}: {no_evidence_hint(p.week)}")
        elif p.status == "pending":
            if p.week not in hinted:
                hinted.add(p.week)
                lines.append(f"      week {p.week}: pending (the week is not in this course yet)")
        else:
            status = "absent" if p.status == "missing" else p.status
            lines.append(f"      {status:<7} week {p.week}  {p.name}  ({p.source})")
    return lines


def to_table(cl: Checklist) -> str:
    """The checklist as the terminal shows it: each item, and under it its evidence."""
    out = [f"Interview-prep checklist of {cl.path.resolve()}"]
    out.append(
        "Evidence: " + ("; ".join(cl.sources) if cl.sources else "none yet (no grade reports)")
    )
    out += [f"  note: {n}" for n in cl.notes]
    heads = {
        "hands-on": "HANDS-ON SKILLS (ticked from graded tests that passed)",
        "concept": "CONCEPTS (practise them: course checklist --quiz)",
        "design": "SYSTEM DESIGN (practise them: course checklist --quiz)",
    }
    for kind in KINDS:
        out += ["", heads[kind]]
        for s in cl.of_kind(kind):
            mark = _MARK.get(s.state, "[ ]")
            if kind == "hands-on":
                what = {
                    "proven": f"proven: {s.passed}/{s.needed} passed",
                    "partial": f"{s.passed}/{s.needed} passed",
                    "no-evidence": "no evidence yet",
                    "pending": "pending",
                }[s.state]
                out.append(f"{mark} {s.item.title}  [{_weeks(s.item.weeks)}]  {what}")
                if s.item.note:
                    out.append(f"      {s.item.note}")
                out += _proof_lines(s)
            else:
                rated = (
                    f"rated {s.rating.rating}/{BEST} ({s.rating.word}) on {s.rating.at[:10]}"
                    if s.rating
                    else "not practised yet"
                )
                out.append(f"{mark} {s.item.title}  [{_weeks(s.item.weeks)}]  {rated}")
                out.append(f"      lesson: {s.item.lesson}")
    total = cl.summary()
    out += [
        "",
        f"{total['hands-on']['done']} of {total['hands-on']['total']} hands-on skills proven; "
        f"{total['concept']['done']} of {total['concept']['total']} concepts and "
        f"{total['design']['done']} of {total['design']['total']} design prompts rated "
        f"{BEST}/{BEST}.",
    ]
    return "\n".join(out) + "\n"


def _code(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _md_evidence(s: ItemState) -> str:
    if s.state == "pending":
        return "the week is not in the course yet"
    if s.state == "no-evidence":
        return "not graded yet"
    parts = []
    for week in sorted({p.week for p in s.proofs if p.status != "pending"}):
        mine = [p for p in s.proofs if p.week == week]
        if all(p.status == "none" for p in mine):
            parts.append(f"week {week}: not graded yet")
        elif all(p.status == "passed" for p in mine):
            parts.append(f"week {week}: {_code(p.name for p in mine)}")
        else:
            ok = [p.name for p in mine if p.status == "passed"]
            todo = [p.name for p in mine if p.status != "passed"]
            parts.append(
                f"week {week}: {len(ok)} of {len(mine)} passed, still to pass {_code(todo)}"
            )
    return "; ".join(parts)


def _link(item: Item) -> str:
    """A Markdown link to the item's lesson section, named by its week."""
    found = re.match(r"weeks/0*(\d+)-", item.lesson)
    text = f"week {found.group(1)}" if found else item.lesson.split("#")[0]
    return f"[{text}]({item.lesson})"


def _cell(text: str) -> str:
    """Text that stays in one cell of a Markdown table."""
    return text.replace("|", "\\|")


def to_markdown(cl: Checklist, today: date | None = None) -> str:
    """A portfolio section for the student's README: proven skills and interview practice.

    Args:
        cl: The checklist.
        today: The date it names (default: today, UTC).
    """
    today = today or datetime.now(UTC).date()
    total = cl.summary()
    where = "; ".join(cl.sources) if cl.sources else "no grade reports yet"
    out = [
        "## MLOps skills proven by this repository",
        "",
        f"Checked by `course checklist` on {today.isoformat()} ({where}). A ticked skill "
        "names the graded tests of this repository's pipeline that passed "
        f"({total['hands-on']['done']} of {total['hands-on']['total']} skills proven).",
        "",
        "| | skill | weeks | evidence |",
        "|---|---|---|---|",
    ]
    icon = {"proven": "✅", "partial": "🟡"}
    for s in cl.of_kind("hands-on"):
        weeks = ", ".join(map(str, s.item.weeks))
        mark = icon.get(s.state, "⬜")
        out.append(f"| {mark} | {_cell(s.item.title)} | {weeks} | {_cell(_md_evidence(s))} |")
    out += [
        "",
        "### Interview preparation",
        "",
        "Questions practised with `course checklist --quiz`, self-rated against the course's "
        "model answers.",
        "",
        "| | question | lesson | self-rating |",
        "|---|---|---|---|",
    ]
    for s in (*cl.of_kind("concept"), *cl.of_kind("design")):
        done = "✅" if s.done else ("🟡" if s.rating else "⬜")
        rated = f"{s.rating.word} ({s.rating.at[:10]})" if s.rating else "not practised yet"
        out.append(f"| {done} | {_cell(s.item.title)} | {_link(s.item)} | {rated} |")
    return "\n".join(out) + "\n"


def to_json(cl: Checklist) -> str:
    """The checklist as JSON (``--format json``)."""
    return json.dumps(cl.to_dict(), indent=2, ensure_ascii=False) + "\n"


# --- the quiz ------------------------------------------------------------------------------


@dataclass
class QuizResult:
    """What a quiz did: the ids rated, how many questions it showed, where it saved."""

    rated: list[str]
    asked: int
    total: int
    file: Path
    interrupted: bool = False


def quiz_order(items: list[Item], ratings: dict[str, list[Rating]]) -> list[Item]:
    """Concepts and design prompts, weakest first: never rated, then lowest and oldest rating."""

    def key(item: Item) -> tuple[int, str]:
        history = ratings.get(item.id)
        return (0, "") if not history else (history[-1].rating, history[-1].at)

    return sorted((i for i in items if i.kind != "hands-on"), key=key)


class _Input:
    """Lines from ``stdin``; ``None`` at the end of input (Ctrl-D)."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.tty = stdin is sys.stdin and stdin.isatty()

    def line(self, prompt: str = "") -> str | None:
        if self.tty:  # input() gives the terminal's line editing
            try:
                return input(prompt)
            except EOFError:
                return None
        self.stdout.write(prompt)
        self.stdout.flush()
        text = self.stdin.readline()
        return None if text == "" else text.rstrip("\n")


def _wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, 88, initial_indent=indent, subsequent_indent=indent)


def quiz(
    path: Path | str = ".",
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    *,
    items: list[Item] | None = None,
    now: Callable[[], datetime] | None = None,
) -> QuizResult:
    """Ask the concepts and design prompts one at a time; save each self-rating at once.

    For each question: the student types an answer (an empty line ends it), the model
    answer is shown, the student rates themselves (1 missed it, 2 partly, 3 fully; ``s``
    skips, ``q`` quits). The end of input (Ctrl-D) or Ctrl-C ends the quiz cleanly: every
    rating given so far is already saved in ``PATH/.course/checklist.json``.

    Raises:
        CourseError: For a checkout that is not a folder or an unreadable ratings file.
    """
    path = Path(path)
    if not path.is_dir():
        raise CourseError(f"'{path}' is not a folder; give the path of your course checkout.")
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    now = now or (lambda: datetime.now(UTC))
    ratings = read_ratings(path)
    todo = quiz_order(load_items() if items is None else items, ratings)
    result = QuizResult([], 0, len(todo), path / RATINGS_FILE)
    read = _Input(stdin, stdout)
    say = stdout.write
    choices = ", ".join(f"{k} = {v}" for k, v in RATINGS.items())
    say(
        f"{len(todo)} questions, the weakest first. Answer as you would in an interview; "
        "an empty line ends your answer, Ctrl-D ends the quiz (what you rated is saved).\n"
    )
    try:
        for number, item in enumerate(todo, 1):
            result.asked = number
            say(f"\n[{number}/{len(todo)}] {item.kind}, {_weeks(item.weeks)}: {item.title}\n")
            say(_wrap(item.question) + "\n")
            say("Your answer (an empty line ends it):\n")
            while (line := read.line("> ")) is not None and line.strip():
                pass
            if line is None:
                break
            say(f"\nModel answer (lesson: {item.lesson}):\n{_wrap(item.answer)}\n")
            rating = None
            while rating is None:
                line = read.line(f"How did you do? {choices}, s = skip, q = quit: ")
                if line is None or line.strip().lower() in ("q", "s"):
                    break
                if line.strip() in {str(k) for k in RATINGS}:
                    rating = int(line.strip())
                else:
                    say(f"Type {', '.join(map(str, RATINGS))}, s or q.\n")
            if rating is not None:
                stamp = now().astimezone(UTC).isoformat(timespec="seconds")
                ratings.setdefault(item.id, []).append(Rating(rating, stamp))
                write_ratings(path, ratings)
                result.rated.append(item.id)
            elif line is None or line.strip().lower() == "q":
                break
    except KeyboardInterrupt:
        result.interrupted = True
    return result
