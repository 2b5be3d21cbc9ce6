"""Answering: retrieve passages, generate from them, check every sentence, cite its source span.

- ``models``: the response models (``Answer``, ``Citation``…) every interface serialises.
- ``retriever``: passages for a question, from one index or a :class:`SourceSet` of stored and live ones.
- ``answerer``: the whole path, question to verified answer (extracts and abstentions included).
- ``prompt``, ``budget``: what the generator sees; ``citations``, ``citing``, ``links``: spans,
  markers, citation ids and planted links; ``verify``, ``scope``: the checker and the off-corpus test;
  ``stream``: verification while the generator writes.
"""

from citeline.service.answering.answerer import Answerer, ExtractConfig
from citeline.service.answering.budget import BudgetConfig
from citeline.service.answering.models import (
    ABSTENTION_TEXT,
    EXTRACT_NOTICE,
    Answer,
    AnswerSentence,
    Candidate,
    Citation,
    Policy,
    RetrievedPassage,
    SeeAlso,
    SentenceCallback,
    Timings,
    Usage,
    VerifiedSentence,
    retrieved,
)
from citeline.service.answering.retriever import RetrievalConfig, Retriever
from citeline.service.answering.source_set import LiveReport, SourceSet, as_sources
from citeline.service.answering.verify import Verifier, VerifierConfig

__all__ = [
    "ABSTENTION_TEXT",
    "EXTRACT_NOTICE",
    "Answer",
    "AnswerSentence",
    "Answerer",
    "BudgetConfig",
    "Candidate",
    "Citation",
    "ExtractConfig",
    "LiveReport",
    "Policy",
    "RetrievalConfig",
    "RetrievedPassage",
    "Retriever",
    "SeeAlso",
    "SentenceCallback",
    "SourceSet",
    "Timings",
    "Usage",
    "VerifiedSentence",
    "Verifier",
    "VerifierConfig",
    "as_sources",
    "retrieved",
]
