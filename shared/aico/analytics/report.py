"""The self-contained HTML report: matplotlib charts as inline SVG, no script, no CDN.

It reads the documented views in one session of the copy and writes one file,
``analytics-report.html`` (mode 0600), into the directory asked for. What it holds:
counts, times, token and cost totals, sizes and, with ``--user``, that user's id; never
a message, segment or fact text, nor any segment or fact id (the top retrieved items are
shown by rank and category).
"""

from __future__ import annotations

import html
import io
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aico.errors import InvalidInput

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from aico.analytics.core import Analytics, Rows

__all__ = ["REPORT_CSS", "REPORT_NAME", "render_report", "write_report"]

REPORT_NAME: Final = "analytics-report.html"

_VIEWS: Final = (
    "activity_daily",
    "sessions_weekly",
    "conversation_lengths",
    "hour_heatmap",
    "usage_by_model",
    "usage_daily",
    "retrieved_segments",
    "retrieved_facts",
    "contexts_daily",
    "feedback_daily",
    "facts_daily",
    "consolidation",
    "search_latency",
    "store_sizes",
    "task_runs",
    "backups",
    "exports",
)

REPORT_CSS: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2430;
background:#fafbfc}h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #d5dae1;
padding-bottom:.3rem}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
figure{margin:0;background:#fff;border:1px solid #e1e5ea;border-radius:6px;padding:.5rem}
figcaption{font-size:.85rem;color:#5b6675}svg{width:100%;height:auto}
table{border-collapse:collapse;background:#fff;margin:.5rem 0}td,th{border:1px solid #e1e5ea;
padding:.25rem .6rem;text-align:right}th{background:#f0f2f5}td:first-child,th:first-child
{text-align:left}.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{background:#fff;
border:1px solid #e1e5ea;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.kpi b{display:block;font-size:1.3rem}.empty{color:#8a94a3;font-style:italic}
"""


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "figure.figsize": (5.4, 3.0),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 9,
        }
    )
    return plt


def _svg(plt: Any, draw: Callable[[Axes], None]) -> str:
    fig, ax = plt.subplots()
    try:
        draw(ax)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    return _csp_safe(buf.getvalue())


_STYLE_ATTR: Final = re.compile(r'style="([^"]*)"')
_SVG_STYLE: Final = re.compile(r"<style[^>]*>.*?</style>", re.S)
_PRESENTATION: Final = frozenset(
    {
        "fill",
        "fill-opacity",
        "stroke",
        "stroke-width",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-opacity",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-miterlimit",
        "opacity",
        "font-size",
        "font-family",
        "font-weight",
        "font-style",
        "text-anchor",
    }
)


def _attrs(match: re.Match[str]) -> str:
    out = []
    for part in match.group(1).split(";"):
        name, _, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if name == "font":  # "9px 'DejaVu Sans'": size and family
            size, _, family = value.partition(" ")
            out.append(f'font-size="{size}"')
            name, value = "font-family", family
        if name in _PRESENTATION and value:
            value = value.replace("'", "").replace('"', "")
            if name == "font-family":
                value += ", sans-serif"
            out.append(f'{name}="{html.escape(value)}"')
    return " ".join(out)


def _csp_safe(svg: str) -> str:
    """The SVG with its inline styles as presentation attributes, and no ``<style>``.

    The backend serves pages under ``style-src 'self'``, which blocks every ``style``
    attribute and element; SVG's presentation attributes are not styles, so the same
    chart draws alike in the file and on the page.
    """
    svg = svg[svg.index("<svg") :]
    svg = _SVG_STYLE.sub("", svg)
    return _STYLE_ATTR.sub(_attrs, svg)


def _figure(title: str, svg: str | None) -> str:
    body = svg if svg is not None else '<p class="empty">no data yet</p>'
    return f"<figure>{body}<figcaption>{html.escape(title)}</figcaption></figure>"


def _table(rows: Rows, columns: Sequence[str], limit: int = 15) -> str:
    if not rows.rows:
        return '<p class="empty">none</p>'
    index = [rows.columns.index(c) for c in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows.rows[:limit]:
        cells = "".join(f"<td>{html.escape(_fmt(r[i]))}</td>" for i in index)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def _series(rows: Rows, x: str, y: str, by: str | None = None) -> dict[Any, dict[Any, float]]:
    """{group: {x: sum(y)}}."""
    ix, iy = rows.columns.index(x), rows.columns.index(y)
    ib = rows.columns.index(by) if by else None
    out: dict[Any, dict[Any, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows.rows:
        out[r[ib] if ib is not None else ""][r[ix]] += float(r[iy] or 0)
    return out


def _lines(series: dict[Any, dict[Any, float]], ylabel: str) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        for name, points in sorted(series.items(), key=lambda kv: str(kv[0])):
            xs = sorted(points)
            ax.plot(
                xs,
                [points[x] for x in xs],
                label=str(name) or None,
                linewidth=1.4,
                marker="o",
                markersize=2.5,
            )
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(fontsize=7, frameon=False)
        xs_all = {x for points in series.values() for x in points}
        if xs_all and all(isinstance(x, date) for x in xs_all):
            import matplotlib.dates as mdates

            locator = mdates.AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_locator(locator)
            concise = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_formatter(concise)
            if len(xs_all) == 1:  # one day: matplotlib would span years around it
                (only,) = xs_all
                ax.set_xlim(only - timedelta(days=1), only + timedelta(days=1))
        else:
            ax.tick_params(axis="x", labelrotation=30)

    return draw


def _bars(labels: Sequence[str], values: Sequence[float], ylabel: str) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        ax.bar(range(len(values)), values, color="#4c78a8")
        ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)

    return draw


def _grouped(rows: Rows, keys: Sequence[str], values: Sequence[str]) -> Rows:
    """Sums of ``values`` per ``keys`` (across users), ordered by the keys."""
    from aico.analytics.core import Rows

    ik = [rows.columns.index(k) for k in keys]
    iv = [rows.columns.index(v) for v in values]
    sums: dict[tuple[Any, ...], list[float]] = {}
    for r in rows.rows:
        acc = sums.setdefault(tuple(r[i] for i in ik), [0.0] * len(iv))
        for j, i in enumerate(iv):
            acc[j] += float(r[i] or 0)
    out = [
        (
            *k,
            *(
                int(x) if x.is_integer() and v != "cost" else x
                for x, v in zip(acc, values, strict=True)
            ),
        )
        for k, acc in sorted(sums.items(), key=lambda kv: tuple(map(str, kv[0])))
    ]
    return Rows((*keys, *values), out)


def _total(rows: Rows, column: str) -> float:
    i = rows.columns.index(column)
    return float(sum(float(r[i] or 0) for r in rows.rows))


def _build(data: dict[str, Rows], user_id: str | None, stylesheet: str | None) -> str:
    plt = _plt()
    figs: dict[str, list[str]] = defaultdict(list)

    def add(section: str, title: str, ok: bool, draw: Callable[[Axes], None]) -> None:
        figs[section].append(_figure(title, _svg(plt, draw) if ok else None))

    act = data["activity_daily"]
    add(
        "Activity",
        "Messages per day, by role (UTC)",
        bool(act.rows),
        _lines(_series(act, "day", "messages", "role"), "messages"),
    )
    sw = data["sessions_weekly"]
    weeks = _series(sw, "week", "sessions")[""] if sw.rows else {}
    add(
        "Activity",
        "Sessions per ISO week",
        bool(weeks),
        _bars([str(w) for w in sorted(weeks)], [weeks[w] for w in sorted(weeks)], "sessions"),
    )
    lengths = [
        int(r[data["conversation_lengths"].columns.index("messages")])
        for r in data["conversation_lengths"].rows
    ]

    def hist(ax: Axes) -> None:
        ax.hist(lengths, bins=min(30, max(5, len(set(lengths)))), color="#4c78a8")
        ax.set_xlabel("messages per conversation")
        ax.set_ylabel("conversations")

    add("Activity", "Conversation length distribution", bool(lengths), hist)
    heat = data["hour_heatmap"]

    def heatmap(ax: Axes) -> None:
        grid = [[0.0] * 24 for _ in range(7)]
        iw, ih, im = (heat.columns.index(c) for c in ("weekday", "hour", "messages"))
        for r in heat.rows:
            grid[int(r[iw]) - 1][int(r[ih])] += float(r[im])
        # A mesh of vector cells, not imshow's embedded PNG (a data: URI the page's CSP
        # would block).
        image = ax.pcolormesh(grid, cmap="Blues")
        ax.invert_yaxis()
        ax.set_yticks(
            [i + 0.5 for i in range(7)], ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        )
        ax.set_xlabel("hour (UTC)")
        bar = plt.colorbar(image, ax=ax, fraction=0.04)
        if bar.solids is not None:
            bar.solids.set_rasterized(False)  # a PNG inside the SVG otherwise

    add("Activity", "Time-of-day heatmap (messages)", bool(heat.rows), heatmap)

    usage = data["usage_by_model"]
    by_model = _series(usage, "model", "tokens", "provider")
    labels = [f"{p}/{m}" for p, ms in sorted(by_model.items()) for m in sorted(ms)]
    values = [by_model[p][m] for p, ms in sorted(by_model.items()) for m in sorted(ms)]
    add(
        "Cost and usage", "Tokens per provider/model", bool(values), _bars(labels, values, "tokens")
    )
    daily = data["usage_daily"]
    add(
        "Cost and usage",
        "Cost per day, by provider",
        bool(daily.rows),
        _lines(_series(daily, "day", "cost", "provider"), "cost"),
    )

    segs = data["retrieved_segments"]
    ret = sorted((int(r[segs.columns.index("retrievals")]) for r in segs.rows), reverse=True)
    add(
        "Memory use",
        "Segment retrievals into contexts (top 20, by rank)",
        bool(ret),
        _bars([f"#{i + 1}" for i in range(len(ret[:20]))], ret[:20], "retrievals"),
    )
    facts = data["retrieved_facts"]
    fact_by_cat = _series(facts, "category", "retrievals")[""] if facts.rows else {}
    add(
        "Memory use",
        "Fact retrievals into contexts, by category",
        bool(fact_by_cat),
        _bars([str(k) for k in fact_by_cat], list(fact_by_cat.values()), "retrievals"),
    )
    fb = data["feedback_daily"]
    add(
        "Memory use",
        "Feedback events per day, by type",
        bool(fb.rows),
        _lines(_series(fb, "day", "events", "event_type"), "events"),
    )
    fd = data["facts_daily"]
    fd_series = {k: _series(fd, "day", k)[""] for k in ("added", "revisited", "deleted")}
    add(
        "Memory use",
        "Facts added / revisited / deleted per day",
        bool(fd.rows),
        _lines(fd_series if fd.rows else {}, "facts"),
    )
    cons = data["consolidation"]
    add(
        "Memory use",
        "Consolidation: tokens saved per day",
        bool(cons.rows),
        _lines(_series(cons, "day", "tokens_saved"), "tokens saved"),
    )

    sizes = data["store_sizes"]
    add(
        "System",
        "Store sizes at each export (bytes)",
        bool(sizes.rows),
        _lines(_series(sizes, "measured", "bytes", "store"), "bytes"),
    )
    lat = data["search_latency"]
    lat_series = {k: _series(lat, "day", k)[""] for k in ("p50_ms", "p95_ms")}
    add(
        "System",
        "Context assembly latency per day (ms)",
        bool(lat.rows),
        _lines(lat_series if lat.rows else {}, "ms"),
    )

    kpis = [
        ("messages", f"{_total(act, 'messages'):,.0f}"),
        ("tokens", f"{_total(act, 'tokens'):,.0f}"),
        ("cost", f"{_total(usage, 'cost'):,.4f}"),
        ("conversations", f"{len(lengths):,}"),
        ("contexts", f"{_total(data['contexts_daily'], 'contexts'):,.0f}"),
        ("feedback events", f"{_total(fb, 'events'):,.0f}"),
    ]
    scope = f"user {html.escape(user_id)}" if user_id else "all users"
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        "<title>aico analytics</title>",
        f"<style>{REPORT_CSS}</style>"
        if stylesheet is None
        else f"<link rel='stylesheet' href='{html.escape(stylesheet)}'>",
        "</head><body>",
        f"<h1>aico analytics — {scope}</h1><p>Made {made} from the analytics copy. "
        "Counts, times and totals only; no message or memory text.</p>",
        "<div class='kpis'>"
        + "".join(f"<div class='kpi'>{html.escape(k)}<b>{v}</b></div>" for k, v in kpis)
        + "</div>",
    ]
    for section in ("Activity", "Cost and usage", "Memory use", "System"):
        parts.append(f"<h2>{section}</h2><div class='grid'>{''.join(figs[section])}</div>")
        if section == "Cost and usage":
            totals = _grouped(usage, ("provider", "model"), ("conversations", "tokens", "cost"))
            parts.append(_table(totals, totals.columns))
    parts.append("<h3>Maintenance and backup runs</h3>")
    parts.append(_table(data["task_runs"], ("task_type", "status", "started", "duration_s")))
    parts.append("<h3>Backups on disk</h3>")
    parts.append(_table(data["backups"], ("created", "size")))
    parts.append("<h3>Exports</h3>")
    parts.append(_table(data["exports"], ("exported", "duration_s", "rows_added", "rows_removed")))
    parts.append("</body></html>")
    return "".join(parts)


def render_report(
    analytics: Analytics, *, user_id: str | None = None, stylesheet: str | None = None
) -> str:
    """The report's HTML: every view it shows, read in one session, drawn as inline SVG.

    ``stylesheet`` links that URL instead of the inline ``<style>`` (the backend's page
    runs under a CSP that allows only its own stylesheets); the charts need neither.
    """
    data = analytics.views(_VIEWS, user_id=user_id)
    return _build(data, user_id, stylesheet)


def write_report(analytics: Analytics, out_dir: Path, *, user_id: str | None = None) -> Path:
    """Write the self-contained report file into ``out_dir``; returns its path."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput("the report's --out must be a directory")
    page = render_report(analytics, user_id=user_id)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = out_dir / REPORT_NAME
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, path)
    return path
