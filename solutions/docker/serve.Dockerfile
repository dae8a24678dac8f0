# Week 5: the serving image. It runs `python -m mlpipe serve`, as on a laptop:
# uvicorn with the app, the model pulled from the MLflow registry
# by alias at start-up (MLPIPE_SERVE_* variables; see compose.yaml).
# Build it from the repository root (there is no Docker engine on the course
# machines; the tests lint this file and run its command outside Docker):
#   docker build -f labs/docker/serve.Dockerfile -t mlpipe-serve .
#   docker run --rm -p 8000:8000 -e MLPIPE_SERVE_TRACKING_URI=http://mlflow:5000 mlpipe-serve

# labs for your own code; the instructor builds the reference with solutions.
ARG PIPELINE_DIR=labs
# Any Python 3.11 image will do as the base of both stages: week 7 builds on a local one,
# offline (make images passes --build-arg BASE_IMAGE=localhost/mlpipe-base:bookworm).
ARG BASE_IMAGE=python:3.11.7-slim

### BEGIN SOLUTION
# Stage 1: build every wheel with the build tools; none of them reach the final image.
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Pins come from the course's one lock file.
COPY requirements/lock.txt /tmp/requirements/lock.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c /tmp/requirements/lock.txt \
        mlflow-skinny scikit-learn skops pandas numpy pyyaml \
        fastapi pydantic-settings uvicorn uvloop httptools prometheus-client \
        skl2onnx onnx onnxruntime

# Stage 2: the runtime, a plain Python with the venv and the package, as a non-root user.
FROM ${BASE_IMAGE} AS runtime
ARG PIPELINE_DIR
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    MLPIPE_HOME=/app \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1
RUN useradd --create-home --uid 10001 mlpipe \
    && mkdir -p /app/logs \
    && chown -R mlpipe /app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY ${PIPELINE_DIR}/mlpipe /app/mlpipe
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# `python -m mlpipe serve` runs uvicorn on the app; a missing model or alias stops it
# with one sentence (exit code 2) instead of uvicorn's traceback.
CMD ["python", "-m", "mlpipe", "serve", "--host", "0.0.0.0", "--port", "8000"]
### END SOLUTION
