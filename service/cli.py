"""The ``citeline`` command line.

Commands import what they need when they run: ``citeline ingest`` loads the ingest layer and the
embedder only, never the HTTP or generation stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from indexes import CitelineSettings, Embedder, PassageIndex
    from ingest import IngestProgress, IngestSummary

app = typer.Typer(help="citeline: answers whose every sentence cites a checked source.", no_args_is_help=True)
models_app = typer.Typer(help="Prepare and inspect the local models.", no_args_is_help=True)
index_app = typer.Typer(help="Inspect indexes.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
console = Console(stderr=True)
out = Console()

IndexOption = Annotated[str | None, typer.Option("--index", "-i", help="Index name (default: settings.index).")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _open_index(
    settings: CitelineSettings, name: str | None, *, embedder: Embedder | None = None, read_only: bool = True
) -> PassageIndex:
    """The named index (default: the configured one) on the configured vector backend, checked
    against ``embedder`` when one is given."""
    from indexes import PassageIndex

    index = PassageIndex.open(
        settings.data_dir,
        name or settings.index,
        read_only=read_only,
        vector_backend=settings.vector_backend,
        qdrant_url=settings.qdrant_url,
    )
    if embedder is not None:
        try:
            index.check_embedder(embedder.model_name, embedder.dimension)
        except BaseException:
            index.close()
            raise
    return index


@models_app.command("prepare")
def models_prepare(
    force: Annotated[bool, typer.Option(help="Rebuild even when a prepared model exists.")] = False,
) -> None:
    """Assemble, verify and export the generator (once; cached under models_dir)."""
    from indexes import EmbedderUnavailableError, load_embedder, prepare_openvino_embedder
    from service.exceptions import ModelPreparationError
    from service.generation import prepare_generator
    from service.settings import ServiceSettings

    settings = ServiceSettings()
    stages = {
        "assemble": "Assemble GGUF + sha256",
        "dequantize": "GGUF -> fp32 checkpoint",
        "export": "Export OpenVINO int4",
    }
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        tasks = {key: progress.add_task(label, total=1.0, start=False) for key, label in stages.items()}

        def on_progress(stage: str, fraction: float) -> None:
            task = tasks[stage]
            progress.start_task(task)
            progress.update(task, completed=fraction)

        try:
            prepared = prepare_generator(settings.models_dir, force=force, progress=on_progress)
        except ModelPreparationError as exc:
            raise _fail(str(exc)) from exc
        for task in tasks.values():
            progress.start_task(task)
            progress.update(task, completed=1.0)
    state = "prepared" if prepared.seconds else "already prepared"
    console.print(f"generator {prepared.model_id} {state} at {prepared.path} ({prepared.seconds:.0f} s)")
    if settings.embedding_backend != "torch":
        with console.status(f"Export the embedder to OpenVINO ({settings.embedding_backend})"):
            try:
                export = prepare_openvino_embedder(
                    settings.embedding_model,
                    settings.models_dir,
                    int8=settings.embedding_backend == "openvino-int8",
                    force=force,
                )
            except EmbedderUnavailableError as exc:
                raise _fail(str(exc)) from exc
        state = "exported" if export.seconds else "already exported"
        console.print(f"embedder {state} to OpenVINO at {export.path} ({export.seconds:.0f} s)")
    embedder = load_embedder(settings)
    console.print(
        f"embedder {embedder.model_name} ({settings.embedding_backend}) loads offline ({embedder.dimension}-d)"
    )


def _write_json(path: Path, data: object) -> None:
    """Replace ``path`` atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _cap_line(summary: IngestSummary) -> str:
    if summary.page_cap is None:
        return "none"
    if not summary.left_by_cap:
        return f"{summary.page_cap} pages, not reached"
    names = {"urls": "URLs found", "files": "files", "warc_records": "WARC responses"}
    left = ", ".join(f"{names.get(kind, kind)} {count}" for kind, count in summary.left_by_cap.items())
    return f"REACHED at {summary.page_cap} pages; left out: {left} (raise --max-pages)"


