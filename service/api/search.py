"""``GET /v1/search``: passages as answers retrieve them, without generation."""

import time
from dataclasses import dataclass
from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import Parameter

from citeline.service.answering import RetrievedPassage, retrieved
from citeline.service.api.resources import (
    Resources,
    off_loop,
    ready,
    requires,
)
from citeline.service.exceptions import RequestError


@dataclass(frozen=True, slots=True)
class SearchResponse:
    query: str
    index: str
    hits: list[RetrievedPassage]
    took_ms: float


@get("/v1/search", summary="Passage search as answers retrieve, no generation", guards=[requires("read")])
async def search_passages(
    resources: NamedDependency[Resources],
    q: Annotated[str, Parameter(min_length=1, max_length=2000, description="The query")],
    index: Annotated[str | None, Parameter(description="Index to search")] = None,
    k: Annotated[int, Parameter(ge=1, le=50, description="Number of passages")] = 5,
) -> SearchResponse:
    if not q.strip():
        raise RequestError("the query is blank", title="Empty query")
    registry, answerer = ready(resources)
    async with registry.alease(index or resources.settings.index) as passage_index:
        started = time.perf_counter()
        hits = await off_loop(answerer.retriever.search, passage_index, q, k)
    return SearchResponse(
        query=q,
        index=passage_index.name,
        hits=[retrieved(h) for h in hits],
        took_ms=round((time.perf_counter() - started) * 1000, 1),
    )
