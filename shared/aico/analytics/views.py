"""The documented views over the analytical copy (docs/analytics.md lists the same).

Views are code, not data: they are created in each session's in-memory catalog over the
attached copy (``a.*``), so changing one never needs a migration of the file. Times are
unix seconds in the copy; ``ts_of`` makes a UTC ``TIMESTAMP`` of them, so days, weeks
(ISO, starting Monday) and hours are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import duckdb

from aico.analytics._duck import translate

__all__ = ["VIEWS", "View", "create_views"]


@dataclass(frozen=True)
class View:
    name: str
    description: str
    sql: str
    per_user: bool = True


_MACROS: Final = (
    "CREATE OR REPLACE MACRO main.ts_of(x) AS make_timestamp(CAST(round(x * 1000000) AS BIGINT))",
)

VIEWS: Final[tuple[View, ...]] = (
    View(
        "activity_daily",
        "messages and tokens per user, UTC day and role",
        """SELECT user_id, CAST(ts_of(ts) AS DATE) AS day, role,
                  count(*) AS messages, sum(tokens) AS tokens
           FROM a.messages GROUP BY ALL""",
    ),
    View(
        "activity_weekly",
        "messages per user, ISO week (its Monday) and role",
        """SELECT user_id, CAST(date_trunc('week', ts_of(ts)) AS DATE) AS week, role,
                  count(*) AS messages, sum(tokens) AS tokens
           FROM a.messages GROUP BY ALL""",
    ),
    View(
        "sessions_daily",
        "sessions started per user and UTC day, with their messages",
        """SELECT user_id, CAST(ts_of(started_at) AS DATE) AS day,
                  count(*) AS sessions, sum(message_count) AS messages
           FROM a.sessions GROUP BY ALL""",
    ),
    View(
        "sessions_weekly",
        "sessions started per user and ISO week",
        """SELECT user_id, CAST(date_trunc('week', ts_of(started_at)) AS DATE) AS week,
                  count(*) AS sessions
           FROM a.sessions GROUP BY ALL""",
    ),
    View(
        "conversation_lengths",
        "messages per conversation (and per session for messages without one)",
        """SELECT user_id, coalesce(conversation_id, 'session:' || session_id) AS conversation,
                  count(*) AS messages, min(ts) AS first_ts, max(ts) AS last_ts
           FROM a.messages GROUP BY ALL""",
    ),
    View(
        "hour_heatmap",
        "messages per user, ISO weekday (1 = Monday) and UTC hour",
        """SELECT user_id, isodow(ts_of(ts)) AS weekday, hour(ts_of(ts)) AS hour,
                  count(*) AS messages
           FROM a.messages GROUP BY ALL""",
    ),
    View(
        "usage_by_model",
        "conversations, tokens and cost per user, provider and model (conversation totals)",
        """SELECT user_id, provider, coalesce(model, '(none)') AS model,
                  count(*) AS conversations, sum(total_tokens) AS tokens,
                  sum(total_cost) AS cost
           FROM a.conversations GROUP BY ALL""",
    ),
    View(
        "usage_daily",
        "tokens and cost per user, UTC day, provider and model (from each message)",
        """SELECT m.user_id, CAST(ts_of(m.ts) AS DATE) AS day,
                  coalesce(c.provider, '(none)') AS provider,
                  coalesce(c.model, '(none)') AS model,
                  count(*) AS messages, sum(m.tokens) AS tokens, sum(m.cost) AS cost
           FROM a.messages m LEFT JOIN a.conversations c ON c.id = m.conversation_id
           GROUP BY ALL""",
    ),
    View(
        "retrieved_segments",
        "how often each segment was put into an assembled context",
        """SELECT user_id, segment_id, count(*) AS retrievals,
                  count(DISTINCT event_id) AS contexts, min(rank) AS best_rank,
                  avg(score) AS avg_score, max(ts) AS last_at
           FROM a.context_items WHERE segment_id IS NOT NULL GROUP BY ALL""",
    ),
    View(
        "retrieved_facts",
        "how often each fact was put into an assembled context",
        """SELECT i.user_id, i.fact_id, f.category, count(*) AS retrievals, max(i.ts) AS last_at
           FROM a.context_items i LEFT JOIN a.facts f ON f.fact_id = i.fact_id
           WHERE i.fact_id IS NOT NULL GROUP BY ALL""",
    ),
    View(
        "contexts_daily",
        "assembled contexts per user and day, with what they held",
        """SELECT user_id, CAST(ts_of(ts) AS DATE) AS day, count(*) AS contexts,
                  sum(memories) AS memories, sum(facts) AS facts, sum(working) AS working,
                  avg(tokens) AS avg_tokens
           FROM a.context_events GROUP BY ALL""",
    ),
    View(
        "feedback_daily",
        "feedback events per user, UTC day and type; average rating of ratings",
        """SELECT user_id, CAST(ts_of(created_at) AS DATE) AS day, event_type,
                  count(*) AS events, avg(rating) AS avg_rating
           FROM a.feedback GROUP BY ALL""",
    ),
    View(
        "facts_daily",
        "facts added (by creation day), revisits and deletions seen by the exports, per day",
        """SELECT user_id, day, sum(added) AS added, sum(revisited) AS revisited,
                  sum(deleted) AS deleted
           FROM (
             SELECT user_id, CAST(ts_of(created_at) AS DATE) AS day,
                    1 AS added, 0 AS revisited, 0 AS deleted FROM a.facts
             UNION ALL
             SELECT user_id, CAST(ts_of(created_at) AS DATE), 1, 0, 0 FROM a.fact_deletions
             UNION ALL
             SELECT user_id, CAST(ts_of(seen_at) AS DATE), 0, delta, 0 FROM a.fact_revisits
             UNION ALL
             SELECT user_id, CAST(ts_of(seen_at) AS DATE), 0, 0, 1 FROM a.fact_deletions
           ) GROUP BY ALL""",
    ),
    View(
        "consolidation",
        "consolidations per user and day: messages in, segments out, tokens saved",
        """SELECT user_id, CAST(ts_of(performed_at) AS DATE) AS day, trigger_type,
                  count(*) AS consolidations, sum(messages_in) AS messages_in,
                  sum(segments_out) AS segments_out, sum(tokens_saved) AS tokens_saved
           FROM a.compactions WHERE status = 'done' GROUP BY ALL""",
    ),
    View(
        "search_latency",
        "context assembly latency (ms) per UTC day: count and percentiles",
        """SELECT CAST(ts_of(ts) AS DATE) AS day, count(*) AS contexts,
                  quantile_cont(latency_ms, 0.5) AS p50_ms,
                  quantile_cont(latency_ms, 0.95) AS p95_ms,
                  quantile_cont(latency_ms, 0.99) AS p99_ms, max(latency_ms) AS max_ms
           FROM a.context_events GROUP BY ALL""",
        per_user=False,
    ),
    View(
        "store_sizes",
        "bytes per store at each export (growth over time)",
        "SELECT ts_of(ts) AS measured, store, bytes FROM a.store_sizes",
        per_user=False,
    ),
    View(
        "task_runs",
        "finished scheduler runs (maintenance, backups, ...): type, status, duration",
        """SELECT task_type, status, ts_of(started_at) AS started, duration_s, failed,
                  result
           FROM a.task_runs""",
        per_user=False,
    ),
    View(
        "backups",
        "backup archives on disk at the last export",
        "SELECT backup_id, ts_of(created_at) AS created, size FROM a.backups",
        per_user=False,
    ),
    View(
        "exports",
        "the analytics exports themselves",
        "SELECT ts_of(ts) AS exported, duration_s, rows_added, rows_removed FROM a.exports",
        per_user=False,
    ),
)

VIEW_NAMES: Final = frozenset(v.name for v in VIEWS)


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """The macros and views, in this connection's own (in-memory) catalog."""
    with translate():
        for sql in _MACROS:
            con.execute(sql)
        for view in VIEWS:
            con.execute(f"CREATE OR REPLACE VIEW main.{view.name} AS {view.sql}")
