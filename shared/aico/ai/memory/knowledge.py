"""The knowledge store in use (``knowledge.db``): decisions, components, patterns, feedback.

``MemoryManager.knowledge`` returns one per manager; ``Knowledge.from_store`` builds one on a
bare ``DataStore`` (the CLI, which needs neither working nor semantic memory). The
repositories (``aico.data.repositories.knowledge``) each touch ``knowledge.db`` only; this
face adds what needs the other databases:

- the user must exist (core) for every write and list; conversations and context items
  must be the user's (the message log, the facts, the semantic segments), else ``NotFound``
  exactly as for a missing id;
- conversation effectiveness is measured from the message log, not typed in;
- writes raise ``ReadOnly`` on a read-only manager or store, before anything is read;
- ``purge_user`` / ``purge_conversation`` delete a user's (or a conversation's) rows, for
  the forget path.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from aico.ai.memory.semantic import SearchHit
from aico.ai.memory.working import WorkingMessage
from aico.data.repositories import ConversationLog, Fact, FactRepository, UserService
from aico.data.repositories.conversations import LoggedMessage
from aico.data.repositories.knowledge import (
    CONTEXT_TYPES,
    Component,
    ComponentRepository,
    ContextFeedback,
    ConversationEffectiveness,
    Decision,
    DecisionRepository,
    DocumentationFile,
    DocumentationRepository,
    EffectivenessRepository,
    PatternRepository,
    RelevanceRepository,
    SuccessPattern,
    UsefulnessSummary,
    measure,
)
from aico.data.repositories.knowledge._table import KnowledgeTable, label, optional_text, unit
from aico.data.repositories.knowledge.effectiveness import satisfaction
from aico.data.repositories.knowledge.relevance import feedback_source_check
from aico.errors import InvalidInput, NotFound, ReadOnly
from aico.validation import check_id, check_text

if TYPE_CHECKING:
    from aico.ai.memory.context import ContextBundle
    from aico.ai.memory.manager import MemoryManager
    from aico.data.libsql import EncryptedLibSQLConnection
    from aico.data.store import DataStore

__all__ = ["KINDS", "ContextItem", "Kind", "Knowledge", "KnowledgeRow"]

Kind = Literal["component", "documentation", "decision", "pattern", "effectiveness", "feedback"]
KINDS: tuple[Kind, ...] = get_args(Kind)
KnowledgeRow = (
    Component
    | DocumentationFile
    | Decision
    | SuccessPattern
    | ConversationEffectiveness
    | ContextFeedback
)
_PAGE = 1000
_ALIASES = {"memory": "segment", "recent": "message"}


@dataclass(frozen=True)
class ContextItem:
    """One item of a context bundle, by reference: ``kind`` is segment, fact or message.

    ``ref`` (``"segment:<id>"``) is how the CLI and other processes name it; ``score`` is
    the retrieval score the item had (segments only), ``conversation_id`` where it came from.
    """

    kind: str
    item_id: str
    score: float | None = None
    conversation_id: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.item_id}"

    def __repr__(self) -> str:
        # A file item's id is its path (the user's own words): never in logs or tracebacks.
        shown = "<path>" if self.kind == "file" else repr(self.item_id)
        return f"ContextItem(kind={self.kind!r}, item_id={shown}, score={self.score!r})"

    @classmethod
    def parse(cls, ref: object) -> ContextItem:
        """``"fact:<id>"`` -> ``ContextItem("fact", "<id>")``; ``InvalidInput`` otherwise.

        ``memory:`` and ``recent:`` (the sources ``aico context --json`` prints) are
        accepted for ``segment:`` and ``message:``.
        """
        text = check_text(ref, "item", required=True, limit=4200)
        kind, sep, key = text.partition(":")
        kind = _ALIASES.get(kind, kind)
        if not sep or kind not in CONTEXT_TYPES or not key:
            raise InvalidInput(
                f"item must be <kind>:<id> with kind one of {', '.join(CONTEXT_TYPES)}"
            )
        return cls(kind, key)

    @classmethod
    def of(cls, item: ContextItem | SearchHit | Fact | WorkingMessage | str) -> ContextItem:
        """The reference of a bundle's memory, fact or recent turn (or of a ``ref`` string)."""
        if isinstance(item, ContextItem):
            return item
        if isinstance(item, SearchHit):
            return cls("segment", item.segment_id, item.score, item.conversation_id)
        if isinstance(item, Fact):
            return cls("fact", item.fact_id, None, item.conversation_id)
        if isinstance(item, WorkingMessage):
            return cls("message", item.id, None, item.conversation_id)
        return cls.parse(item)


