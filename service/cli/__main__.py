"""``python -m service.cli``: the command line, when the ``citeline`` script is not installed."""

from service.cli import main

main()
