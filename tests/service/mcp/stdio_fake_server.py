"""``python -m tests.service.mcp.stdio_fake_server DATA_DIR``: the stdio server of ``citeline mcp``
over the fakes, so the stdio transport is tested without loading the real models."""

import sys
from pathlib import Path

from citeline.service.mcp.stdio import logs_to_stderr, stdio_server
from tests.service.mcp.fakes import ready_resources, settings_for

if __name__ == "__main__":
    logs_to_stderr()
    settings = settings_for(Path(sys.argv[1]))
    stdio_server(settings, resources=ready_resources(settings)).run("stdio")
