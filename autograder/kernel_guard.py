"""Checks the grader runs inside a student's notebook kernel, between cells.

A notebook's test cells run in the same interpreter as the student's answers,
so a student can try to make them pass without doing the work. The grader
records the kernel's machinery before the first cell (:func:`snapshot`) and
after every cell asks :func:`check` what changed:

* builtins replaced;
* IPython's, ipykernel's or the messaging session's methods replaced (on the
  class or on the object), an exception handler of the notebook's own, event
  callbacks or input transformers that do not come from IPython;
* functions or classes of ``mlpipe`` redefined by the notebook, or names such as
  ``train`` rebound to objects the notebook made.

The grader calls these through the kernel's ``user_expressions``; both return
plain strings. Nothing here is imported by the grader itself.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import types

#: Set by the sandbox launcher: the student's labs/ copy.
LABS = ""
#: Names ipykernel and IPython swap in and out of builtins themselves.
_VOLATILE = {"_", "__", "___", "input", "getpass", "exit", "quit", "get_ipython", "display"}
_TRUSTED = ("IPython", "ipykernel", "jupyter_client", "autograder", "traitlets", "zmq")

_snap: dict = {}


def _methods(objects) -> dict:
    found = {}
    for obj in objects:
        for cls in type(obj).__mro__:
            if cls is object:
                continue
            for name, value in vars(cls).items():
                if callable(value) or isinstance(value, staticmethod | classmethod | property):
                    found[(cls, name)] = value
    return found


def _machinery():
    from IPython import get_ipython

    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    session = getattr(kernel, "session", None)
    return [o for o in (shell, kernel, session) if o is not None]


def _from_notebook(obj) -> bool:
    """True for a function, class or instance the notebook itself created."""
    code = getattr(obj, "__code__", None)
    if code is not None:
        name = code.co_filename
        return name.startswith("<") or "ipykernel_" in name
    module = getattr(obj, "__module__", None)
    if isinstance(obj, type):
        return module == "__main__"
    return getattr(type(obj), "__module__", None) == "__main__"


def _mlpipe_names(namespace: dict) -> dict:
    watched = {}
    for name, obj in namespace.items():
        module = (
            obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "")
        )
        if isinstance(module, str) and module.split(".")[0] == "mlpipe":
            watched[name] = obj
    return watched


def snapshot() -> str:
    """Record the kernel's state before any cell of the notebook runs."""
    objects = _machinery()
    _snap.update(
        builtins=dict(vars(builtins)),
        methods=_methods(objects),
        instance={id(o): set(vars(o)) for o in objects},
        excepthook=sys.excepthook,
        names={},
    )
    return "ok"


def _outside_labs(code) -> bool:
    path = os.path.realpath(code.co_filename)
    # Resolved like ``path``: a symlinked venv (a git worktree's) is still the venv.
    keep = {os.path.realpath(root) for root in (LABS, sys.prefix, sys.base_prefix) if root}
    return not any(path.startswith(root + os.sep) for root in keep)


def check() -> str:
    """Return a JSON list of what the notebook changed that tests rely on."""
    found = []
    if not _snap:
        return json.dumps(["the grader's checks were not set up in this kernel"])
    now = vars(builtins)
    for name, obj in _snap["builtins"].items():
        if name not in _VOLATILE and now.get(name) is not obj:
            found.append(f"builtins.{name} was replaced")
    objects = _machinery()
    for (cls, name), value in _snap["methods"].items():
        if vars(cls).get(name) is not value:
            found.append(f"{cls.__name__}.{name} was replaced")
    for obj in objects:
        known = _snap["instance"].get(id(obj), set())
        for name in set(vars(obj)) - known:
            if callable(vars(obj)[name]) and any(name in vars(c) for c in type(obj).__mro__):
                found.append(f"{type(obj).__name__}.{name} was overridden")
    shell = objects[0]
    if getattr(shell, "custom_exceptions", ()):
        found.append("the notebook installed its own exception handler")
    if sys.excepthook is not _snap["excepthook"]:
        found.append("sys.excepthook was replaced")
    for event, callbacks in getattr(shell.events, "callbacks", {}).items():
        for callback in callbacks:
            module = getattr(callback, "__module__", None) or type(callback).__module__
            if not str(module).startswith(_TRUSTED):
                found.append(f"the notebook registered a '{event}' callback")
    for attr in ("ast_transformers", "input_transformers_post", "input_transformers_cleanup"):
        for item in getattr(shell, attr, []):
            module = getattr(item, "__module__", None) or type(item).__module__
            if not str(module).startswith(_TRUSTED):
                found.append(f"the notebook added an input or AST transformer ({attr})")
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != "mlpipe" or not isinstance(module, types.ModuleType):
            continue
        for attr, obj in list(vars(module).items()):
            code = getattr(obj, "__code__", None)
            if (code is not None and _outside_labs(code)) or (
                isinstance(obj, type) and obj.__module__ == "__main__"
            ):
                found.append(f"{name}.{attr} was redefined by the notebook")
    user_ns = shell.user_ns
    watched = _snap["names"]
    for name, obj in watched.items():
        new = user_ns.get(name, obj)
        if new is not obj and _from_notebook(new):
            found.append(f"the notebook replaced '{name}' with an object of its own")
    for name, obj in _mlpipe_names(user_ns).items():
        watched.setdefault(name, obj)
    return json.dumps(sorted(set(found)))
