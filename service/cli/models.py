"""``citeline models``: prepare the local models (the ``prepare`` extra's stack, run once)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

if TYPE_CHECKING:
    pass
from citeline.service.cli._common import console, fail, models_app
from citeline.service.cli._progress import (
    DEFAULT_PROGRESS_EVERY,
    PROGRESS_EVERY_ENV,
    PROGRESS_EVERY_HELP,
    StageProgress,
    plain_output,
    print_plain,
)


@models_app.command("prepare")
def models_prepare(
    force: Annotated[bool, typer.Option(help="Rebuild even when a prepared model exists.")] = False,
    progress_every: Annotated[
        float, typer.Option(min=0, envvar=PROGRESS_EVERY_ENV, help=PROGRESS_EVERY_HELP)
    ] = DEFAULT_PROGRESS_EVERY,
) -> None:
    """Assemble, verify and export the generator (once; cached under models_dir)."""
    from citeline.indexes import EmbedderUnavailableError, load_embedder, prepare_openvino_embedder
    from citeline.service.exceptions import ModelPreparationError
    from citeline.service.preparation import prepare_generator
    from citeline.service.settings import ServiceSettings

    settings = ServiceSettings()
    stages = {
        "assemble": "Assemble GGUF + sha256",
        "dequantize": "GGUF -> fp32 checkpoint",
        "export": "Export OpenVINO int4",
    }
    if plain_output(console):
        stage_progress = StageProgress("models prepare", functools.partial(print_plain, console), every=progress_every)
        with stage_progress.ticking():
            try:
                prepared = prepare_generator(
                    settings.models_dir,
                    force=force,
                    progress=lambda stage, fraction: stage_progress.update(stages[stage], fraction),
                )
            except ModelPreparationError as exc:
                raise fail(str(exc)) from exc
    else:
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
                raise fail(str(exc)) from exc
            for task in tasks.values():
                progress.start_task(task)
                progress.update(task, completed=1.0)
    state = "prepared" if prepared.seconds else "already prepared"
    console.print(f"generator {prepared.model_id} {state} at {prepared.path} ({prepared.seconds:.0f} s)")
    if settings.embedding_backend != "torch":
        if plain_output(console):
            # The spinner below draws nothing off a terminal, and the export takes minutes.
            print_plain(console, f"exporting the embedder to OpenVINO ({settings.embedding_backend})…")
        with console.status(f"Export the embedder to OpenVINO ({settings.embedding_backend})"):
            try:
                export = prepare_openvino_embedder(
                    settings.embedding_model,
                    settings.models_dir,
                    int8=settings.embedding_backend == "openvino-int8",
                    force=force,
                )
            except EmbedderUnavailableError as exc:
                raise fail(str(exc)) from exc
        state = "exported" if export.seconds else "already exported"
        console.print(f"embedder {state} to OpenVINO at {export.path} ({export.seconds:.0f} s)")
    embedder = load_embedder(settings)
    console.print(
        f"embedder {embedder.model_name} ({settings.embedding_backend}) loads offline ({embedder.dimension}-d)"
    )
