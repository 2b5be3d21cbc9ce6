"""``citeline search`` and ``citeline ask``: passages and checked answers from the terminal."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass
from citeline.service.cli._common import IndexOption, app, console, fail, open_index, out


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    index: IndexOption = None,
    k: Annotated[int, typer.Option("-k", help="Passages to show.")] = 5,
) -> None:
    """Search an index the way answers retrieve (no generation)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from citeline.indexes import CitelineIndexError, load_embedder
    from citeline.service.answering import Retriever
    from citeline.service.settings import ServiceSettings

    settings = ServiceSettings()
    embedder = load_embedder(settings)
    try:
        passage_index = open_index(settings, index, embedder=embedder)
    except CitelineIndexError as exc:
        raise fail(str(exc)) from exc
    hits = Retriever(embedder, settings.retrieval_config()).search(passage_index, query, k)
    for rank, hit in enumerate(hits, start=1):
        out.print(f"[bold]{rank}. {hit.title}[/]  [dim]{hit.score:.3f}[/]")
        out.print(f"   {hit.url}  [{hit.start}:{hit.end}]", highlight=False)
        out.print("   " + " ".join(hit.text.split())[:300], highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full answer as JSON.")] = False,
    policy: Annotated[str, typer.Option(help="strict (drop unsupported sentences) or flag (mark them).")] = "strict",
    n: Annotated[int, typer.Option("-n", min=1, max=5, help="Candidate answers to sample and rank.")] = 1,
    url: Annotated[
        list[str] | None, typer.Option("--url", help="A page to fetch now and answer from (repeatable, up to 10).")
    ] = None,
    sources: Annotated[
        str | None, typer.Option(help="index, live or both (default: both with --url/--search, else index).")
    ] = None,
    search: Annotated[
        bool, typer.Option("--search", help="Search the web (search_url) and fetch the top results.")
    ] = False,
    recheck: Annotated[
        bool, typer.Option("--recheck", help="Revalidate the stored pages behind the passages before answering.")
    ] = False,
    budget: Annotated[float | None, typer.Option(min=0.1, max=30, help="Seconds for fetching live pages.")] = None,
) -> None:
    """Answer a question from an index (and live pages), with verified span-level citations."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import msgspec

    from citeline.indexes import CitelineIndexError, load_embedder
    from citeline.service.answering.source_set import SourceSet
    from citeline.service.exceptions import CitelineServiceError
    from citeline.service.live import LiveOptions, LiveRequestError
    from citeline.service.settings import ServiceSettings

    if policy not in ("strict", "flag"):
        raise fail(f"unknown policy {policy!r}: use strict or flag", 2)
    if sources not in (None, "index", "live", "both"):
        raise fail(f"unknown sources {sources!r}: use index, live or both", 2)
    settings = ServiceSettings()
    options = LiveOptions(urls=list(url or []), sources=sources, search=search, recheck=recheck, budget_s=budget)  # type: ignore[arg-type]
    live_request = options.live_request(settings.top_k)
    try:
        embedder = load_embedder(settings)
        passage_index = open_index(settings, index, embedder=embedder)
        live_pages = settings.live_pages(embedder) if live_request is not None else None
        if live_pages is not None and live_request is not None:
            live_pages.validate(live_request)  # before the model loads: a refused URL fails at once
        generator = settings.generator()
    except (CitelineIndexError, CitelineServiceError) as exc:
        raise fail(str(exc), 2 if isinstance(exc, LiveRequestError) else 1) from exc
    answerer = settings.answerer(embedder, generator)
    chosen = SourceSet(stored=passage_index)
    if live_pages is not None and live_request is not None:

        async def gather() -> SourceSet:
            try:
                return await live_pages.gather(question, live_request, passage_index, answerer.retriever.search)
            finally:
                await live_pages.aclose()

        chosen = asyncio.run(gather())
    try:
        answer = answerer.answer(question, chosen, policy="strict" if policy == "strict" else "flag", n=n)
    finally:
        chosen.close()
    if as_json:
        sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
        return
    out.print(answer.answer, highlight=False)
    for sentence in answer.sentences:
        if not sentence.supported:
            out.print(f"[yellow]unsupported:[/] {sentence.text}", highlight=False)
    for item in answer.see_also:
        out.print(f"see also: {item.title} {item.fragment_url}", highlight=False)
    for citation in answer.citations:
        live = f" [dim](live: {citation.live}, fetched {citation.fetched_at})[/]" if citation.live else ""
        out.print(f"\n[bold][{citation.id}][/] {citation.title}{live}", highlight=False)
        out.print(f"    “{' '.join(citation.quote.split())}”", highlight=False)
        out.print(f"    {citation.fragment_url}", highlight=False)
    for notice in answer.notices:
        out.print(f"\n[yellow]note:[/] {notice}", highlight=False)
    t = answer.timings
    live_ms = f"live pages {answer.live.total_ms:.0f} ms, " if answer.live is not None else ""
    console.print(
        f"\n[dim]{live_ms}retrieve {t.retrieve_ms:.0f} ms, first token {t.time_to_first_token_ms:.0f} ms,"
        f" generate {t.generate_ms:.0f} ms, verify {t.verify_ms:.0f} ms, total {t.total_ms:.0f} ms;"
        f" citation recall {answer.generator_citation_recall:.2f}, precision {answer.generator_citation_precision:.2f}"
        " (generator's own markers)[/]"
    )
