"""citeline: retrieval-augmented answers whose every sentence cites a checked source.

The one name citeline installs at the top of site-packages. Its three layers live in the folders the
repository is organised by, linked in here (``citeline/service`` -> ``../service`` and so on), so that an
installed citeline claims no generic top-level module name:

=========================  =====================================================================
``citeline.indexes``       the on-disk index format, the embedder and search (the bottom layer)
``citeline.ingest``        fetching, extracting and chunking pages into an index
``citeline.service``       the HTTP service, the answerer, the CLI and the MCP server (the top)
=========================  =====================================================================

Nothing imports upward: ``indexes`` imports neither of the others, ``ingest`` only ``indexes``.
"""
