"""Service settings (``CITELINE_*`` env vars or the TOML config file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from citeline.indexes import Embedder, RetrievalMode
from citeline.ingest import IngestSettings, OnDemandFetcher, UrlMap
from citeline.service.answering import Answerer, ExtractConfig, RetrievalConfig
from citeline.service.answering.budget import BudgetConfig
from citeline.service.answering.verify import Verifier, VerifierConfig
from citeline.service.generation import QWEN_MODEL_ID, Generator, OpenAICompatibleGenerator, OpenVINOGenerator
from citeline.service.live import LiveConfig, LivePages, SearchProvider, SearxngSearch
from citeline.service.operations import IndexRegistry


class ServiceSettings(IngestSettings):
    """Everything the HTTP service and the ``ask``/``serve`` commands read."""

    host: str = "127.0.0.1"
    """Address to bind; loopback by default."""
    port: int = 8000
    """TCP port to listen on."""
    generator_model: str = QWEN_MODEL_ID
    """Prepared model under ``models_dir`` (or an absolute path to an OpenVINO IR directory)."""
    generator_backend: Literal["openvino", "openai"] = "openvino"
    """``openvino`` runs ``generator_model`` in-process; ``openai`` streams from an OpenAI-compatible
    server (vLLM, OpenVINO Model Server, llama.cpp's ``llama-server``) at ``generator_base_url``."""
    generator_base_url: str = "http://127.0.0.1:8080/v1"
    """API root of the OpenAI-compatible server (``/chat/completions`` is appended); ``openai`` backend only."""
    generator_api_model: str = ""
    """Model name the server serves (the request's ``model``); empty: ``generator_model``."""
    generator_api_key: SecretStr | None = None
    """Sent as ``Authorization: Bearer``; none by default. Kept out of logs and reprs."""
    generator_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds allowed to connect, and between streamed chunks, before a remote call fails."""
    generator_retries: int = Field(default=2, ge=0)
    """Extra tries on connection failures or 429/502/503/504, only before any text arrived."""
    top_k: int = 4
    """Passages given to the generator per question (prompt length is the main latency lever)."""
    prompt_source_chars: int = 0
    """Source text per prompt, in characters over all passages: each passage's most relevant
    sentences are chosen to fit. 0 (the default) sends whole passages, each cut at 600: 1400 cuts the
    time to first token by a quarter but lost one of three answer checks of the quality gate (README)."""
    max_new_tokens: int = 160
    """Cap on generated tokens per answer."""
    extract_fallback: bool = True
    """When the generator declines although a passage is close to the question, answer with the
    passages' own sentences closest to it, quoted verbatim (``extract: true``); off: abstain."""
    quoting_judge: bool = False
    """Ask the generator to quote the passage words behind a sentence the cheap checks are unsure
    of; the quote must stand in the passage and pass the same checks by itself. Off: unsure
    sentences are unsupported (the wheel-shipped 1.5B model quotes too rarely to be worth its
    seconds; a stronger OpenAI-compatible model server may be)."""
    max_question_chars: int = 2000
    """Longer questions are refused with 422."""
    max_body_bytes: int = 65_536
    """Request bodies above this are refused with 413."""
    answer_cache_size: int = 256
    """Answers kept for repeated questions against an unchanged index (0: no cache)."""
    max_queue: int = 8
    """Requests that may wait for the generator behind the running one; more get 503 + Retry-After."""
    api_keys: dict[SecretStr, str] = Field(default_factory=dict)
    """API key -> scope (``read`` or ``ingest``). Empty: no key needed (fine on loopback only).
    The keys are secrets: kept out of reprs, logs and error bodies."""
    rate_limit_per_minute: int = 60
    """Requests a minute per API key (per client address without keys); more get 429 + Retry-After."""
    ingest_url_maps: list[str] = Field(default_factory=list)
    """``FETCHED_PREFIX=PUBLIC_PREFIX`` rules every ingest job started over HTTP applies (its pages
    are cited under the public URL, as ``citeline ingest --map-url`` does). Server configuration
    only: a request cannot make citations claim a page came from somewhere else."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins browsers may call the API from (``["https://chat.example"]``); none by default."""

    retrieval: RetrievalMode = "dense"
    """``dense``, ``hybrid`` (dense + BM25, reciprocal-rank fusion) or ``bm25``: see the README's
    retrieval table before changing it (hybrid helps on the Python docs and hurts on the Django docs)."""
    mmr: bool = True
    """Diversify the retrieved passages by maximal marginal relevance."""
    mmr_lambda: float = 0.7
    """MMR's weight on relevance against novelty."""

    live_budget_s: float = Field(default=8.0, gt=0)
    """Seconds a question may spend fetching live pages (``urls``, ``search``, ``recheck``); pages
    not fetched by then are listed as skipped. The SSRF guard (opened only by ``live_allow_hosts``,
    never by ingest's ``allow_hosts``), robots.txt, opt-outs, size cap and user agent apply to live
    pages as to ingest."""
    live_max_urls: int = Field(default=10, ge=1, le=10)
    """Live pages per question (named and found by search together)."""
    live_passages_per_page: int = Field(default=24, ge=2)
    """Passages of a live page embedded for a question at most, the best by BM25."""
    live_max_passages: int = Field(default=64, ge=2)
    """Passages embedded per question over all its live pages (bounds embedding time: ~30/s on 2 cores)."""
    live_cache_ttl_s: float = Field(default=300.0, ge=0)
    """Seconds a fetched live page is reused by follow-up questions (0: never)."""
    live_cache_pages: int = Field(default=128, ge=0)
    """Live pages kept in that cache at most."""
    live_per_host_delay: float = Field(default=0.2, ge=0)
    """Seconds between two live requests to one host (a larger robots.txt Crawl-delay wins)."""
    search_url: str | None = None
    """A SearxNG instance (``http://127.0.0.1:8888``) whose JSON API serves ``search: true``; none
    by default (requests asking for a search get 422). The compose profile ``search`` runs one."""
    search_results: int = Field(default=3, ge=1, le=10)
    """Top search results fetched per question."""

    @field_validator("ingest_url_maps")
    @classmethod
    def _url_maps_parse(cls, value: list[str]) -> list[str]:
        UrlMap.parse(value)  # a malformed rule fails at start-up, not in every job
        return value

    def answerer(self, embedder: Embedder, generator: Generator) -> Answerer:
        """The answering core these settings describe."""
        return Answerer(
            embedder,
            generator,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            budget=self.budget(),
            retrieval=self.retrieval_config(),
            extract=ExtractConfig(enabled=self.extract_fallback),
            verifier=Verifier(embedder, generator, VerifierConfig(use_judge=self.quoting_judge)),
        )

    def registry(self, embedder: Embedder) -> IndexRegistry:
        """The indexes under ``data_dir`` that ``embedder`` can search, on the configured vector backend."""
        return IndexRegistry(
            self.data_dir,
            embedder.model_name,
            embedder.dimension,
            vector_backend=self.vector_backend,
            qdrant_url=self.qdrant_url,
        )

    def retrieval_config(self) -> RetrievalConfig:
        return RetrievalConfig(mode=self.retrieval, mmr=self.mmr, mmr_lambda=self.mmr_lambda)

    def live_pages(
        self,
        embedder: Embedder,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        search: SearchProvider | None = None,
    ) -> LivePages:
        """Question-time fetching as configured (``transport`` and ``search`` replace the network in tests)."""
        config = LiveConfig(
            budget_s=self.live_budget_s,
            max_urls=self.live_max_urls,
            passages_per_page=self.live_passages_per_page,
            max_passages=self.live_max_passages,
            cache_ttl_s=self.live_cache_ttl_s,
            cache_pages=self.live_cache_pages,
            search_results=self.search_results,
        )
        fetcher = OnDemandFetcher(
            self, timeout_s=max(self.live_budget_s, 30.0), per_host_delay=self.live_per_host_delay, transport=transport
        )
        if search is None and self.search_url:
            search = SearxngSearch(self.search_url, timeout_s=self.live_budget_s)
        sizes = self.chunk_sizes()
        return LivePages(
            fetcher, embedder, config=config, sizes=sizes, search=search, embed_batch_size=self.embed_batch_size
        )

    def budget(self) -> BudgetConfig:
        return BudgetConfig(max_chars=self.prompt_source_chars)

    def generator(self) -> Generator:
        """The generator backend these settings describe (loads the model for ``openvino``)."""
        if self.generator_backend == "openai":
            key = self.generator_api_key.get_secret_value() if self.generator_api_key else None
            return OpenAICompatibleGenerator(
                self.generator_base_url,
                self.generator_api_model or self.generator_model,
                api_key=key,
                timeout_s=self.generator_timeout_s,
                retries=self.generator_retries,
            )
        return OpenVINOGenerator(self.generator_dir(), cache_dir=self.openvino_cache_dir())

    def generator_dir(self) -> Path:
        path = Path(self.generator_model)
        return path if path.is_absolute() else self.models_dir / self.generator_model

    def openvino_cache_dir(self) -> Path:
        return self.models_dir / "openvino-cache"
