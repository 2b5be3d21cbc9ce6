"""citeline as a Model Context Protocol server: the tools (:mod:`service.mcp.tools`), the
streamable-HTTP endpoint the service mounts at ``/mcp`` (:mod:`service.mcp.http`) and the stdio
server behind ``citeline mcp`` (:mod:`service.mcp.stdio`)."""
