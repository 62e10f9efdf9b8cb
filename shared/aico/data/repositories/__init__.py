"""Repositories: typed, validated access to tables. They take a connection; they never open one."""

from aico.data.repositories.conversations import (
    ATTACHMENT_TYPES,
    Attachment,
    ConversationLog,
    LoggedMessage,
    PendingCompaction,
)
from aico.data.repositories.facts import Fact, FactRepository
from aico.data.repositories.feedback import FEEDBACK_TYPES, FeedbackEvent, FeedbackRepository
from aico.data.repositories.logs import LOG_LEVELS, LogEntry, LogRepository
from aico.data.repositories.tasks import TASK_STATUSES, Task, TaskRepository
from aico.data.repositories.tokens import (
    TOKEN_HASH_PURPOSE,
    TOKEN_SCOPES,
    ApiToken,
    TokenRepository,
)
from aico.data.repositories.users import USER_TYPES, UserProfile, UserService

__all__ = [
    "ATTACHMENT_TYPES",
    "FEEDBACK_TYPES",
    "LOG_LEVELS",
    "TASK_STATUSES",
    "TOKEN_HASH_PURPOSE",
    "TOKEN_SCOPES",
    "USER_TYPES",
    "ApiToken",
    "Attachment",
    "ConversationLog",
    "Fact",
    "FactRepository",
    "FeedbackEvent",
    "FeedbackRepository",
    "LogEntry",
    "LogRepository",
    "LoggedMessage",
    "PendingCompaction",
    "Task",
    "TaskRepository",
    "TokenRepository",
    "UserProfile",
    "UserService",
]
