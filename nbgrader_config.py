# nbgrader configuration for JupyterLab's nbgrader extension (`make lab`).
# `course grade --out grades` keeps its gradebook in grades/nbgrader; the
# formgrader opens it there, so instructors enter written-answer grades where
# the reports come from. Students only use the Validate button.
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "mlops-roadmap"
c.CourseDirectory.root = "grades/nbgrader"
