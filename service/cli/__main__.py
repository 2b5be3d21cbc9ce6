"""``python -m citeline.service.cli``: the command line, when the ``citeline`` script is not installed."""

from citeline.service.cli import main

main()
