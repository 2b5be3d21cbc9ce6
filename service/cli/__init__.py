"""The ``citeline`` command line.

Commands import what they need when they run: ``citeline ingest`` loads the ingest layer and the
embedder only, never the HTTP or generation stack.
"""

import faulthandler
import os
import sys

# isort: off
# Importing each command module registers its commands on ``app``, in the order ``citeline --help`` lists them.
from citeline.service.cli import ingest_command, ask, evaluate, serve, mcp_command, models, indexes

# isort: on
from citeline.service.cli._common import app

__all__ = ["app", "ask", "evaluate", "indexes", "ingest_command", "main", "mcp_command", "models", "serve"]


def main() -> None:
    """Run a command, then leave without the interpreter's teardown.

    Everything a command produces is written, fsynced and closed before it returns; what teardown
    would add is native runtimes (OpenVINO, tokenizers, PDFium) destroyed in an order Python does not
    control, and one CI run had ``citeline ingest`` die of SIGSEGV there, after its summary was
    printed (not reproduced in a dozen local runs). ``faulthandler`` prints a native traceback should
    a crash happen anywhere else.
    """
    faulthandler.enable()
    try:
        app()
        code: int = 0
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
