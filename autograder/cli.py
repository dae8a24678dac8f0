"""The ``course`` command: a thin layer over the functions of :mod:`autograder`.

Every verb parses its arguments, calls one function and prints the result.
Problems a user can fix are printed as one sentence with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from autograder import CourseError, skip_iri_grammar
from autograder.config import CHECK_CELL_TIMEOUT, CHECK_TEST_TIMEOUT
from autograder.report import HIDDEN_VISIBILITIES
from autograder.sandbox import Limits

#: The defaults of ``course grade``'s limits, shared with the Python API.
LIMITS = Limits()

EXIT_PROBLEM = 2


def _seconds(text: str) -> float:
    """A positive number of seconds, for ``--cell-timeout`` and ``--test-timeout``."""
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number of seconds")
    return value


def _cmd_release(args: argparse.Namespace) -> int:
    from autograder.release import release

    result = release(week=args.week, check=args.check)
    if args.check:
        if result.in_sync:
            print("labs/ is in sync with solutions/.")
            return 0
        for rel in result.changed:
            print(f"stale:   labs/{rel}")
        for rel in result.removed:
            print(f"extra:   labs/{rel}")
        print("labs/ is stale: run `course release` and commit labs/.", file=sys.stderr)
        return 1
    for rel in result.changed:
        print(f"wrote    labs/{rel}")
    for rel in result.removed:
        print(f"removed  labs/{rel}")
    print("labs/ is up to date." if result.in_sync else "labs/ regenerated.")
    return 0


def _row_lines(t, width: int, verbose: bool) -> list[str]:
    """A check row as printed: the row, then its reason (every line with ``verbose``)."""
    from autograder.check import SKIPPED

    shown = (
        "-"
        if t.status in ("manual", "skipped") or not t.max_score
        else f"{t.score:g}/{t.max_score:g}"
    )
    status = SKIPPED if t.status == "skipped" else t.status
    lines = [f"{t.name:<{width}}  {t.source:<8}  {shown:>6}  {status}"]
    if t.status in ("passed", "manual"):
        return lines
    text = (t.details or t.output) if verbose else t.output
    details = [
        piece
        for line in text.splitlines()
        if line.strip()
        for piece in textwrap.wrap(line, 100, subsequent_indent="  ") or [""]
    ]
    keep = details if verbose or t.status == "skipped" else details[:4]
    lines += [f"{'':<{width}}    {line}" for line in keep]
    if len(keep) < len(details) or (not verbose and t.details.strip() != t.output.strip()):
        lines.append(f"{'':<{width}}    (more with --verbose)")
    return lines


def _cmd_check(args: argparse.Namespace) -> int:
    from autograder.check import check, plan

    p = plan(args.week, task=args.task)
    width = max([len(n) for n in p.names] + [10])
    which = f", task {p.task}" if p.task is not None else ""
    print(f"Week {p.week}{which}, checking {p.labs} (visible tests only)")
    cells, tests = len(p.cells), len(p.tests)
    print(
        f"{cells} notebook {'item' if cells == 1 else 'items'} and {tests} component "
        f"{'test' if tests == 1 else 'tests'}; each row appears as soon as it is known.\n",
        flush=True,
    )
    print(f"{'test':<{width}}  {'part':<8}  {'points':>6}  result", flush=True)

    def show(row) -> None:
        print("\n".join(_row_lines(row, width, args.verbose)), flush=True)

    try:
        result = check(
            args.week,
            p.labs,
            task=args.task,
            cell_timeout=args.cell_timeout,
            test_timeout=args.test_timeout,
            on_row=show,
        )
    except KeyboardInterrupt:
        print("course check: interrupted; every process it started has ended.", file=sys.stderr)
        return 130
    print(f"\nvisible score: {result.score:g} / {result.max_score:g}")
    if args.verbose and result.cell_seconds:
        cell, secs = max(result.cell_seconds.items(), key=lambda kv: kv[1])
        print(f"slowest cell: {cell} {secs:g} s of a {args.cell_timeout:g} s limit")
    if args.verbose and result.phases:
        print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items()))
    if any(t.status == "skipped" for t in result.tests):
        print(f"Skipped tests are not counted here: they are {SKIPPED_NOTE}.")
    print("Hidden tests and written answers count in your grade too.")
    return 0 if result.score == result.max_score else 1


#: Why a skipped component test does not count in ``course check``'s visible score.
SKIPPED_NOTE = "checked by your instructor's grader (on the reference files)"


def _cmd_grade(args: argparse.Namespace) -> int:
    from autograder.grade import PROBLEM_FLAGS, grade
    from autograder.merge import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    reports = grade(
        [Path(p) for p in args.submissions],
        week=args.week,
        out=Path(args.out),
        progress=not args.quiet,
        all_weeks=args.all,
        jobs=args.jobs,
        force=args.force,
        limits=Limits(
            cell_timeout=args.cell_timeout,
            test_timeout=args.test_timeout,
            memory_mb=args.memory_mb,
        ),
        gradescope=args.gradescope,
        shard=shard,
        hidden_visibility=args.hidden_visibility,
        trust_submissions=args.trust_submissions,
    )
    if shard is not None:
        graded = len({r.student for r in reports})
        print(f"shard {shard}: {graded} of the {len(args.submissions)} submissions")
    problems = 0
    for r in reports:
        flags = f"  [{', '.join(r.flags)}]" if r.flags else ""
        manual = "  (written answers to grade)" if r.needs_manual_grading else ""
        print(f"{r.student:<24} week {r.week}: {r.score:g} / {r.max_score:g}{flags}{manual}")
        for reason in r.reasons:
            print(f"    {reason}")
        problems += bool(PROBLEM_FLAGS & set(r.flags))
    if reports and not reports[0].hidden_tests:
        print("note: hidden tests were not available; grades use the visible tests only.")
    weak = sorted({r.isolation for r in reports if r.isolation and r.isolation != "uid+wall"})
    if weak:
        print(
            f"note: isolation was {', '.join(weak)}; see the README (For instructors) "
            "before grading untrusted code this way."
        )
    print(f"reports in {args.out}/, class grades in {Path(args.out) / 'grades.csv'}")
    return 3 if problems else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from autograder.export import export_student

    dest = export_student(Path(args.dest))
    print(f"student template written to {dest}")
    return 0


# --- course checklist (the interview-prep and portfolio checklist) ---------------------------


def _cmd_checklist(args: argparse.Namespace) -> int:
    from autograder import checklist as ck

    path = Path(args.path)
    if args.quiz:
        result = ck.quiz(path)
        stopped = "stopped; " if result.interrupted else ""
        print(
            f"\nQuiz {stopped}{len(result.rated)} of {result.total} questions rated"
            + (f", saved in {result.file}." if result.rated else ".")
        )
        return 130 if result.interrupted else 0

    def progress(week: int) -> None:
        print(f"running `course check {week}` ...", file=sys.stderr, flush=True)

    cl = ck.checklist(
        path,
        grades=None if args.grades is None else Path(args.grades),
        student=args.student,
        run_checks=args.run_checks,
        on_week=progress,
    )
    render = {"table": ck.to_table, "md": ck.to_markdown, "json": ck.to_json}[args.format]
    sys.stdout.write(render(cl))
    return 0


def _add_checklist(verbs: argparse._SubParsersAction) -> None:
    chl = verbs.add_parser(
        "checklist", help="the interview-prep and portfolio checklist of your checkout"
    )
    chl.add_argument("path", nargs="?", default=".", help="your course checkout (default: .)")
    chl.add_argument(
        "--grades", metavar="DIR",
        help="the grade reports' folder (default: PATH/grades, written by `course grade`)",
    )  # fmt: skip
    chl.add_argument("--student", help="whose reports, when DIR holds several students'")
    chl.add_argument(
        "--format", choices=("table", "md", "json"), default="table",
        help="table (default), md (a portfolio section for your README) or json",
    )  # fmt: skip
    chl.add_argument(
        "--quiz", action="store_true",
        help="practise the concepts and design prompts one at a time; ratings saved in "
        "PATH/.course/checklist.json",
    )  # fmt: skip
    chl.add_argument(
        "--run-checks", action="store_true",
        help="also run `course check N` for every week with evidence (minutes)",
    )  # fmt: skip
    chl.set_defaults(func=_cmd_checklist)


# --- end of course checklist ----------------------------------------------------------------


# --- grading beyond one machine: course merge, course gradescope-package ---------------------


def _cmd_merge(args: argparse.Namespace) -> int:
    from autograder.merge import merge

    done = merge([Path(p) for p in args.outs], Path(args.out))
    shards = sum(1 for p in done.pieces if p.shard)
    print(
        f"merged {len(done.pieces)} folders ({shards} shards): {done.students} students, "
        f"{done.reports} reports; class grades in {done.csv}"
    )
    return 0


def _cmd_gradescope_package(args: argparse.Namespace) -> int:
    from autograder.gradescope import package

    path = package(args.week, Path(args.out), hidden_visibility=args.hidden_visibility)
    print(f"Gradescope autograder for week {args.week}: {path} (upload it as the autograder zip)")
    return 0


def _add_hidden_visibility(parser: argparse.ArgumentParser) -> None:
    """``--hidden-visibility``: what students see of hidden tests on Gradescope."""
    parser.add_argument(
        "--hidden-visibility", choices=HIDDEN_VISIBILITIES, default=HIDDEN_VISIBILITIES[0],
        help="what students see of hidden tests on Gradescope: after grades are published "
        "(after_published, the default) or never (hidden)",
    )  # fmt: skip


def _add_scale_verbs(verbs: argparse._SubParsersAction) -> None:
    mrg = verbs.add_parser("merge", help="merge the --out folders of sharded `course grade` runs")
    mrg.add_argument("outs", nargs="+", metavar="OUT_DIR", help="a shard's --out folder")
    mrg.add_argument("--out", required=True, help="the merged folder (new, or an earlier merge)")
    mrg.set_defaults(func=_cmd_merge)
    gsp = verbs.add_parser(
        "gradescope-package", help="write week N's autograder zip for Gradescope (instructors)"
    )
    gsp.add_argument("--week", required=True, help="the week number, e.g. 1")
    gsp.add_argument(
        "--out", default="build/gradescope", help="folder of the zip (default: build/gradescope)"
    )
    _add_hidden_visibility(gsp)
    gsp.set_defaults(func=_cmd_gradescope_package)


# --- end of grading beyond one machine -------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``course`` argument parser; each option carries its own help."""
    parser = argparse.ArgumentParser(
        prog="course", description="Run, check and grade the MLOps course."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    rel = verbs.add_parser("release", help="regenerate labs/ from solutions/ (instructors)")
    rel.add_argument("--week", type=int, help="only this week's files (default: all weeks)")
    rel.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when labs/ is stale"
    )
    rel.set_defaults(func=_cmd_release)

    chk = verbs.add_parser("check", help="run week N's visible tests on your own work (students)")
    chk.add_argument("week", help="the week number, e.g. 1")
    chk.add_argument(
        "--task", type=int, metavar="K",
        help="only task K's notebook cells and component tests (after the set-up cells and "
        "the cells of the tasks before K, which it may use)",
    )  # fmt: skip
    chk.add_argument(
        "--cell-timeout", type=_seconds, default=CHECK_CELL_TIMEOUT, metavar="S",
        help=f"seconds a notebook cell may run (default: {CHECK_CELL_TIMEOUT})",
    )  # fmt: skip
    chk.add_argument(
        "--test-timeout", type=_seconds, default=CHECK_TEST_TIMEOUT, metavar="S",
        help=f"seconds a component test may run, at least (default: {CHECK_TEST_TIMEOUT})",
    )  # fmt: skip
    chk.add_argument(
        "--verbose", action="store_true", help="the full message of every row that did not pass"
    )
    chk.set_defaults(func=_cmd_check)

    grd = verbs.add_parser("grade", help="grade students' checkouts (instructors, CI)")
    grd.add_argument(
        "submissions", nargs="+", metavar="SUBMISSION", help="a student's checkout (holds labs/)"
    )
    which = grd.add_mutually_exclusive_group()
    which.add_argument(
        "--week", type=int, help="only this week (default: every week a submission has)"
    )
    which.add_argument(
        "--all", action="store_true", help="every week of the course, missing labs score 0"
    )
    grd.add_argument(
        "--jobs", type=int, default=None, help="submissions graded at once (default: the cores)"
    )
    grd.add_argument(
        "--out", default="grades", help="folder for reports and grades.csv (default: grades)"
    )
    grd.add_argument("--force", action="store_true", help="grade again what is already graded")
    grd.add_argument(
        "--trust-submissions", action="store_true",
        help="grade without the bubblewrap wall where it cannot be built (only work you trust)",
    )  # fmt: skip
    grd.add_argument(
        "--cell-timeout", type=int, default=LIMITS.cell_timeout,
        help=f"seconds a notebook cell may run (default: {LIMITS.cell_timeout})",
    )  # fmt: skip
    grd.add_argument(
        "--test-timeout", type=int, default=LIMITS.test_timeout,
        help=f"seconds one component test may run (default: {LIMITS.test_timeout})",
    )  # fmt: skip
    grd.add_argument(
        "--memory-mb", type=int, default=LIMITS.memory_mb,
        help=f"memory of each process of the student's code (default: {LIMITS.memory_mb})",
    )  # fmt: skip
    grd.add_argument(
        "--gradescope", action="store_true", help="also write Gradescope results.json files"
    )
    _add_hidden_visibility(grd)
    grd.add_argument(
        "--shard", metavar="K/N",
        help="grade only the K-th of N slices of the submissions (K from 0), for `course merge`",
    )  # fmt: skip
    grd.add_argument("--quiet", action="store_true", help="no progress bar")
    grd.set_defaults(func=_cmd_grade)

    exp = verbs.add_parser(
        "export-student", help="write the student template (no solutions, no hidden tests)"
    )
    exp.add_argument("dest", help="an empty or new folder")
    exp.set_defaults(func=_cmd_export)
    _add_checklist(verbs)  # course checklist
    _add_scale_verbs(verbs)  # course merge, course gradescope-package
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``course`` command."""
    skip_iri_grammar()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as err:
        print(f"course: {err}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        print("course: interrupted; finished reports are kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`course check 1 | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
