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

# YOUR CODE HERE
