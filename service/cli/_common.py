"""What every command shares: the Typer apps, the consoles, errors and opening an index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from citeline.indexes import CitelineSettings, Embedder, PassageIndex

app = typer.Typer(help="citeline: answers whose every sentence cites a checked source.", no_args_is_help=True)
models_app = typer.Typer(help="Prepare and inspect the local models.", no_args_is_help=True)
index_app = typer.Typer(help="Inspect indexes.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")
console = Console(stderr=True)
out = Console()

IndexOption = Annotated[str | None, typer.Option("--index", "-i", help="Index name (default: settings.index).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def open_index(
    settings: CitelineSettings, name: str | None, *, embedder: Embedder | None = None, read_only: bool = True
) -> PassageIndex:
    """The named index (default: the configured one) on the configured vector backend, checked
    against ``embedder`` when one is given."""
    from citeline.indexes import PassageIndex

    return PassageIndex.open(
        settings.data_dir,
        name or settings.index,
        read_only=read_only,
        vector_backend=settings.vector_backend,
        qdrant_url=settings.qdrant_url,
        embedder=None if embedder is None else (embedder.model_name, embedder.dimension),
    )
