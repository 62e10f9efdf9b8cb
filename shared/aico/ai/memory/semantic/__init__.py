"""Semantic (long-term) memory: hybrid BM25 + dense search over encrypted libSQL and Chroma.

``SemanticMemoryStore`` is the one entry point; ``aico.ai.memory.semantic.schema`` registers
its tables with the core database. See ``docs/semantic-memory.md``.
"""

from aico.ai.memory.semantic.config import SemanticConfig
from aico.ai.memory.semantic.fts import (
    DEFAULT_FTS_TOKENIZER,
    build_match_expression,
    query_terms,
)
from aico.ai.memory.semantic.fusion import FusedResult, FusionConfig, FusionMethod, fuse
from aico.ai.memory.semantic.keys import SemanticKeys
from aico.ai.memory.semantic.rotation import VectorRotation
from aico.ai.memory.semantic.segmenting import (
    SegmentationConfig,
    SegmentUnit,
    segment_messages,
)
from aico.ai.memory.semantic.store import SemanticMemoryStore
from aico.ai.memory.semantic.timeparse import TimeWindow
from aico.ai.memory.semantic.types import (
    IndexHealth,
    IndexReport,
    Message,
    ModelInfo,
    OutboxResult,
    ReembedProgress,
    SearchHit,
    SearchMode,
    Segment,
    SegmentSource,
)

__all__ = [
    "DEFAULT_FTS_TOKENIZER",
    "FusedResult",
    "FusionConfig",
    "FusionMethod",
    "IndexHealth",
    "IndexReport",
    "Message",
    "ModelInfo",
    "OutboxResult",
    "ReembedProgress",
    "SearchHit",
    "SearchMode",
    "Segment",
    "SegmentSource",
    "SegmentUnit",
    "SegmentationConfig",
    "SemanticConfig",
    "SemanticKeys",
    "SemanticMemoryStore",
    "TimeWindow",
    "VectorRotation",
    "build_match_expression",
    "fuse",
    "query_terms",
    "segment_messages",
]
