"""Generators behind one Protocol: the OpenVINO default, an OpenAI-compatible server, and a scripted fake.

Runtime only: preparing a model is :mod:`service.preparation`, which serving never imports.
"""

from citeline.service.generation._artifacts import (
    QWEN_MODEL_ID,
    READY_MARKER,
    RECIPE_VERSION,
    is_ready,
    prepared_model_dir,
)
from citeline.service.generation._base import ChatMessage, GenerationResult, Generator, Role, TokenCallback
from citeline.service.generation._fake import ScriptedGenerator
from citeline.service.generation._openvino import OpenVINOGenerator
from citeline.service.generation._remote import OpenAICompatibleGenerator

__all__ = [
    "QWEN_MODEL_ID",
    "READY_MARKER",
    "RECIPE_VERSION",
    "ChatMessage",
    "GenerationResult",
    "Generator",
    "OpenAICompatibleGenerator",
    "OpenVINOGenerator",
    "Role",
    "ScriptedGenerator",
    "TokenCallback",
    "is_ready",
    "prepared_model_dir",
]
