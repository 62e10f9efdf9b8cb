"""Relative time in a query ("yesterday", "last weekend", "two weeks ago", "in March").

A memory query often says *when*: "what did I cook last weekend?". The words "last weekend"
match nothing in the stored text, but the segments' timestamps do. ``find_window`` resolves
the first time expression of a query against the query's time into a ``TimeWindow``, which
search uses as a soft boost (never a filter: a wrong or loose reading must not hide the
answer).

The parser is ``dateparser`` (maintained; it resolved "last Tuesday" correctly where
ctparse did not). It gives a date and a period (day, week, month, year); the window is:

- a phrase with "ago" ("two weeks ago", "a month ago"): that period's length centred on the
  date, because "two weeks ago" means about then, not a calendar week;
- otherwise the calendar period holding the date ("last week" is Monday to Monday, "in
  March" the whole month, "yesterday" the day, "last night" that day);
- "weekend" (which dateparser does not read): Saturday 00:00 to Monday 00:00 of the last
  weekend before the query's day, or of the current one when the query is made on it.

Days are the days of ``now``'s time zone (a float ``now`` is read in the machine's local
zone: the companion's user is where the machine is). A cheap regular expression runs first,
so a query without a time word never reaches dateparser (its first call loads language data
for ~0.4 s, ``warm_up`` does that in the background; later calls take 1-10 ms). Without
dateparser installed nothing is resolved (``available()`` is False) and search is unchanged.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

__all__ = ["TimeWindow", "available", "find_window", "time_boost", "warm_up"]

_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
# Words that make a time expression; a query with none of them is never parsed.
_GATE = re.compile(
    rf"\b(yesterday|today|tonight|ago|weekends?|weeks?|months?|years?|mornings?|evenings?"
    rf"|night|{_WEEKDAYS}|{_MONTHS}|(?:19|20)\d\d)\b",
    re.IGNORECASE,
)
_WEEKEND = re.compile(r"\b(?:(last|past|previous)\s+|(this)\s+|the\s+)?weekend\b", re.IGNORECASE)
_CAP_MONTH = re.compile(rf"\b(?:{_MONTHS})\b", re.IGNORECASE)
_PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 30.4375, "year": 365.25}

_lock = threading.Lock()
_parser: Any = None
_missing = False


@dataclass(frozen=True)
class TimeWindow:
    """``[start, end)`` in unix seconds, the time a query's expression points at.

    ``period`` is ``day``, ``week``, ``month``, ``year`` or ``weekend``. The phrase itself
    is not kept: it is the user's words.
    """

    start: float
    end: float
    period: str

    @property
    def length(self) -> float:
        return self.end - self.start


def available() -> bool:
    """True when dateparser can be imported (it is what reads the expressions)."""
    return _load() is not None


def warm_up() -> None:
    """Load dateparser and its English data now (the first parse takes ~0.4 s)."""
    parser = _load()
    if parser is not None:
        parser[1].get_date_data("yesterday")


def find_window(query: str, now: datetime | float) -> TimeWindow | None:
    """The window of the first time expression in ``query``, or None.

    ``now`` is the query's time: an aware datetime, or unix seconds read in local time.
    """
    if not isinstance(query, str) or not _GATE.search(query):
        return None
    base = _as_datetime(now)
    weekend = _WEEKEND.search(query)
    if weekend is not None:
        return _weekend(base, current=weekend.group(2) is not None)
    parser = _load()
    if parser is None:
        return None
    search_dates, ddp = parser
    naive = base.replace(tzinfo=None)
    try:
        found = search_dates(
            query,
            languages=["en"],
            settings={"RELATIVE_BASE": naive, "PREFER_DATES_FROM": "past"},
        )
    except Exception:  # a parser bug must never fail a search
        return None
    for phrase, moment in found or ():
        if not _GATE.search(phrase) or _is_modal_may(phrase):
            continue
        try:  # the period only: the date (relative to ``now``) is search_dates'
            data = ddp.get_date_data(phrase)
        except Exception:
            continue
        if data is None or data.date_obj is None:
            continue
        return _window(phrase, moment, data.period or "day", base.tzinfo)
    return None


def time_boost(window: TimeWindow, start_ts: float, end_ts: float) -> float:
    """1.0 for a segment whose time range meets the window, decaying outside it.

    The decay's scale is a quarter of the window (at least an hour): a day's window gives
    a segment six hours outside it e^-1, one two days away almost nothing.
    """
    if end_ts >= window.start and start_ts < window.end:
        return 1.0
    distance = window.start - end_ts if end_ts < window.start else start_ts - window.end
    scale = max(window.length / 4.0, 3600.0)
    return math.exp(-distance / scale)


def _load() -> tuple[Any, Any] | None:
    global _parser, _missing
    with _lock:
        if _parser is None and not _missing:
            try:
                from dateparser.date import DateDataParser
                from dateparser.search import search_dates
            except ImportError:
                _missing = True
                return None
            ddp = DateDataParser(
                languages=["en"],
                settings={"PREFER_DATES_FROM": "past", "RETURN_TIME_AS_PERIOD": True},
            )
            _parser = (search_dates, ddp)
        return None if _missing else _parser


def _as_datetime(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        return now if now.tzinfo is not None else now.astimezone()
    return datetime.fromtimestamp(float(now)).astimezone()


def _is_modal_may(phrase: str) -> bool:
    """ "may" is a month only when written as one ("in May", "May 3"), not "may I"."""
    words = _CAP_MONTH.findall(phrase)
    return bool(words) and all(w == "may" for w in words) and len(phrase.split()) <= 2


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _weekend(base: datetime, *, current: bool) -> TimeWindow:
    day = _midnight(base)
    if base.weekday() >= 5 and current:
        saturday = day - timedelta(days=base.weekday() - 5)
    else:
        back = (base.weekday() - 5) % 7 or 7
        saturday = day - timedelta(days=back)
    return _between(saturday, saturday + timedelta(days=2), "weekend")


def _window(phrase: str, moment: datetime, period: str, zone: tzinfo | None) -> TimeWindow:
    moment = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
    if period not in _PERIOD_DAYS:  # time, part_of_day: the day it is on
        period = "day"
    if re.search(r"\bago\b", phrase, re.IGNORECASE) and period != "day":
        half = timedelta(days=_PERIOD_DAYS[period] / 2)
        return _between(moment - half, moment + half, period)
    day = _midnight(moment)
    if period == "day":
        return _between(day, day + timedelta(days=1), period)
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return _between(monday, monday + timedelta(days=7), period)
    if period == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return _between(first, following, period)
    first = day.replace(month=1, day=1)
    return _between(first, first.replace(year=first.year + 1), period)


def _between(start: datetime, end: datetime, period: str) -> TimeWindow:
    return TimeWindow(start.timestamp(), end.timestamp(), period)
