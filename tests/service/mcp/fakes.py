"""A small index, the fake embedder and a scripted generator behind the MCP tools."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from citeline.indexes import HashEmbedder
from citeline.service.answering.verify import JUDGE_SYSTEM
from citeline.service.api.resources import Resources, wire
from citeline.service.generation import ChatMessage, ScriptedGenerator
from citeline.service.settings import ServiceSettings
from tests.service.helpers import one_page_index

EMBEDDER = HashEmbedder(64)
URL = "https://docs.example/json.html"
PAGE_TEXT = (
    "json — JSON encoder and decoder\n"
    "json.load(fp) deserializes fp, a text file containing a JSON document, to a Python object.\n"
    "json.dump(obj, fp) serializes obj as a JSON formatted stream to fp."
)


def reply(messages: Sequence[ChatMessage]) -> str:
    if messages[0].content == JUDGE_SYSTEM:
        return "no"
    return "Use json.load() to read a JSON document from a text file [1]."


def generator() -> ScriptedGenerator:
    return ScriptedGenerator(reply)


def settings_for(data_dir: Path, **extra: object) -> ServiceSettings:
    """Settings over one stored page (created here) in ``data_dir``."""
    if not (data_dir / "indexes" / "docs").exists():
        one_page_index(data_dir, EMBEDDER, PAGE_TEXT, url=URL)
    return ServiceSettings(data_dir=data_dir, index="docs", top_k=2, **extra)  # type: ignore[arg-type]


def ready_resources(settings: ServiceSettings) -> Resources:
    resources = Resources(settings=settings)
    wire(resources, settings.registry(EMBEDDER), EMBEDDER, generator())
    return resources
