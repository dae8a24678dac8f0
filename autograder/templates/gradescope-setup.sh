#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (written by
# `course gradescope-package`; the package is this script's folder, /autograder/source).
# It installs the course's grader from the lock in the package: Python 3.11 and bubblewrap
# when missing, uv at the course's version, the locked packages, the grader itself.
#
# Settings (environment), to try it outside Gradescope: AUTOGRADER_ROOT (/autograder),
# COURSE_VENV ($AUTOGRADER_ROOT/venv), UV_OFFLINE=1 (install from uv's cache only),
# UV_COMPILE_BYTECODE=0 (skip compiling; faster set-up, slower grading).
set -euo pipefail

ROOT=${AUTOGRADER_ROOT:-/autograder}
SOURCE=$ROOT/source
VENV=${COURSE_VENV:-$ROOT/venv}
UV_VERSION={{uv_version}}
export UV_COMPILE_BYTECODE=${UV_COMPILE_BYTECODE:-1}

if ! command -v python3.11 >/dev/null || ! command -v bwrap >/dev/null; then
	apt-get update
	apt-get install -y --no-install-recommends python3.11 python3.11-venv bubblewrap
fi
UV=$(command -v uv || true)
if [ -z "$UV" ] || [ "$("$UV" --version | awk '{print $2}')" != "$UV_VERSION" ]; then
	python3.11 -m venv "$ROOT/uv"
	"$ROOT/uv/bin/python" -m pip install --quiet "uv==$UV_VERSION"
	UV=$ROOT/uv/bin/uv
fi
"$UV" venv --clear --python python3.11 "$VENV"
"$UV" pip install --python "$VENV/bin/python" -r "$SOURCE/requirements/lock.txt"
"$UV" pip install --python "$VENV/bin/python" --no-deps -e "$SOURCE"
# The instructor's files are root's only; the student's code never runs as root.
chmod -R go-rwx "$SOURCE/solutions"
chmod 755 "$SOURCE/run_autograder"
echo "setup.sh: the course's grader is installed in $VENV"
