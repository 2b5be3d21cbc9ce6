"""``python -m citeline``: the command line, as the ``citeline`` script runs it."""

from citeline.service.cli import main

main()
