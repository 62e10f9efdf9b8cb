"""The memory page's HTML: plain functions over ``html.escape``, no template engine.

Every value that came from a store goes through ``_e`` (escaped for text and attributes);
nothing else is interpolated. The page has no script at all: forms post back and the
server answers with a redirect or the next page (``Content-Security-Policy`` forbids
scripts anyway), so it needs no build step and loads nothing from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import html
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aico.ai.memory import SearchHit
from aico.data.repositories import Fact, UserProfile
from aico_backend.conversations import Conversation, MessageView

__all__ = [
    "PageView",
    "confirm_page",
    "conversation_page",
    "done_page",
    "login_page",
    "memory_page",
    "users_page",
]


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _rank(rank: int | None) -> str:
    return "-" if rank is None else f"#{rank}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _doc(title: str, body: str, *, user_label: str | None = None) -> str:
    logout = (
        '<form method="post" action="/logout" class="logout">'
        f'<span class="who">{_e(user_label)}</span>'
        '<button type="submit" id="logout">Log out</button></form>'
        if user_label is not None
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/static/page.css"></head><body>'
        f'<header><h1><a href="/">aico</a> · {_e(title)}</h1>{logout}</header>'
        f"<main>{body}</main></body></html>\n"
    )


def _hidden_user(user_param: str | None) -> str:
    if user_param is None:
        return ""
    return f'<input type="hidden" name="user" value="{_e(user_param)}">'


def _q(user_param: str | None) -> str:
    """``?user=…`` for the admin's links, quoted for a URL and then for HTML."""
    return "" if user_param is None else _e(f"?user={urllib.parse.quote(user_param, safe='')}")


def login_page(error: str | None = None) -> str:
    notice = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    body = (
        '<section class="login"><h2>Log in</h2>'
        "<p>Paste the token <code>aico tokens create</code> printed for this device. It is "
        "kept in a cookie this page alone can send, and never shown again.</p>"
        f"{notice}"
        '<form method="post" action="/login">'
        '<label for="token">Token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required>'
        '<button type="submit" id="login">Log in</button></form></section>'
    )
    return _doc("log in", body)


@dataclass(frozen=True)
class PageView:
    """Everything the memory page shows for one user."""

    user: UserProfile
    facts: Sequence[Fact]
    conversations: Sequence[Conversation]
    query: str | None = None
    hits: Sequence[SearchHit] = ()
    notice: str | None = None
    user_param: str | None = None  # set when the admin looks at this user
    label: str = ""


def _search_section(view: PageView) -> str:
    hidden = _hidden_user(view.user_param)
    value = f' value="{_e(view.query)}"' if view.query else ""
    form = (
        '<form method="post" action="/page/search" class="search">'
        f'{hidden}<input id="q" name="q" type="search" placeholder="What did we talk about?"'
        f' required{value}><button type="submit" id="search">Search</button></form>'
    )
    results = ""
    if view.query is not None:
        if not view.hits:
            results = '<p class="empty" id="no-results">Nothing found.</p>'
        else:
            rows = "".join(
                "<tr>"
                f'<td class="score">{_score(h.score)}</td>'
                f'<td class="score">{_rank(h.bm25_rank)}</td>'
                f'<td class="score">{_rank(h.dense_rank)} {_score(h.dense_score)}</td>'
                f"<td>{_when(h.end_ts)}</td>"
                f'<td class="text">{_e(h.text)}</td></tr>'
                for h in view.hits
            )
            results = (
                '<table id="results"><thead><tr><th>score</th><th>BM25 rank</th>'
                "<th>dense rank, cosine</th>"
                f"<th>when</th><th>memory</th></tr></thead><tbody>{rows}</tbody></table>"
            )
    return f'<section id="search-section"><h2>Search</h2>{form}{results}</section>'


def _facts_section(view: PageView) -> str:
    hidden = _hidden_user(view.user_param)
    items = []
    for fact in view.facts:
        fid = _e(fact.fact_id)
        items.append(
            f'<li class="fact" id="fact-{fid}">'
            f'<form method="post" action="/page/facts/{fid}" class="edit">{hidden}'
            f'<textarea name="content" rows="2" aria-label="fact">{_e(fact.content)}</textarea>'
            f'<input name="category" value="{_e(fact.category)}" aria-label="category">'
            '<button type="submit" class="save">Save</button></form>'
            f'<form method="post" action="/page/facts/{fid}/delete" class="delete">{hidden}'
            '<button type="submit" class="danger">Delete</button></form>'
            f'<span class="meta">{_when(fact.created_at)} · '
            f"seen {_plural(fact.revisit_count, 'time')}</span>"
            "</li>"
        )
    listing = (
        f'<ul class="facts">{"".join(items)}</ul>'
        if items
        else '<p class="empty">No facts yet.</p>'
    )
    add = (
        f'<form method="post" action="/page/facts" class="add">{hidden}'
        '<input name="content" placeholder="Something the companion should remember" '
        'aria-label="new fact" required><input name="category" value="general" '
        'aria-label="category"><button type="submit" id="add-fact">Add</button></form>'
    )
    return f'<section id="facts"><h2>Memory album</h2>{listing}{add}</section>'


