"""``citeline ingest``: crawl or read a site into an index (local or Ray engine)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from citeline.ingest import IngestProgress, IngestSummary
from citeline.indexes import atomic_write
from citeline.service.cli._common import IndexOption, app, console, fail
from citeline.service.cli._progress import (
    DEFAULT_PROGRESS_EVERY,
    PROGRESS_EVERY_ENV,
    PROGRESS_EVERY_HELP,
    PlainProgress,
    plain_output,
    print_key_values,
    print_plain,
)


def _write_json(path: Path, data: object) -> None:
    """Replace ``path`` atomically: a reader never sees half a file."""
    atomic_write(path, json.dumps(data, indent=2).encode())


def _cap_line(summary: IngestSummary) -> str:
    if summary.page_cap is None:
        return "none"
    if not summary.left_by_cap:
        return f"{summary.page_cap} pages, not reached"
    names = {"urls": "URLs found", "files": "files", "warc_records": "WARC responses"}
    left = ", ".join(f"{names.get(kind, kind)} {count}" for kind, count in summary.left_by_cap.items())
    return f"REACHED at {summary.page_cap} pages; left out: {left} (raise --max-pages)"


def _print_summary(summary: IngestSummary) -> None:
    rows: list[tuple[str, object]] = [
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
    if plain_output(console):
        print_key_values(console, f"ingest into {summary.index!r}", rows)
        if summary.failures:
            print_plain(console, f"failed pages ({len(summary.failures)}):")
            for failure in summary.failures[:30]:
                print_plain(console, f"  {failure.url} ({failure.kind}): {failure.reason}")
    else:
        table = Table(title=f"ingest into {summary.index!r}", show_header=False)
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


_COUNTS = ("indexed", "unchanged", "failed", "passages")


def _counts(state: IngestProgress) -> list[tuple[str, int]]:
    return [(name, getattr(state, name)) for name in _COUNTS]


@contextlib.contextmanager
def _progress_display(budget: int | None, every: float) -> Iterator[Callable[[IngestProgress], None]]:
    """What shows the run's progress: rich's bar on a terminal, plain lines anywhere else."""
    if plain_output(console):
        zero = [(name, 0) for name in _COUNTS]
        plain = PlainProgress(
            "ingest", "pages", functools.partial(print_plain, console), every=every, total=budget, details=zero
        )
        with plain.ticking():
            yield lambda state: plain.update(state.fetched + state.failed, details=_counts(state))
        plain.finish()
        return
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
        done = [0]

        def show(state: IngestProgress) -> None:
            done[0] = state.fetched + state.failed
            progress.update(task, completed=done[0], detail=", ".join(f"{k} {v}" for k, v in _counts(state)))

        yield show
        progress.update(task, total=done[0])


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
        Path | None, typer.Option("--dir", help="Directory of HTML, PDF, Markdown, text files (needs --base-url).")
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
    progress_every: Annotated[
        float, typer.Option(min=0, envvar=PROGRESS_EVERY_ENV, help=PROGRESS_EVERY_HELP)
    ] = DEFAULT_PROGRESS_EVERY,
    job_spec: Annotated[
        Path | None, typer.Option(hidden=True, help="A job spec the service wrote: the run's only input.")
    ] = None,
) -> None:
    """Crawl, extract, chunk, embed and index web pages."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from citeline.indexes import CitelineIndexError, load_embedder
    from citeline.ingest import CrawlScope, IngestInputs, IngestOptions, IngestSettings, UrlMap, run_ingest

    settings = IngestSettings()
    if job_spec is not None:
        # A job of the HTTP service: everything comes from the spec the service validated and wrote,
        # and nothing else may be added to it (no local files, allow-list, engine or URL mapping).
        others = (urls, max_pages, index, map_url, sitemap, feed, directory, warc, allow, deny, allow_host,
                  record_warc, ray_address, robots_sitemaps, keep_gone, base_url)  # fmt: skip
        if any(others) or scope != "prefix" or max_depth != 10 or engine != "local":
            raise fail("--job-spec is a job's only input: give no other input option", 2)
        from citeline.service.operations import load_spec

        try:
            spec = load_spec(job_spec)
        except ValueError as exc:
            raise fail(str(exc), 2) from exc
        job = spec.request
        settings.data_dir, settings.allow_hosts = Path(spec.data_dir), list(spec.allow_hosts)
        urls, sitemap, feed, allow, deny = job.seeds, job.sitemaps, job.feeds, job.allow, job.deny
        index, max_pages, max_depth, scope = job.index, job.max_pages, job.max_depth, job.scope
        keep_gone = job.keep_gone
        map_url = spec.url_maps
    if allow_host:
        settings.allow_hosts = [*settings.allow_hosts, *allow_host]
    if scope not in ("prefix", "host"):
        raise fail(f"--scope must be prefix or host, not {scope!r}", 2)
    if directory is not None and not base_url:
        raise fail("--dir needs --base-url (the URL prefix its pages are cited under)", 2)
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
        raise fail("nothing to ingest: give seed URLs, --sitemap, --feed, --dir or --warc", 2)
    try:
        url_map = UrlMap.parse(map_url or [])
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    crawls = bool(inputs.seeds or inputs.sitemaps or inputs.feeds)
    budget = max_pages or (settings.max_pages if crawls else None)
    if engine == "ray":
        from citeline.ingest.ray_engine import RayOptions, RayUnavailableError, import_ray, run_ray_ingest

        try:
            import_ray()
        except RayUnavailableError as exc:
            raise fail(str(exc), 2) from exc
        engine_run = functools.partial(
            run_ray_ingest,
            embedder_factory=functools.partial(load_embedder, settings),
            ray_options=RayOptions(address=ray_address),
        )
    elif engine == "local":
        console.print("loading the embedder…")
        engine_run = functools.partial(run_ingest, embedder=load_embedder(settings))
    else:
        raise fail(f"--engine must be local or ray, not {engine!r}", 2)
    with _progress_display(budget, progress_every) as show:
        last_written = [0.0]

        def on_progress(state: IngestProgress) -> None:
            if progress_json is not None and time.monotonic() - last_written[0] > 0.5:
                last_written[0] = time.monotonic()
                _write_json(progress_json, dataclasses.asdict(state))
            show(state)

        try:
            summary = asyncio.run(
                engine_run(
                    settings=settings,
                    inputs=inputs,
                    options=IngestOptions(
                        index_name=index,
                        max_pages=max_pages,
                        max_depth=max_depth,
                        url_map=url_map,
                        keep_gone=keep_gone,
                        resume=resume,
                        record_warc=record_warc,
                    ),
                    progress=on_progress,
                )
            )
        except (CitelineIndexError, ValueError) as exc:
            raise fail(str(exc)) from exc
    _print_summary(summary)
    if summary_json:
        _write_json(summary_json, summary.to_json())
    if summary.pages_fetched == 0 and summary.pages_not_modified == 0 and not summary.resumed_done:
        raise fail("no page could be fetched")
