"""Wait for the serving API to be ready, then ask it for one prediction (used by demo.sh).

Usage: python scripts/call_api.py http://127.0.0.1:PORT
"""

import sys
import time

import httpx

ROW = {"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.4, "petal_width": 2.1}


def wait_ready(base: str, seconds: float = 180) -> None:
    """Poll ``/ready`` until it answers 200, or exit with one sentence."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"The API at {base} was not ready within {seconds:g} s; see serve.log.")


def main(base: str) -> None:
    """Print one prediction and what the API serves."""
    wait_ready(base)
    print(f"POST /predict {ROW} -> {httpx.post(f'{base}/predict', json=ROW).json()}")
    meta = httpx.get(f"{base}/metadata").json()
    print(f"served: {meta['model_name']} version {meta['model_version']} with {meta['runtime']}")


if __name__ == "__main__":
    main(sys.argv[1])
