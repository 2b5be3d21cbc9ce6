"""``citeline index``: list and remove indexes."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

if TYPE_CHECKING:
    pass
from citeline.service.cli._common import IndexOption, console, fail, index_app, open_index, out


@index_app.command("remove")
def index_remove(
    pattern: Annotated[str, typer.Argument(help="A page URL, or a glob pattern (https://site/old/*).")],
    index: IndexOption = None,
) -> None:
    """Delete pages (and their passages, vectors and aliases) from an index."""
    from citeline.indexes import CitelineIndexError
    from citeline.ingest import IngestSettings

    settings = IngestSettings()
    try:
        passage_index = open_index(settings, index, read_only=False)
    except CitelineIndexError as exc:
        raise fail(str(exc)) from exc
    try:
        removed = passage_index.remove_pages(pattern)
        manifest = passage_index.flush()
    finally:
        passage_index.close()
    for url in removed:
        out.print(url)
    console.print(f"removed {len(removed)} pages; index now {manifest.pages} pages, {manifest.passages} passages")
    if not removed:
        raise fail(f"no page matches {pattern!r}")


@index_app.command("list")
def index_list() -> None:
    """List the indexes of the data directory with their manifests."""
    from citeline.indexes import list_indexes
    from citeline.ingest import IngestSettings

    settings = IngestSettings()
    table = Table("index", "pages", "passages", "embedder", "path")
    for name in list_indexes(settings.data_dir):
        with contextlib.closing(open_index(settings, name)) as passage_index:
            manifest = passage_index.manifest()
            table.add_row(
                name, str(manifest.pages), str(manifest.passages), manifest.embedding_model, str(passage_index.path)
            )
    out.print(table)
