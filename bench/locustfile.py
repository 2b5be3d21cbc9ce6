"""Load profile for bench/load.py: closed-loop users hitting one endpoint of a running service.

The endpoint comes from CITELINE_LOAD_ENDPOINT (``search`` or ``ask``); status codes are counted
and written to CITELINE_LOAD_STATUS_FILE when the run ends. 429 and 503 (with Retry-After) are the
service's planned answers to overload and count as such, not as errors.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

from locust import HttpUser, events, task

QUESTIONS = [
    q.strip()
    for q in (Path(__file__).parent / "questions" / "python_docs.txt").read_text().splitlines()
    if q.strip() and not q.startswith("#")
]
ENDPOINT = os.environ.get("CITELINE_LOAD_ENDPOINT", "search")
STATUS: Counter[str] = Counter()
PLANNED = {429, 503}


@events.request.add_listener
def _count(response: Any = None, exception: Any = None, **_: Any) -> None:
    STATUS[
        str(response.status_code) if response is not None and response.status_code else type(exception).__name__
    ] += 1


@events.quitting.add_listener
def _dump(**_: Any) -> None:
    path = os.environ.get("CITELINE_LOAD_STATUS_FILE")
    if path:
        Path(path).write_text(json.dumps(STATUS))


class Citeline(HttpUser):
    @task
    def one_request(self) -> None:
        question = random.choice(QUESTIONS)
        if ENDPOINT == "search":
            request = self.client.get(
                "/v1/search", params={"q": question, "k": 5}, name="/v1/search", catch_response=True
            )
        else:
            request = self.client.post(
                "/v1/ask", json={"question": question}, name="/v1/ask", catch_response=True, timeout=300
            )
        with request as response:
            if response.status_code in PLANNED and response.headers.get("retry-after"):
                response.success()  # overload answered as designed
            elif response.status_code >= 400:
                response.failure(f"HTTP {response.status_code}")
