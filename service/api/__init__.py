"""The HTTP service (Litestar): one module per route group.

- ``app``: :func:`create_app`, the lifespan and the wiring;
- ``ask``, ``chat``, ``search``, ``ingest_jobs``, ``health``: the routes;
- ``resources``: what requests share, handed out by dependency injection;
- ``problems``: domain errors as RFC 9457 problem details, for responses and streams alike;
- ``auth``, ``gate``, ``cache``: API keys and rate limits, the generator's bounded queue, the answer cache;
- ``openai_chat``: the OpenAI chat-completions wire format; ``metrics``, ``logs``: Prometheus and JSON logs.
"""

from citeline.service.api.app import create_app

__all__ = ["create_app"]
