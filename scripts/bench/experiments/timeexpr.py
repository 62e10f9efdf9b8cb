"""Resolve relative time expressions in a question against the time it is asked.

A product-realistic temporal cue: "last Saturday", "two weeks ago", "in March", "past month"
mean a date window relative to *now*; sessions inside it get a boost. Returns None when the
question has no such expression ("how many days ago" asks for a number, it gives none).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
       "seven": 7, "eight": 8, "nine": 9, "ten": 10, "couple of": 2, "few": 3, "a couple of": 2,
       "a few": 3}  # fmt: skip
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]  # fmt: skip
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
AGO = re.compile(
    r"\b(\d+|a couple of|a few|couple of|few|an?|one|two|three|four|five|six|seven|eight|nine|ten)"
    r" (day|week|month|year)s? ago\b"
)
LAST_WD = re.compile(r"\b(?:last|this past|on) (" + "|".join(WEEKDAYS) + r")\b")
IN_MONTH = re.compile(r"\b(?:in|during|of) (" + "|".join(MONTHS) + r")\b")
SPANS = {
    "yesterday": (2, 0),
    "last week": (14, 0),
    "past week": (8, 0),
    "this week": (8, 0),
    "last weekend": (10, 0),
    "past month": (35, 0),
    "last month": (62, 0),
    "this month": (31, 0),
    "past two months": (65, 0),
    "last year": (730, 0),
}


def window(question: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) the question points at, or None."""
    q = question.lower()
    m = AGO.search(q)
    if m:
        n = int(m.group(1)) if m.group(1).isdigit() else NUM[m.group(1)]
        days = n * UNIT_DAYS[m.group(2)]
        slack = max(2.0, 0.35 * days)
        centre = now - timedelta(days=days)
        return centre - timedelta(days=slack), centre + timedelta(days=slack)
    m = LAST_WD.search(q)
    if m:
        wd = WEEKDAYS.index(m.group(1))
        back = (now.weekday() - wd) % 7 or 7
        day = (now - timedelta(days=back)).replace(hour=0, minute=0)
        return day - timedelta(days=1), day + timedelta(days=2)
    m = IN_MONTH.search(q)
    if m:
        month = MONTHS.index(m.group(1)) + 1
        year = now.year if month <= now.month else now.year - 1
        start = datetime(year, month, 1)
        end = datetime(year + (month == 12), month % 12 + 1, 1)
        return start, end
    for phrase, (back, _) in SPANS.items():
        if phrase in q:
            return now - timedelta(days=back), now + timedelta(days=1)
    return None
