"""Prometheus metrics: what an operator needs to see the service's health and its costs.

Request latency histograms come from Litestar's Prometheus middleware; these are citeline's own.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)

STAGE_SECONDS = Histogram("citeline_stage_seconds", "Time spent per answering stage", ["stage"], buckets=_STAGE_BUCKETS)
TOKENS_PER_SECOND = Histogram(
    "citeline_generation_tokens_per_second",
    "Decode speed of each answer",
    buckets=(1, 2, 5, 10, 15, 20, 25, 30, 40, 60),
)
ANSWERS = Counter("citeline_answers_total", "Answers given", ["outcome"])
JUDGE_CALLS = Counter("citeline_judge_calls_total", "Yes/no judge prompts run by the verifier")
QUEUE_DEPTH = Gauge("citeline_generation_queue_depth", "Requests waiting for the generator")
GENERATING = Gauge("citeline_generation_in_progress", "1 while the generator runs")
REJECTED = Counter("citeline_rejected_total", "Requests refused before any work", ["reason"])
INDEX_PASSAGES = Gauge("citeline_index_passages", "Passages per loaded index", ["index"])
INDEX_PAGES = Gauge("citeline_index_pages", "Pages per loaded index", ["index"])
INGEST_PAGES = Counter("citeline_ingest_pages_total", "Pages handled by ingest jobs run by the service", ["result"])
INGEST_JOBS = Counter("citeline_ingest_jobs_total", "Ingest jobs run by the service", ["state"])
