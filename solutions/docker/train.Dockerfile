# Week 1: the training image. It runs the same command as `python -m mlpipe train`
# on a laptop, so the model it writes is reproducible from the image alone.
# Build it from the repository root (there is no Docker engine on the course
# machines; the tests lint this file and run its command outside Docker):
#   docker build -f labs/docker/train.Dockerfile -t mlpipe-train .
#   docker run --rm -v "$PWD/models:/app/models" mlpipe-train
# Any Python 3.11 image will do as the base: week 7 builds on a local one, offline
# (make images passes --build-arg BASE_IMAGE=localhost/mlpipe-base:bookworm).
ARG BASE_IMAGE=python:3.11.7-slim
FROM ${BASE_IMAGE}

# labs for your own code; the instructor builds the reference with solutions.
ARG PIPELINE_DIR=labs
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLPIPE_HOME=/app
WORKDIR /app

# Pins come from the course's one lock file; train.txt names what training needs.
COPY requirements/lock.txt requirements/train.txt /tmp/requirements/
### BEGIN SOLUTION
RUN pip install --no-cache-dir -r /tmp/requirements/train.txt -c /tmp/requirements/lock.txt \
    && useradd --create-home --uid 10001 mlpipe \
    && mkdir -p /app/models \
    && chown -R mlpipe /app
COPY ${PIPELINE_DIR}/mlpipe /app/mlpipe
COPY ${PIPELINE_DIR}/params.yaml /app/params.yaml
USER 10001
CMD ["python", "-m", "mlpipe", "train", "--params", "params.yaml", "--out", "models/iris-classifier"]
### END SOLUTION
