"""Week 7: a load test of the week 5 API with Locust.

Each simulated user posts one Iris flower at a time to ``/predict`` (and, one
request in ten, a batch of ten to ``/predict/batch``) and checks every answer:
status 200, a request id, and a known species for each row. A wrong answer is a
failure in Locust's statistics, not only a slow one. Run it headless against one
replica of the API, then plan the replicas from its CSV::

    python -m mlpipe serve --port 8000 &
    locust -f solutions/loadtest/locustfile.py --headless -u 8 -r 4 -t 30s \\
        --host http://127.0.0.1:8000 --csv reports/load --only-summary
    python -m mlpipe capacity --stats reports/load_stats.csv \\
        --history reports/load_stats_history.csv --write-hpa solutions/k8s/hpa.yaml

``MLPIPE_LOCUST_WAIT`` (seconds, default 0) is each user's pause between
requests: 0 keeps every user busy, so ``-u`` is the number of requests in flight.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, constant, task

#: The species the model may answer.
SPECIES = frozenset({"setosa", "versicolor", "virginica"})
#: The four measurements, in centimetres, as the API's schema names them.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
#: A few real Iris flowers (Fisher's data), all inside week 2's valid range.
FLOWERS = (
    (5.1, 3.5, 1.4, 0.2),
    (4.9, 3.0, 1.4, 0.2),
    (5.4, 3.9, 1.7, 0.4),
    (5.0, 3.4, 1.5, 0.2),
    (7.0, 3.2, 4.7, 1.4),
    (6.4, 3.2, 4.5, 1.5),
    (5.5, 2.3, 4.0, 1.3),
    (5.7, 2.8, 4.5, 1.3),
    (6.3, 3.3, 6.0, 2.5),
    (5.8, 2.7, 5.1, 1.9),
    (7.1, 3.0, 5.9, 2.1),
    (6.5, 3.0, 5.8, 2.2),
)
#: Rows of one batch request, and the share of requests that are batches.
BATCH_ROWS = 10
BATCH_SHARE = 0.1


def flower(rng: random.Random) -> dict[str, float]:
    """One flower of :data:`FLOWERS` as a request body."""
    return dict(zip(FEATURES, rng.choice(FLOWERS), strict=True))


def problem(status: int, body: object, rows: int) -> str | None:
    """What is wrong with one answer of the API, or ``None`` when it is right.

    Args:
        status: The HTTP status code.
        body: The parsed JSON body (``None`` when it was not JSON).
        rows: How many rows were sent (1 for ``/predict``).
    """
    if status != 200:
        return f"status {status}"
    if not isinstance(body, dict) or not body.get("request_id"):
        return "no request_id in the answer"
    labels = [body.get("prediction")] if rows == 1 else body.get("predictions")
    if not isinstance(labels, list) or len(labels) != rows:
        return f"expected {rows} predictions"
    unknown = [label for label in labels if label not in SPECIES]
    return f"unknown species {unknown[0]!r}" if unknown else None


class ApiUser(HttpUser):
    """A client of the API: mostly single rows, sometimes a batch."""

    wait_time = constant(float(os.environ.get("MLPIPE_LOCUST_WAIT", "0")))

    def on_start(self) -> None:
        """Give each user its own reproducible stream of flowers."""
        self.rng = random.Random(id(self))

    def _post(self, path: str, payload: dict, rows: int) -> None:
        with self.client.post(path, json=payload, name=path, catch_response=True) as response:
            try:
                body = response.json()
            except ValueError:
                body = None
            wrong = problem(response.status_code, body, rows)
            if wrong:
                response.failure(wrong)
            else:
                response.success()

    @task
    def predict(self) -> None:
        """One flower to ``/predict`` (or, now and then, a batch to ``/predict/batch``)."""
        if self.rng.random() < BATCH_SHARE:
            rows = [flower(self.rng) for _ in range(BATCH_ROWS)]
            self._post("/predict/batch", {"rows": rows}, BATCH_ROWS)
        else:
            self._post("/predict", flower(self.rng), 1)
