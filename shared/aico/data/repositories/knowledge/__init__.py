"""The knowledge repositories (``knowledge.db``): one module per table, one class each.

Each takes the knowledge connection and never opens one; every row belongs to an aico user
(schema version 2). Arguments are checked in Python before the store is touched, so a
value the schema's CHECKs would refuse is ``InvalidInput`` and nothing is written; the
driver's ``ConstraintViolation`` is mapped to ``InvalidInput`` as a backstop. Row
dataclasses leave user text (titles, descriptions, paths, JSON) out of their ``repr``: reprs
end up in logs and tracebacks. The ``Knowledge`` face (``aico.ai.memory.knowledge``) adds
what needs the other stores: user and ownership checks, metrics measured from the message
log, the read-only refusal.
"""

from aico.data.repositories.knowledge.components import Component, ComponentRepository
from aico.data.repositories.knowledge.decisions import (
    DECISION_STATUSES,
    Decision,
    DecisionRepository,
)
from aico.data.repositories.knowledge.documentation import (
    DocumentationFile,
    DocumentationRepository,
)
from aico.data.repositories.knowledge.effectiveness import (
    ConversationEffectiveness,
    ConversationMetrics,
    EffectivenessRepository,
    measure,
)
from aico.data.repositories.knowledge.patterns import PatternRepository, SuccessPattern
from aico.data.repositories.knowledge.relevance import (
    CONTEXT_TYPES,
    FEEDBACK_SOURCES,
    ContextFeedback,
    RelevanceRepository,
    UsefulnessSummary,
)

__all__ = [
    "CONTEXT_TYPES",
    "DECISION_STATUSES",
    "FEEDBACK_SOURCES",
    "Component",
    "ComponentRepository",
    "ContextFeedback",
    "ConversationEffectiveness",
    "ConversationMetrics",
    "Decision",
    "DecisionRepository",
    "DocumentationFile",
    "DocumentationRepository",
    "EffectivenessRepository",
    "PatternRepository",
    "RelevanceRepository",
    "SuccessPattern",
    "UsefulnessSummary",
    "measure",
]