def _print_summary(summary: IngestSummary) -> None:
    table = Table(title=f"ingest into {summary.index!r}", show_header=False)
    rows = [
        ("resumed", f"yes: {summary.resumed_done} URLs already done" if summary.resumed else "no"),
        ("pages fetched", summary.pages_fetched),
        ("new / updated", f"{summary.pages_new} / {summary.pages_updated}"),
        ("unchanged (of which 304)", f"{summary.pages_unchanged} ({summary.pages_not_modified})"),
        ("removed (gone or opted out)", summary.pages_removed),
        ("duplicates (aliased)", summary.duplicates),
        ("skipped", ", ".join(f"{k} {v}" for k, v in summary.skipped.items() if v) or "none"),
        ("page cap", _cap_line(summary)),
        ("passages added", summary.passages_added),
        ("index now", f"{summary.index_pages} pages, {summary.index_passages} passages"),
        ("time", f"{summary.seconds:.1f} s ({summary.pages_per_second:.1f} pages/s,"
         f" {summary.passages_per_second:.1f} passages/s)"),
        ("stage seconds", ", ".join(f"{k} {v:.1f}" for k, v in summary.stage_seconds.items())),
    ]  # fmt: skip
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    if summary.failures:
        failures = Table(title="failed pages", show_lines=False)
        for column in ("url", "kind", "reason"):
            failures.add_column(column, overflow="fold")
        for failure in summary.failures[:30]:
            failures.add_row(failure.url, failure.kind, failure.reason)
        console.print(failures)
        if len(summary.failures) > 30:
            console.print(f"... and {len(summary.failures) - 30} more (see --summary-json)")


