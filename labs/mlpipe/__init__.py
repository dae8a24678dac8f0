"""mlpipe: the course's one ML pipeline, built a stage a week.

Each module is one pipeline stage and belongs to the week that builds it:

* ``mlpipe.config``: paths and validated parameters (given).
* ``mlpipe.train``: week 1, train the Iris model and save it with metadata.

Importing the package has no side effects: nothing is read, written or
downloaded until a function is called.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
