"""nbgrader's ``Execute`` step, made to survive what students' notebooks do.

nbgrader's own step gives up on a whole notebook when its kernel dies (it even
deletes the student's autograded folder) or when a cell ignores the interrupt
sent at its time limit. :class:`GuardedExecute` replaces it in nbgrader's real
``autograde`` pipeline (sanitising, restoring locked cells and saving grades stay
nbgrader's) and differs in what happens after something goes wrong:

* a cell that kills its kernel (``os._exit``, a signal, a segmentation fault),
  that ignores the interrupt, or that runs out of memory or processes gets an
  error output saying so; the kernel is restarted, the cells that had run
  without error are run again silently, and grading goes on with the next cell;
* the notebook's output is capped (error outputs are always kept, shortened);
* after every cell the grader checks the kernel for tampering
  (:mod:`autograder.kernel_guard`) and at the end runs a canary: an assertion
  that must fail. If anything was tampered with, every autograded test cell
  gets an error output, so nbgrader itself scores it zero.

What happened is written as JSON to ``findings_path`` for the report.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import secrets
from queue import Empty
from time import monotonic

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Int, Unicode

from autograder.config import MAX_ERROR_TEXT, MAX_KERNEL_RESTARTS, OUTPUT_KB, OUTPUT_LIMIT_MARKER
from autograder.sandbox import describe_exit, inner_exit

_RESOURCE_ERRORS = {"MemoryError", "_ArrayMemoryError", "BlockingIOError"}
_GUARD = "__import__('autograder.kernel_guard').kernel_guard"


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )


class GuardedExecute(Execute):
    """nbgrader's ``Execute`` that restarts dead or stuck kernels and checks for tampering."""

    findings_path = Unicode("", help="Where to write what happened, as JSON.").tag(config=True)
    output_limit = Int(OUTPUT_KB * 1024, help="Characters of output kept per notebook.").tag(
        config=True
    )
    max_restarts = Int(
        MAX_KERNEL_RESTARTS, help="Kernel restarts before the remaining cells are skipped."
    ).tag(config=True)
    sandbox_uid = Int(-1, help="User id of the student's processes (-1: none).").tag(config=True)
    walled = Bool(False, help="The kernel runs behind the wall (bubblewrap).").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        """Execute every code cell, surviving kernel deaths; see the module docstring."""
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._findings = {
            "events": [],
            "problems": [],
            "canary": "not run",
            "restarts": 0,
            "output_truncated": False,
        }
        self._kept = 0
        ran_ok: list[int] = []
        try:
            self._start()
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if self._findings["restarts"] > self.max_restarts:
                    cell.outputs = [_error("CellNotRun", "not run: the kernel died too often")]
                    continue
                outcome = self._run(cell, index)
                if outcome == "ok":
                    ran_ok.append(index)
                elif outcome == "restart":
                    self._restart(ran_ok)
                self._check(index)
            self._canary()
        finally:
            self._stop()
        if self._findings["problems"]:
            self._zero_tests()
        self.set_widgets_metadata()
        if self.findings_path:
            with open(self.findings_path, "w", encoding="utf-8") as handle:
                json.dump(self._findings, handle)
        return self.nb, self.resources

    # --- kernel life cycle -----------------------------------------------------------

    def _start(self) -> None:
        self.km = self.create_kernel_manager()
        self.start_new_kernel()
        self.start_new_kernel_client()
        info = self.wait_for_reply(self.kc.kernel_info())
        if info and "language_info" in info["content"]:
            self.nb.metadata["language_info"] = info["content"]["language_info"]
        self._guarded = self._expression("snapshot()", timeout=60) == "ok"
        if not self._guarded:
            self._findings["events"].append({"kind": "checks-unavailable", "cell": None})

    def _exit_code(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return None if process is None else inner_exit(process.poll(), self.walled)

    def _stop(self) -> None:
        if self.km is None:
            return
        with contextlib.suppress(Exception):  # a half-dead kernel is killed below anyway
            self._cleanup_kernel()
        self.km = None
        self.kc = None
        self._sweep()

    def _sweep(self) -> None:
        """Kill every process the student's notebook left behind."""
        if self.sandbox_uid >= 0:
            from autograder.sandbox import kill_user

            kill_user(self.sandbox_uid)

    def _restart(self, ran_ok: list[int]) -> None:
        """A fresh kernel in the state the notebook had: earlier good cells run again."""
        self._findings["restarts"] += 1
        self._stop()
        self._start()
        for index in ran_ok:
            original = self.nb.cells[index]
            replay = copy.deepcopy(original)
            try:
                self.execute_cell(replay, index, store_history=False)
            except (DeadKernelError, CellTimeoutError):
                self._findings["events"].append({"kind": "replay-failed", "cell": index})
                self.nb.cells[index] = original
                self._stop()
                self._start()
                return
            self.nb.cells[index] = original

    # --- cells -------------------------------------------------------------------------

    def _event(self, kind: str, index: int, cell, detail: str = "") -> None:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        self._findings["events"].append(
            {"kind": kind, "cell": index, "grade_id": grade_id, "detail": detail}
        )

    def _run(self, cell, index: int) -> str:
        """Execute one cell; return ``ok``, ``error`` or ``restart``."""
        try:
            self.execute_cell(cell, index, store_history=True)
        except DeadKernelError:
            how = describe_exit(self._exit_code())
            cell.outputs.append(
                _error("DeadKernelError", f"The kernel died while this cell ran: {how}.")
            )
            self._event("kernel-died", index, cell, how)
            return "restart"
        except CellTimeoutError:
            cell.outputs.append(
                _error(
                    "CellTimeoutError",
                    f"The cell ran past the {self.timeout} s limit and ignored the interrupt.",
                )
            )
            self._event("hung", index, cell)
            return "restart"
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            return "ok"
        names = {o.get("ename") for o in errors}
        if "CellTimeoutError" in names:
            self._event("timeout", index, cell)
        if names & _RESOURCE_ERRORS:
            self._event("resource", index, cell, sorted(names & _RESOURCE_ERRORS)[0])
            return "restart"
        if "SystemExit" in names:
            self._event("exit", index, cell)
        return "error"

    def output(self, outs, msg, display_id, cell_index):
        """Keep outputs up to ``output_limit`` characters; always keep (short) errors."""
        content = msg.get("content", {})
        if msg.get("msg_type") == "error":
            content["evalue"] = str(content.get("evalue", ""))[:MAX_ERROR_TEXT]
            content["traceback"] = [
                str(t)[:MAX_ERROR_TEXT] for t in content.get("traceback", [])[-50:]
            ]
            return super().output(outs, msg, display_id, cell_index)
        if OUTPUT_LIMIT_MARKER in str(content.get("text", "")):
            self._findings["output_truncated"] = True  # the kernel dropped the rest itself
        size = len(content.get("text", "")) + sum(
            len(str(v)) for v in content.get("data", {}).values()
        )
        if self._kept + size > self.output_limit:
            if not self._findings["output_truncated"]:
                self._findings["output_truncated"] = True
                outs.append(
                    NotebookNode(
                        output_type="stream",
                        name="stderr",
                        text=OUTPUT_LIMIT_MARKER + "\n",
                    )
                )
            return None
        self._kept += size
        return super().output(outs, msg, display_id, cell_index)

    # --- integrity ---------------------------------------------------------------------

    def _expression(self, call: str, timeout: int = 10) -> str | None:
        """Evaluate ``kernel_guard.<call>`` in the kernel; return its string value."""
        try:
            msg_id = self.kc.execute(
                "", silent=True, store_history=False, user_expressions={"r": f"{_GUARD}.{call}"}
            )
            reply = self._reply(msg_id, timeout)
        except (DeadKernelError, CellTimeoutError, RuntimeError):
            return None
        result = (reply or {}).get("content", {}).get("user_expressions", {}).get("r", {})
        if result.get("status") != "ok":
            return None
        try:
            return ast.literal_eval(result["data"]["text/plain"])
        except (KeyError, ValueError, SyntaxError):
            return None

    async def _async_reply(self, msg_id: str, timeout: float) -> dict | None:
        """The shell reply to ``msg_id``, or None when it does not come in time."""
        deadline = monotonic() + timeout
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(left, 1.0)))
            except Empty:
                if not await ensure_async(self.km.is_alive()):
                    return None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    _reply = run_sync(_async_reply)

    def _check(self, index: int) -> None:
        if self.kc is None or not self._guarded:
            return
        raw = self._expression("check()")
        if raw is None:
            return  # a dead or busy kernel is reported by the cell itself
        try:
            found = json.loads(raw)
        except ValueError:
            found = ["the grader's checks returned nonsense"]
        new = [p for p in found if p not in self._findings["problems"]]
        self._findings["problems"] += new

    def _canary(self) -> None:
        """Run an assertion that must fail; if it passes, failures are being hidden."""
        if self.kc is None:
            return
        first, second = secrets.randbelow(10**9), secrets.randbelow(10**9) + 10**9
        try:
            msg_id = self.kc.execute(f"assert {first} == {second}", store_history=False)
            reply = self._reply(msg_id, max(self.timeout or 30, 10))
        except (DeadKernelError, RuntimeError):
            reply = None
        if reply is None:
            self._findings["canary"] = "no reply"
            return
        content = reply["content"]
        if content.get("status") == "error" and content.get("ename") == "AssertionError":
            self._findings["canary"] = "ok"
        else:
            self._findings["canary"] = "passed"
            self._findings["problems"].append("a test that must fail passed: failures are hidden")

    def _zero_tests(self) -> None:
        """Give every autograded test cell an error, so that nbgrader scores it zero."""
        why = (
            "not scored: the notebook tampered with grading (" + self._findings["problems"][0] + ")"
        )
        for cell in self.nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                cell.setdefault("outputs", []).append(_error("GradingIntegrityError", why))