@app.command()
def ingest(
    urls: Annotated[
        list[str] | None, typer.Argument(help="Seed URLs; the crawl stays under each seed's directory (see --scope).")
    ] = None,
    max_pages: Annotated[int | None, typer.Option(help="Pages to fetch at most.")] = None,
    max_depth: Annotated[int, typer.Option(help="Link depth from the seeds.")] = 10,
    index: IndexOption = None,
    map_url: Annotated[
        list[str] | None,
        typer.Option(help="FETCHED_PREFIX=PUBLIC_PREFIX: cite the public URL of a page crawled from a mirror."),
    ] = None,
    sitemap: Annotated[list[str] | None, typer.Option(help="Sitemap URL (index, gzip, text); repeatable.")] = None,
    feed: Annotated[list[str] | None, typer.Option(help="RSS/Atom feed URL; repeatable.")] = None,
    robots_sitemaps: Annotated[bool, typer.Option(help="Also read the seeds' robots.txt Sitemap: lines.")] = False,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Local directory of HTML files (needs --base-url).")
    ] = None,
    base_url: Annotated[str, typer.Option(help="URL prefix the --dir files are cited under.")] = "",
    warc: Annotated[list[Path] | None, typer.Option(help="WARC file (.warc or .warc.gz); repeatable.")] = None,
    scope: Annotated[str, typer.Option(help="prefix: under each seed's directory; host: anywhere on its host.")] = (
        "prefix"
    ),
    allow: Annotated[list[str] | None, typer.Option(help="Follow only links matching this regex; repeatable.")] = None,
    deny: Annotated[list[str] | None, typer.Option(help="Never follow links matching this regex; repeatable.")] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="Private address the crawler may reach (127.0.0.1:8765, 10.0.0.0/8); repeatable."),
    ] = None,
    keep_gone: Annotated[bool, typer.Option(help="Keep pages that now answer 404/410, marked gone.")] = False,
    resume: Annotated[bool, typer.Option(help="Resume an interrupted run of the same command.")] = True,
    record_warc: Annotated[
        Path | None, typer.Option(help="Also record every fetched page to this WARC file (.warc.gz).")
    ] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Also write the run summary here as JSON.")] = None,
    progress_json: Annotated[
        Path | None, typer.Option(help="Keep the run's progress in this JSON file (for a job runner).")
    ] = None,
    engine: Annotated[str, typer.Option(help="local: this process; ray: extract, chunk and embed on Ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join (--engine ray); default: local.")] = None,
    job_spec: Annotated[
        Path | None, typer.Option(hidden=True, help="A job spec the service wrote: the run's only input.")
    ] = None,
) -> None:
    """Crawl, extract, chunk, embed and index web pages."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from indexes import CitelineIndexError, load_embedder
    from ingest import CrawlScope, IngestInputs, IngestSettings, UrlMap, run_ingest

    settings = IngestSettings()
    if job_spec is not None:
        # A job of the HTTP service: everything comes from the spec the service validated and wrote,
        # and nothing else may be added to it (no local files, allow-list, engine or URL mapping).
        others = (urls, max_pages, index, map_url, sitemap, feed, directory, warc, allow, deny, allow_host,
                  record_warc, ray_address, robots_sitemaps, keep_gone, base_url)  # fmt: skip
        if any(others) or scope != "prefix" or max_depth != 10 or engine != "local":
            raise _fail("--job-spec is a job's only input: give no other input option", 2)
        from service.jobs import load_spec

        try:
            spec = load_spec(job_spec)
        except ValueError as exc:
            raise _fail(str(exc), 2) from exc
        job = spec.request
        settings.data_dir, settings.allow_hosts = Path(spec.data_dir), list(spec.allow_hosts)
        urls, sitemap, feed, allow, deny = job.seeds, job.sitemaps, job.feeds, job.allow, job.deny
        index, max_pages, max_depth, scope = job.index, job.max_pages, job.max_depth, job.scope
        keep_gone = job.keep_gone
        map_url = spec.url_maps
    if allow_host:
        settings.allow_hosts = [*settings.allow_hosts, *allow_host]
    if scope not in ("prefix", "host"):
        raise _fail(f"--scope must be prefix or host, not {scope!r}", 2)
    if directory is not None and not base_url:
        raise _fail("--dir needs --base-url (the URL prefix its pages are cited under)", 2)
    inputs = IngestInputs(
        seeds=tuple(urls or ()),
        sitemaps=tuple(sitemap or ()),
        feeds=tuple(feed or ()),
        robots_sitemaps=robots_sitemaps,
        directory=directory,
        base_url=base_url,
        warcs=tuple(warc or ()),
        scope=CrawlScope(scope, tuple(allow or ()), tuple(deny or ())),  # type: ignore[arg-type] # checked above
    )
    if not (inputs.seeds or inputs.sitemaps or inputs.feeds or inputs.directory or inputs.warcs):
        raise _fail("nothing to ingest: give seed URLs, --sitemap, --feed, --dir or --warc", 2)
    try:
        url_map = UrlMap.parse(map_url or [])
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    crawls = bool(inputs.seeds or inputs.sitemaps or inputs.feeds)
    budget = max_pages or (settings.max_pages if crawls else None)
    if engine == "ray":
        from ingest.ray_engine import RayOptions, RayUnavailableError, import_ray, run_ray_ingest

        try:
            import_ray()
        except RayUnavailableError as exc:
            raise _fail(str(exc), 2) from exc
        engine_run = functools.partial(
            run_ray_ingest,
            embedder_factory=functools.partial(load_embedder, settings),
            ray_options=RayOptions(address=ray_address),
        )
    elif engine == "local":
        console.print("loading the embedder…")
        engine_run = functools.partial(run_ingest, embedder=load_embedder(settings))
    else:
        raise _fail(f"--engine must be local or ray, not {engine!r}", 2)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("crawling", total=budget, detail="")

        last_written = [0.0]

        def on_progress(state: IngestProgress) -> None:
            if progress_json is not None and time.monotonic() - last_written[0] > 0.5:
                last_written[0] = time.monotonic()
                _write_json(progress_json, dataclasses.asdict(state))
            progress.update(
                task,
                completed=state.fetched + state.failed,
                detail=f"indexed {state.indexed}, unchanged {state.unchanged}, failed {state.failed},"
                f" {state.passages} passages",
            )

        try:
            summary = asyncio.run(
                engine_run(
                    settings=settings,
                    inputs=inputs,
                    index_name=index,
                    max_pages=max_pages,
                    max_depth=max_depth,
                    url_map=url_map,
                    progress=on_progress,
                    keep_gone=keep_gone,
                    resume=resume,
                    record_warc=record_warc,
                )
            )
        except (CitelineIndexError, ValueError) as exc:
            raise _fail(str(exc)) from exc
        progress.update(task, total=summary.pages_fetched + len(summary.failures))
    _print_summary(summary)
    if summary_json:
        _write_json(summary_json, summary.to_json())
    if summary.pages_fetched == 0 and summary.pages_not_modified == 0 and not summary.resumed_done:
        raise _fail("no page could be fetched")


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    index: IndexOption = None,
    k: Annotated[int, typer.Option("-k", help="Passages to show.")] = 5,
) -> None:
    """Search an index the way answers retrieve (no generation)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from indexes import CitelineIndexError, load_embedder
    from service.answering import Retriever
    from service.settings import ServiceSettings

    settings = ServiceSettings()
    embedder = load_embedder(settings)
    try:
        passage_index = _open_index(settings, index, embedder=embedder)
    except CitelineIndexError as exc:
        raise _fail(str(exc)) from exc
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

    from indexes import CitelineIndexError, load_embedder
    from service.exceptions import CiteLineServiceError
    from service.live import LiveOptions, LiveRequestError
    from service.settings import ServiceSettings
    from service.sources import SourceSet

    if policy not in ("strict", "flag"):
        raise _fail(f"unknown policy {policy!r}: use strict or flag", 2)
    if sources not in (None, "index", "live", "both"):
        raise _fail(f"unknown sources {sources!r}: use index, live or both", 2)
    settings = ServiceSettings()
    options = LiveOptions(urls=list(url or []), sources=sources, search=search, recheck=recheck, budget_s=budget)  # type: ignore[arg-type]
    live_request = options.live_request(settings.top_k)
    try:
        embedder = load_embedder(settings)
        passage_index = _open_index(settings, index, embedder=embedder)
        live_pages = settings.live_pages(embedder) if live_request is not None else None
        if live_pages is not None and live_request is not None:
            live_pages.validate(live_request)  # before the model loads: a refused URL fails at once
        generator = settings.generator()
    except (CitelineIndexError, CiteLineServiceError) as exc:
        raise _fail(str(exc), 2 if isinstance(exc, LiveRequestError) else 1) from exc
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


