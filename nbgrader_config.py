# nbgrader configuration for JupyterLab's nbgrader extension (`make lab`).
# `course grade --out grades` keeps its gradebook in grades/nbgrader; the
# formgrader opens it there, so instructors enter written-answer grades where
# the reports come from. Students only use the Validate button.
from contextlib import suppress
from pathlib import Path

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "mlops-roadmap"
c.CourseDirectory.root = "grades/nbgrader"

# The formgrader warns "The exchange directory ... does not exist" unless the
# exchange (where release and collect put files) is a folder that exists and is
# writable; nbgrader never creates it, and its default is a system folder
# (/usr/local/share/nbgrader/exchange). The course keeps one beside the
# gradebook, under the git-ignored grades/, and makes it here.
exchange = Path(__file__).resolve().parent / "grades" / "exchange"
# (In a read-only checkout it cannot, and the formgrader says so.)
with suppress(OSError):
    exchange.mkdir(parents=True, exist_ok=True)
c.Exchange.root = str(exchange)