def _conversations_section(view: PageView) -> str:
    q = _q(view.user_param)
    rows = []
    for c in view.conversations:
        cid = _e(c.id)
        rows.append(
            f'<li class="conversation" id="conversation-{cid}">'
            f'<a href="/page/conversations/{cid}{q}">{_e(c.title or "(untitled)")}</a> '
            f'<span class="meta">{_when(c.updated_at)} · '
            f"{_plural(c.message_count, 'message')}</span> "
            f'<a class="danger forget" href="/page/forget/conversation/{cid}{q}">'
            "Forget this conversation</a></li>"
        )
    listing = (
        f'<ul class="conversations">{"".join(rows)}</ul>'
        if rows
        else '<p class="empty">No conversations yet.</p>'
    )
    return f'<section id="conversations"><h2>Recent conversations</h2>{listing}</section>'


def memory_page(view: PageView) -> str:
    notice = f'<p class="notice" role="status">{_e(view.notice)}</p>' if view.notice else ""
    who = _e(view.user.nickname or view.user.display_name)
    forget_label = "Forget me" if view.user_param is None else "Forget this user"
    body = (
        f'{notice}<p class="lead">What the companion remembers about {who}.</p>'
        f"{_search_section(view)}{_facts_section(view)}{_conversations_section(view)}"
        f'<section id="forget-me"><h2>{forget_label}</h2>'
        "<p>Deletes every message, memory, fact and piece of feedback, from every store.</p>"
        f'<a class="danger" id="forget-me-link" href="/page/forget/me{_q(view.user_param)}">'
        f"{forget_label}…</a></section>"
    )
    return _doc("memory", body, user_label=view.label)


def conversation_page(
    conversation: Conversation,
    messages: Iterable[MessageView],
    *,
    user_param: str | None,
    label: str,
) -> str:
    rows = "".join(
        f'<li class="message {_e(m.role)}"><span class="role">{_e(m.role)}</span> '
        f'<span class="meta">{_when(m.timestamp)}</span><p>{_e(m.content)}</p></li>'
        for m in messages
    )
    q = _q(user_param)
    body = (
        f"<h2>{_e(conversation.title or '(untitled)')}</h2>"
        f'<ol class="messages">{rows}</ol>'
        f'<p><a href="/{q}">Back</a> · <a class="danger" '
        f'href="/page/forget/conversation/{_e(conversation.id)}{q}">'
        "Forget this conversation</a></p>"
    )
    return _doc("conversation", body, user_label=label)


def confirm_page(*, what: str, action: str, user_param: str | None, label: str, detail: str) -> str:
    body = (
        f'<section class="confirm"><h2>Forget {_e(what)}?</h2><p>{_e(detail)}</p>'
        "<p>This cannot be undone.</p>"
        f'<form method="post" action="{_e(action)}">{_hidden_user(user_param)}'
        '<input type="hidden" name="confirm" value="yes">'
        '<button type="submit" class="danger" id="confirm">Yes, forget it</button> '
        f'<a href="/{_q(user_param)}" id="cancel">Cancel</a></form></section>'
    )
    return _doc("confirm", body, user_label=label)


def done_page(message: str) -> str:
    return _doc("forgotten", f'<p class="notice" role="status">{_e(message)}</p>')


def users_page(users: Sequence[UserProfile], label: str) -> str:
    rows = "".join(
        f'<li><a href="/{_q(u.user_id)}">{_e(u.display_name)}</a> '
        f'<span class="meta">{_e(u.user_id)}</span></li>'
        for u in users
    )
    body = (
        '<p class="lead">The admin token sees every user; pick one.</p>'
        f'<ul class="users">{rows or "<li>No users yet.</li>"}</ul>'
        '<p><a href="/page/analytics" id="analytics-link">Analytics report</a></p>'
    )
    return _doc("users", body, user_label=label)
