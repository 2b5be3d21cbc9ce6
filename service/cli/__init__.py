"""The ``citeline`` command line.

Commands import what they need when they run: ``citeline ingest`` loads the ingest layer and the
embedder only, never the HTTP or generation stack.
"""

# Importing each command module registers its commands on ``app``.
# isort: off
# In the order ``citeline --help`` lists them.
from service.cli import ingest_command, ask, evaluate, serve, mcp_command, models, indexes

# isort: on
from service.cli._common import app

__all__ = ["app", "ask", "evaluate", "indexes", "ingest_command", "main", "mcp_command", "models", "serve"]


def main() -> None:
    app()
