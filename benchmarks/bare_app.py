"""The serving benchmark's physical reference: FastAPI under uvicorn, nothing else.

The same framework and server as ``mlpipe.serve``, with no model, no validation,
no inference log and no metrics: ``/predict`` reads the body and answers a
constant of the same shape. What ``mlpipe.serve`` reaches of its requests per
second is what the app's own work costs.
"""

from fastapi import FastAPI, Request

app = FastAPI()
ANSWER = {"request_id": "0" * 32, "model_version": "1", "prediction": "virginica"}


@app.get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/predict")
async def predict(request: Request) -> dict[str, str]:
    await request.body()
    return ANSWER
