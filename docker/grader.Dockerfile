# The grading image for classes whose code you do not trust. `course grade` runs
# inside it as root so that it can give each student's code a user id of its own;
# the container adds what the grader alone cannot: no network, a throw-away file
# system, and the instructor's machine out of reach.
# Build it from the course repository's root and run it without network:
#   docker build -f docker/grader.Dockerfile -t course-grader .
#   docker run --rm --init --network none --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
#     -v "$PWD/submissions:/class/submissions:ro" -v "$PWD/grades:/class/grades" \
#     course-grader sh -c 'course grade /class/submissions/* --week 1 --out /class/grades'
# (--init reaps the processes students' code leaves behind; /class is readable by
# root only, so one student's code cannot read another's checkout.)
FROM python:3.11.7-slim

# Telemetry off: the variables of autograder/telemetry.env (tests/test_setup.py keeps them the same).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
WORKDIR /course

# bubblewrap is the wall `course grade` puts around each student's code (autograder/sandbox.py);
# it needs the namespaces a default container withholds: run with --cap-add SYS_ADMIN and
# --security-opt seccomp=unconfined (or --privileged), else grading untrusted work is refused.
# The base image's Debian release fixes its version (and brings its security updates).
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
# The course's one lock file pins every package, as for `make install`.
COPY requirements/lock.txt /course/requirements/lock.txt
RUN pip install --no-cache-dir -r /course/requirements/lock.txt
COPY . /course
# The instructor's solutions and hidden tests, and the class folder, are root's only.
RUN pip install --no-cache-dir --no-deps -e /course \
    && chmod -R go-rwx /course/solutions \
    && mkdir -m 700 /class

CMD ["course", "grade", "--help"]
