"""``citeline eval``: quality metrics on question sets, and the quality gate."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
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
    pass
from citeline.service.cli._common import IndexOption, app, console, fail, open_index
from citeline.service.cli._common import out as stdout
from citeline.service.cli._progress import (
    DEFAULT_PROGRESS_EVERY,
    PROGRESS_EVERY_ENV,
    PROGRESS_EVERY_HELP,
    PlainProgress,
    plain_output,
    print_key_values,
    print_plain,
)


@contextlib.contextmanager
def _progress_display(name: str, total: int, every: float) -> Iterator[Callable[[int], None]]:
    """Questions done: rich's bar on a terminal, plain lines anywhere else."""
    if plain_output(console):
        plain = PlainProgress(
            f"eval {name}", "questions", functools.partial(print_plain, console), every=every, total=total
        )
        with plain.ticking():
            yield plain.update
        plain.finish()
        return
    with Progress(SpinnerColumn(), TextColumn(name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:  # fmt: skip
        task = progress.add_task(name, total=total)
        yield lambda done: progress.update(task, completed=done)


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
    progress_every: Annotated[
        float, typer.Option(min=0, envvar=PROGRESS_EVERY_ENV, help=PROGRESS_EVERY_HELP)
    ] = DEFAULT_PROGRESS_EVERY,
) -> None:
    """Measure retrieval, answers, citations and abstention on question sets; optionally gate on floors."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from citeline.indexes import CitelineIndexError, atomic_write, load_embedder
    from citeline.service.answering import Retriever
    from citeline.service.evaluation import check_gate, evaluate, load_questions, lowered_without_reason, raise_floors
    from citeline.service.settings import ServiceSettings

    if policy not in ("strict", "flag"):
        raise fail(f"--policy must be strict or flag, not {policy!r}")
    settings = ServiceSettings()
    gate_data = json.loads(gate.read_text()) if gate else None
    if gate_data is not None and (problems := lowered_without_reason(gate_data)):
        raise fail("gate floors were lowered silently: " + "; ".join(problems))
    try:
        embedder = load_embedder(settings)
        passage_index = open_index(settings, index, embedder=embedder)
    except CitelineIndexError as exc:
        raise fail(str(exc)) from exc
    answerer = None
    retriever = Retriever(embedder, settings.retrieval_config())
    if not retrieval_only:
        generator = settings.generator()
        answerer = settings.answerer(embedder, generator)
    totals: dict[str, dict[str, float | None]] = {}
    reports = []
    for path in question_sets:
        questions = load_questions(path, answers, limit, every)
        with _progress_display(path.stem, len(questions), progress_every) as advance:
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
    title = f"citeline eval on index {passage_index.name!r}"
    metrics = list(next(iter(totals.values())))
    if plain_output(stdout):
        # One line per metric and set: a wide table of many sets is unreadable in a log.
        rows = [(f"{metric} [{name}]" if len(totals) > 1 else metric, "" if t[metric] is None else t[metric])
                for metric in metrics for name, t in totals.items()]  # fmt: skip
        print_key_values(stdout, title, rows)
    else:
        table = Table(title=title)
        table.add_column("metric")
        for name in totals:
            table.add_column(name)
        for metric in metrics:
            table.add_row(metric, *("" if t[metric] is None else str(t[metric]) for t in totals.values()))
        Console(width=160).print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, json.dumps({"sets": [r.to_json() for r in reports]}, indent=2).encode())
    if gate and gate_data is not None:
        if raise_floors_:
            changes = raise_floors(gate_data, totals)
            atomic_write(gate, (json.dumps(gate_data, indent=2) + "\n").encode())
            console.print(f"raised floors: {changes or 'none'}")
        failures = check_gate(totals, gate_data["floors"])
        for failure in failures:
            console.print(f"[bold red]gate:[/] {failure}")
        if failures:
            raise typer.Exit(1)
        console.print(f"[green]gate passed[/] ({len(gate_data['floors'])} floors)")
