"""Schemathesis against the OpenAPI schema, in process: whatever it sends, never a server error."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

from citeline.indexes import HashEmbedder
from citeline.service.api import create_app
from citeline.service.generation import ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
TEXT = "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object."


def _app(data_dir: Path):  # type: ignore[no-untyped-def]
    one_page_index(data_dir, EMBEDDER, TEXT)
    settings = ServiceSettings(data_dir=data_dir, index="docs", top_k=2, rate_limit_per_minute=0)
    generator = ScriptedGenerator("Use json.load() to read a JSON document [1].")
    return create_app(settings, embedder=EMBEDDER, generator=generator, job_command=[sys.executable, "-c", "pass"])


# The schema must exist when the module is collected, before any fixture: a data dir of its own.
_DATA_DIR = Path(tempfile.mkdtemp(prefix="citeline-fuzz-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)
APP = _app(_DATA_DIR)
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", APP)


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])