class Knowledge:
    """The knowledge repositories of one data dir, with the checks that need the others."""

    def __init__(self, manager: MemoryManager) -> None:
        self._manager: MemoryManager | None = manager
        self._store = manager.store
        self._read_only = manager.read_only
        self._clock: Callable[[], float] | None = manager.clock

    @classmethod
    def from_store(cls, store: DataStore, *, clock: Callable[[], float] | None = None) -> Knowledge:
        """A ``Knowledge`` over a bare ``DataStore``; read-only exactly when the store is."""
        self = cls.__new__(cls)
        self._manager = None
        self._store = store
        self._read_only = store.read_only
        self._clock = clock
        return self

    # ---- plumbing -------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return self._read_only

    def _writable(self, verb: str) -> None:
        if self._read_only:
            raise ReadOnly(f"{verb} writes, and the knowledge store was opened read-only")

    def _conn(self) -> EncryptedLibSQLConnection:
        return self._store.connection("knowledge")

    def _log(self) -> ConversationLog:
        if self._manager is not None:
            return self._manager.log
        return ConversationLog(self._store.connection("conversations"))

    def _repo(self, kind: object) -> KnowledgeTable[Any]:
        factories: dict[str, Callable[..., KnowledgeTable[Any]]] = {
            "component": ComponentRepository,
            "documentation": DocumentationRepository,
            "decision": DecisionRepository,
            "pattern": PatternRepository,
            "effectiveness": EffectivenessRepository,
            "feedback": RelevanceRepository,
        }
        if not isinstance(kind, str) or kind not in factories:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        return factories[kind](self._conn(), clock=self._clock)

    @property
    def components(self) -> ComponentRepository:
        return ComponentRepository(self._conn(), clock=self._clock)

    @property
    def documentation(self) -> DocumentationRepository:
        return DocumentationRepository(self._conn(), clock=self._clock)

    @property
    def decisions(self) -> DecisionRepository:
        return DecisionRepository(self._conn(), clock=self._clock)

    @property
    def patterns(self) -> PatternRepository:
        return PatternRepository(self._conn(), clock=self._clock)

    @property
    def effectiveness(self) -> EffectivenessRepository:
        return EffectivenessRepository(self._conn(), clock=self._clock)

    @property
    def relevance(self) -> RelevanceRepository:
        return RelevanceRepository(self._conn(), clock=self._clock)

    def _require_user(self, user_id: object) -> str:
        user = check_id(user_id, "user_id")
        if not UserService(self._store.connection("core")).exists(user):
            raise NotFound("no user with this user_id")
        return user

    def _require_conversation(self, user_id: str, conversation_id: object) -> str:
        conversation = check_id(conversation_id, "conversation_id")
        if self._log().conversation_owner(conversation) != user_id:
            raise NotFound("no conversation with this conversation_id for this user")
        return conversation

    # ---- generic reads ----------------------------------------------------------------

    def get(self, kind: Kind, user_id: str, item_id: str) -> KnowledgeRow:
        """One row of ``kind`` that is ``user_id``'s; ``NotFound`` otherwise."""
        row: KnowledgeRow = self._repo(kind).get(item_id, user_id=check_id(user_id, "user_id"))
        return row

    def list(
        self,
        kind: Kind,
        user_id: str,
        *,
        type: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[KnowledgeRow]:
        """The user's rows of ``kind``, newest first.

        ``type`` filters on the kind's type column (component type, doc type, decision
        type, pattern type, task type, context type); ``status`` is for decisions only.
        """
        repo = self._repo(kind)
        user = self._require_user(user_id)
        if isinstance(repo, DecisionRepository):
            decisions: builtins.list[KnowledgeRow] = [
                *repo.list(user, type=type, status=status, limit=limit, offset=offset)
            ]
            return decisions
        if status is not None:
            raise InvalidInput("status filters decisions only")
        rows: builtins.list[KnowledgeRow] = repo.list(user, type=type, limit=limit, offset=offset)
        return rows

    def counts(self, user_id: str) -> dict[str, int]:
        """How many rows of each kind the user has."""
        user = self._require_user(user_id)
        return {kind: self._repo(kind).count(user) for kind in KINDS}

    def delete(self, kind: Kind, user_id: str, item_id: str) -> None:
        """Delete one of the user's rows; a deleted decision ends its chain's history there."""
        self._writable("delete")
        repo = self._repo(kind)
        repo.delete(item_id, user_id=check_id(user_id, "user_id"))

    # ---- project knowledge --------------------------------------------------------------

    def add_component(self, user_id: str, component: str, type: str, **fields: Any) -> Component:
        """``ComponentRepository.add`` for an existing user."""
        self._writable("add_component")
        return self.components.add(self._require_user(user_id), component, type, **fields)

    def add_documentation(self, user_id: str, file_path: str, **fields: Any) -> DocumentationFile:
        """``DocumentationRepository.add`` for an existing user."""
        self._writable("add_documentation")
        return self.documentation.add(self._require_user(user_id), file_path, **fields)

    def add_decision(self, user_id: str, title: str, decision_type: str, **fields: Any) -> Decision:
        """``DecisionRepository.add`` for an existing user."""
        self._writable("add_decision")
        return self.decisions.add(self._require_user(user_id), title, decision_type, **fields)

    def supersede_decision(
        self, user_id: str, decision_id: str, title: str, **fields: Any
    ) -> tuple[Decision, Decision]:
        """Replace an active decision by a new one: ``(old, new)`` (one transaction)."""
        self._writable("supersede_decision")
        return self.decisions.supersede(
            decision_id, user_id=self._require_user(user_id), title=title, **fields
        )

    def revert_decision(self, user_id: str, decision_id: str) -> Decision:
        """Mark an active decision reverted."""
        self._writable("revert_decision")
        return self.decisions.revert(decision_id, user_id=self._require_user(user_id))

    def decision_history(self, user_id: str, decision_id: str) -> builtins.list[Decision]:
        """The decision's supersession chain, oldest first."""
        return self.decisions.history(decision_id, user_id=check_id(user_id, "user_id"))

    def add_pattern(self, user_id: str, pattern_type: str, **fields: Any) -> SuccessPattern:
        """``PatternRepository.add`` for an existing user."""
        self._writable("add_pattern")
        return self.patterns.add(self._require_user(user_id), pattern_type, **fields)

    def record_pattern_use(
        self, user_id: str, pattern_id: str, *, successful: bool
    ) -> SuccessPattern:
        """Count one use of a pattern (and when it last worked)."""
        self._writable("record_pattern_use")
        return self.patterns.record_use(
            pattern_id, user_id=check_id(user_id, "user_id"), successful=successful
        )

    # ---- recorded from conversations ---------------------------------------------------

    def _messages(self, conversation_id: str) -> Iterator[LoggedMessage]:
        log, offset = self._log(), 0
        while True:
            page = log.messages_of_conversation(conversation_id, limit=_PAGE, offset=offset)
            yield from page
            if len(page) < _PAGE:
                return
            offset += _PAGE

    def record_effectiveness(
        self,
        user_id: str,
        conversation_id: str,
        *,
        user_satisfaction: int | None = None,
        success_score: float | None = None,
        task_type: str | None = None,
        key_factors: Any = None,
        lessons_learned: str | None = None,
    ) -> ConversationEffectiveness:
        """Measure one of the user's conversations from the log and record how it went.

        Message and turn counts, duration, tokens and cost come from the log
        (``measure``); ``user_satisfaction`` (1-5) and the rest are the caller's. Recording
        the same conversation again re-measures it and replaces the record.
        """
        self._writable("record_effectiveness")
        satisfaction(user_satisfaction)
        unit(success_score, "success_score")
        if task_type is not None:
            label(task_type, "task_type")
        optional_text(lessons_learned, "lessons_learned")
        user = self._require_user(user_id)
        conversation = self._require_conversation(user, conversation_id)
        metrics = measure(self._messages(conversation))
        return self.effectiveness.record(
            user,
            conversation,
            metrics,
            task_type=task_type,
            success_score=success_score,
            user_satisfaction=user_satisfaction,
            key_factors=key_factors,
            lessons_learned=lessons_learned,
        )

    # ---- context relevance -----------------------------------------------------------

    @staticmethod
    def context_items(bundle: ContextBundle) -> builtins.list[ContextItem]:
        """Every item of an assembled context, in prompt order: facts, memories, turns."""
        return [
            *(ContextItem.of(f) for f in bundle.facts),
            *(ContextItem.of(h) for h in bundle.memories),
            *(ContextItem.of(m) for m in bundle.working),
        ]

    def _item_owner(self, item: ContextItem) -> str | None:
        if item.kind == "fact":
            try:
                return FactRepository(self._store.connection("core")).get(item.item_id).user_id
            except NotFound:
                return None
        if item.kind == "message":
            message = self._log().message(item.item_id)
            return None if message is None else message.user_id
        value = self._store.connection("core").fetch_value(
            "SELECT user_id FROM semantic_segments WHERE segment_id = ?", (item.item_id,)
        )
        return None if value is None else str(value)

    def record_context_feedback(
        self,
        user_id: str,
        item: ContextItem | SearchHit | Fact | WorkingMessage | str,
        useful: bool,
        *,
        usefulness: float | None = None,
        conversation_id: str | None = None,
        relevance_score: float | None = None,
        source: str = "explicit",
    ) -> ContextFeedback:
        """Record whether one context item was useful (``useful``), for the user's tuning.

        ``item`` is a bundle's fact, memory (``SearchHit``) or recent turn, a
        ``ContextItem``, or its ``ref`` (``"segment:<id>"``); it must be the user's. A
        ``"file:<path>"`` item (the file index) is recorded as given. ``usefulness`` grades
        it in ``[0, 1]`` (default 1.0 / 0.0) and must agree with ``useful`` (>= 0.5 is
        useful). The conversation and the retrieval score default to the item's own.
        """
        self._writable("record_context_feedback")
        if not isinstance(useful, bool):
            raise InvalidInput("useful must be a boolean")
        feedback_source_check(source)
        ref = ContextItem.of(item)
        check_text(ref.item_id, "item", required=True, limit=4096 if ref.kind == "file" else 128)
        if ref.kind != "file":
            check_id(ref.item_id, "item id")
        grade = unit(usefulness, "usefulness")
        if grade is None:
            grade = 1.0 if useful else 0.0
        elif (grade >= 0.5) != useful:
            raise InvalidInput("usefulness must be at least 0.5 for a useful item, below if not")
        score = unit(
            relevance_score if relevance_score is not None else ref.score, "relevance_score"
        )
        user = self._require_user(user_id)
        if ref.kind != "file" and self._item_owner(ref) != user:
            raise NotFound(f"no {ref.kind} with this id for this user")
        conversation = conversation_id if conversation_id is not None else ref.conversation_id
        if conversation is not None:
            conversation = self._require_conversation(user, conversation)
        return self.relevance.record(
            user,
            ref.kind,
            ref.item_id,
            actual_usefulness=grade,
            relevance_score=score,
            conversation_id=conversation,
            feedback_source=source,
        )

    def feedback_summary(self, user_id: str) -> builtins.list[UsefulnessSummary]:
        """Per kind of context item, how often it was useful."""
        return self.relevance.summary(self._require_user(user_id))

    # ---- forgetting ------------------------------------------------------------------

    def purge_user(self, user_id: str) -> int:
        """Delete every row of ``user_id`` in ``knowledge.db`` (one transaction); how many.

        The user need not exist any more: the forget path calls this after (or while) the
        user's other data goes.
        """
        self._writable("purge_user")
        user = check_id(user_id, "user_id")
        conn = self._conn()
        with conn.transaction():
            return sum(self._repo(kind).delete_user(user) for kind in KINDS)

    def purge_conversation(self, user_id: str, conversation_id: str) -> int:
        """Delete the rows recorded from one of the user's conversations; how many."""
        self._writable("purge_conversation")
        user = check_id(user_id, "user_id")
        conversation = check_id(conversation_id, "conversation_id")
        conn = self._conn()
        with conn.transaction():
            return self.effectiveness.delete_conversation(
                user, conversation
            ) + self.relevance.delete_conversation(user, conversation)
