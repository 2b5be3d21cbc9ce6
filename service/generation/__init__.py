"""Generators behind one Protocol: the OpenVINO default, an OpenAI-compatible server, and a scripted fake."""

from service.generation._base import ChatMessage, GenerationResult, Generator, Role, TokenCallback
from service.generation._fake import ScriptedGenerator
from service.generation._openvino import OpenVINOGenerator
from service.generation._remote import OpenAICompatibleGenerator
from service.generation.prepare import (
    QWEN_MODEL_ID,
    PreparedModel,
    is_ready,
    prepare_generator,
    prepared_model_dir,
)

__all__ = [
    "QWEN_MODEL_ID",
    "ChatMessage",
    "GenerationResult",
    "Generator",
    "OpenAICompatibleGenerator",
    "OpenVINOGenerator",
    "PreparedModel",
    "Role",
    "ScriptedGenerator",
    "TokenCallback",
    "is_ready",
    "prepare_generator",
    "prepared_model_dir",
]
