"""``citeline eval``: quality metrics on question sets, and the quality gate."""

from __future__ import annotations

import json
import os
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
    pass
from service.cli._common import IndexOption, app, console, fail, open_index


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
    from indexes import CitelineIndexError, atomic_write, load_embedder
    from service.answering import Retriever
    from service.evaluation import check_gate, evaluate, load_questions, lowered_without_reason, raise_floors
    from service.settings import ServiceSettings

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