@app.command("eval")
def eval_command(
    question_sets: Annotated[
        list[Path], typer.Argument(help="JSONL question sets (id, question, answerable, gold_url).")
    ],
    index: IndexOption = None,
    answers: Annotated[
        Path | None, typer.Option(help="JSONL of id -> answer_contains for answer accuracy (all sets).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Questions per set at most (the first N).")] = None,
    every: Annotated[int, typer.Option(min=1, help="Keep every Nth question of each set (an even sample).")] = 1,
    retrieval_only: Annotated[bool, typer.Option(help="Only retrieval metrics (no generation).")] = False,
    policy: Annotated[
        str,
        typer.Option(
            help="strict: unsupported sentences dropped (as served); flag: kept and marked, with their citations"
            " (what labelling the checker's rejections needs)."
        ),
    ] = "strict",
    out: Annotated[Path | None, typer.Option(help="Write the per-question results and totals as JSON here.")] = None,
    gate: Annotated[Path | None, typer.Option(help="Gate file: fail when a total is below its pinned floor.")] = None,
    raise_floors_: Annotated[
        bool, typer.Option("--raise-floors", help="Move the gate's floors up to what this run measured (minus 0.05).")
    ] = False,
) -> None:
    """Measure retrieval, answers, citations and abstention on question sets; optionally gate on floors."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from indexes import CitelineIndexError, load_embedder
    from service.answering import Retriever
    from service.evaluation import check_gate, evaluate, load_questions, lowered_without_reason, raise_floors
    from service.settings import ServiceSettings

    if policy not in ("strict", "flag"):
        raise _fail(f"--policy must be strict or flag, not {policy!r}")
    settings = ServiceSettings()
    gate_data = json.loads(gate.read_text()) if gate else None
    if gate_data is not None and (problems := lowered_without_reason(gate_data)):
        raise _fail("gate floors were lowered silently: " + "; ".join(problems))
    try:
        embedder = load_embedder(settings)
        passage_index = _open_index(settings, index, embedder=embedder)
    except CitelineIndexError as exc:
        raise _fail(str(exc)) from exc
    answerer = None
    retriever = Retriever(embedder, settings.retrieval_config())
    if not retrieval_only:
        generator = settings.generator()
        answerer = settings.answerer(embedder, generator)
    totals: dict[str, dict[str, float | None]] = {}
    reports = []
    for path in question_sets:
        questions = load_questions(path, answers, limit, every)
        with Progress(SpinnerColumn(), TextColumn(path.stem), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:  # fmt: skip
            task = progress.add_task(path.stem, total=len(questions))

            def advance(done: int, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            report = evaluate(
                path.stem,
                questions,
                passage_index,
                embedder,
                answerer,
                progress=advance,
                retriever=retriever,
                policy="flag" if policy == "flag" else "strict",
            )
        totals[path.stem] = report.totals()
        reports.append(report)
    table = Table(title=f"citeline eval on index {passage_index.name!r}")
    table.add_column("metric")
    for name in totals:
        table.add_column(name)
    for metric in next(iter(totals.values())):
        table.add_row(metric, *("" if t[metric] is None else str(t[metric]) for t in totals.values()))
    out_console = Console(width=160)
    out_console.print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"sets": [r.to_json() for r in reports]}, indent=2))
    if gate and gate_data is not None:
        if raise_floors_:
            changes = raise_floors(gate_data, totals)
            gate.write_text(json.dumps(gate_data, indent=2) + "\n")
            console.print(f"raised floors: {changes or 'none'}")
        failures = check_gate(totals, gate_data["floors"])
        for failure in failures:
            console.print(f"[bold red]gate:[/] {failure}")
        if failures:
            raise typer.Exit(1)
        console.print(f"[green]gate passed[/] ({len(gate_data['floors'])} floors)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings.port).")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /schema)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import uvicorn

    from service.app import create_app
    from service.logs import configure_json_logs
    from service.settings import ServiceSettings

    configure_json_logs()
    settings = ServiceSettings()
    uvicorn.run(
        create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info", access_log=False
    )


@index_app.command("remove")
def index_remove(
    pattern: Annotated[str, typer.Argument(help="A page URL, or a glob pattern (https://site/old/*).")],
    index: IndexOption = None,
) -> None:
    """Delete pages (and their passages, vectors and aliases) from an index."""
    from indexes import CitelineIndexError
    from ingest import IngestSettings

    settings = IngestSettings()
    try:
        passage_index = _open_index(settings, index, read_only=False)
    except CitelineIndexError as exc:
        raise _fail(str(exc)) from exc
    try:
        removed = passage_index.remove_pages(pattern)
        manifest = passage_index.flush()
    finally:
        passage_index.close()
    for url in removed:
        out.print(url)
    console.print(f"removed {len(removed)} pages; index now {manifest.pages} pages, {manifest.passages} passages")
    if not removed:
        raise _fail(f"no page matches {pattern!r}")


@index_app.command("list")
def index_list() -> None:
    """List the indexes of the data directory with their manifests."""
    from indexes import list_indexes
    from ingest import IngestSettings

    settings = IngestSettings()
    table = Table("index", "pages", "passages", "embedder", "path")
    for name in list_indexes(settings.data_dir):
        with contextlib.closing(_open_index(settings, name)) as passage_index:
            manifest = passage_index.manifest()
            table.add_row(
                name, str(manifest.pages), str(manifest.passages), manifest.embedding_model, str(passage_index.path)
            )
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
