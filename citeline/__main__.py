"""``python -m citeline``: the command line, as the ``citeline`` script runs it (ingest jobs run it so
when that script is not installed)."""

from citeline.service.cli import main

main()
