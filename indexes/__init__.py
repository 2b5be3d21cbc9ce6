"""citeline's bottom layer: the on-disk index format, the embedder and search.

Nothing here imports ``ingest`` or ``service``.
"""

from citeline.indexes._embedder import (
    EMBEDDING_BACKENDS,
    Embedder,
    EmbeddingBackend,
    HashEmbedder,
    OpenVINOEmbedder,
    SentenceTransformerEmbedder,
    Vectors,
    load_embedder,
)
from citeline.indexes._exceptions import (
    CitelineError,
    CitelineIndexError,
    EmbedderMismatchError,
    EmbedderUnavailableError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidIndexNameError,
    VectorStoreBusyError,
)
from citeline.indexes._export import (
    DEFAULT_EMBEDDING_MODEL,
    EmbedderExport,
    openvino_export_dir,
    prepare_openvino_embedder,
)
from citeline.indexes._files import atomic_write
from citeline.indexes._fusion import (
    RETRIEVAL_MODES,
    RRF_K,
    HybridRetriever,
    RetrievalMode,
    maximal_marginal_relevance,
    reciprocal_rank_fusion,
)
from citeline.indexes._index import PassageIndex, UpsertResult
from citeline.indexes._layout import index_dir, list_indexes, validate_index_name
from citeline.indexes._lexical import LexicalIndex, bm25_scores, embedding_text, stem_word, stopwords, tokenize
from citeline.indexes._manifest import Manifest
from citeline.indexes._qdrant import QdrantVectorStore
from citeline.indexes._settings import CitelineSettings
from citeline.indexes._simhash import hamming_distance
from citeline.indexes._types import ALIAS_KINDS, PDF_PAGE_KEY, AliasKind, PageRecord, PassageRecord, SearchHit
from citeline.indexes._vectors import VectorIndexPolicy, VectorIndexSpec, set_search_threads
from citeline.indexes._vectorstore import (
    VECTOR_BACKENDS,
    FaissVectorStore,
    VectorBackend,
    VectorStore,
    open_vector_store,
)

__all__ = [
    "ALIAS_KINDS",
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_BACKENDS",
    "PDF_PAGE_KEY",
    "RETRIEVAL_MODES",
    "RRF_K",
    "VECTOR_BACKENDS",
    "AliasKind",
    "CitelineError",
    "CitelineIndexError",
    "CitelineSettings",
    "Embedder",
    "EmbedderExport",
    "EmbedderMismatchError",
    "EmbedderUnavailableError",
    "EmbeddingBackend",
    "FaissVectorStore",
    "HashEmbedder",
    "HybridRetriever",
    "IndexCorruptError",
    "IndexNotFoundError",
    "InvalidIndexNameError",
    "LexicalIndex",
    "Manifest",
    "OpenVINOEmbedder",
    "PageRecord",
    "PassageIndex",
    "PassageRecord",
    "QdrantVectorStore",
    "RetrievalMode",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "UpsertResult",
    "VectorBackend",
    "VectorIndexPolicy",
    "VectorIndexSpec",
    "VectorStore",
    "VectorStoreBusyError",
    "Vectors",
    "atomic_write",
    "bm25_scores",
    "embedding_text",
    "hamming_distance",
    "index_dir",
    "list_indexes",
    "load_embedder",
    "maximal_marginal_relevance",
    "open_vector_store",
    "openvino_export_dir",
    "prepare_openvino_embedder",
    "reciprocal_rank_fusion",
    "set_search_threads",
    "stem_word",
    "stopwords",
    "tokenize",
    "validate_index_name",
]
