"""``GET /v1/models`` and ``GET /v1/models/{id}``: the OpenAI model list chat UIs and SDKs probe.

One model per index, ``citeline/<index>``, so a UI's model picker chooses the index the chat
answers from. Errors are in OpenAI's error shape, as on the chat route.
"""

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from citeline.indexes import index_dir
from citeline.service.api.openai_chat import UnknownModelError, index_of_model, model_id
from citeline.service.api.problems import openai_exception_handlers
from citeline.service.api.resources import Resources, ready, requires


def model_card(resources: Resources, index: str) -> dict[str, Any]:
    try:
        # The index directory's time: an index has no creation time of its own, and this one
        # stays put while ingest commits rewrite the files inside it.
        created = int(index_dir(resources.settings.data_dir, index).stat().st_mtime)
    except OSError:
        created = 0
    return {"id": model_id(index), "object": "model", "created": created, "owned_by": "citeline"}


@get("/v1/models", summary="OpenAI-compatible model list: one model, citeline/<index>, per index",
     guards=[requires("read")], exception_handlers=openai_exception_handlers(), sync_to_thread=True)  # fmt: skip
def list_models(resources: NamedDependency[Resources]) -> dict[str, Any]:
    registry, _ = ready(resources)
    return {"object": "list", "data": [model_card(resources, name) for name in registry.names()]}


@get("/v1/models/{model:path}", summary="One model of the OpenAI-compatible model list",
     guards=[requires("read")], exception_handlers=openai_exception_handlers(), sync_to_thread=True)  # fmt: skip
def retrieve_model(model: FromPath[str], resources: NamedDependency[Resources]) -> dict[str, Any]:
    # A path parameter keeps the slash of ``citeline/<index>`` (sent as is, or as %2F).
    model = model.lstrip("/")
    registry, _ = ready(resources)
    index = index_of_model(model)
    if index is None or index not in registry.names():
        raise UnknownModelError(model)
    return model_card(resources, index)
