"""The report as one self-contained HTML page with inline SVG charts, for a browser and A4 paper."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from mailroom.reports import DepartmentFigures, Group, Report, Times, whole_days

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

# Deterministic SVG with its words as text: smaller, selectable, the same bytes for the same report
CHART_STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "mailroom", "svg.fonttype": "none", "font.size": 9.0,
    "font.family": "sans-serif", "axes.spines.top": False, "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "text.parse_math": False}  # a department named "Dana $a^$ b" is text, not mathematics
CHART_WIDTH = 7.0  # inches: the text width of A4 with its margins
MEDIAN, P90, TARGET = "#2b6cb0", "#90cdf4", "#c53030"
RATING_COLOURS = ("#c53030", "#dd6b20", "#d69e2e", "#68a357", "#2f855a")  # 1 to 5
DASH = "\N{EN DASH}"
SVG_IDS = re.compile(r'(?<=id=")|(?<=url\(#)|(?<=href="#)')


def html(report: Report) -> str:
    """The whole page: summary, volume, response times, SLA, satisfaction, transfers, topics,
    fairness."""
    departments = list(report.departments)
    return _template().render(
        report=report, period=_period(report), departments=departments,
        charts=_charts(report), transfers=_transfers(report), groups=_groups(report),
        low_ratings=[(d, low) for d in departments for low in d.low_ratings])


def _charts(report: Report) -> dict[str, Markup]:
    import matplotlib  # a second to import: only when a report is drawn

    departments = report.departments
    with matplotlib.rc_context(CHART_STYLE):
        return {
            "volume": _chart("volume", departments, _volume),
            "first-response": _chart("first-response", departments,
                                     _times(lambda d: d.first_response)),
            "resolution": _chart("resolution", departments, _times(lambda d: d.resolution)),
            "sla": _chart("sla", departments, _sla),
            "satisfaction": _chart("satisfaction", departments, _satisfaction),
        }


Draw = Callable[["Axes", Sequence[DepartmentFigures]], bool]


def _chart(name: str, departments: Sequence[DepartmentFigures], draw: Draw) -> Markup:
    """One chart as inline SVG; "no data" in its place when the departments have none."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(CHART_WIDTH, 1.0 + 0.38 * max(len(departments), 1)),
                    layout="constrained")
    axes = figure.add_subplot()
    if not departments or not draw(axes, departments):
        axes.clear()
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=14, color="#718096",
                  transform=axes.transAxes)
    return _svg(figure, name)


def _svg(figure: Figure, name: str) -> Markup:
    """The figure's SVG without its XML prolog, its ids prefixed so that charts do not clash."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return Markup(SVG_IDS.sub(f"{name}-", text[text.index("<svg"):]))


def _labels(axes: Axes, departments: Sequence[DepartmentFigures]) -> list[int]:
    """Departments top to bottom on the y axis, in config order."""
    rows = list(range(len(departments)))
    axes.set_yticks(rows, [d.name for d in departments])
    axes.invert_yaxis()
    return rows


def _legend(axes: Axes, title: str | None = None) -> None:
    """The legend in one row above the chart, where it never covers a bar."""
    axes.legend(title=title, loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8,
                title_fontsize=8, frameon=False, ncols=5, alignment="left")


def _counting(axes: Axes) -> None:
    """Whole numbers on the axis of a count: no 0.25 of a request."""
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _unmeasured(axes: Axes, rows: list[int], empty: list[bool]) -> None:
    """A grey "none" where a department has nothing to show, so that no row looks forgotten."""
    for row, nothing in zip(rows, empty, strict=True):
        if nothing:
            axes.annotate("none", (0, row), xytext=(4, 0), textcoords="offset points",
                          va="center", color="#718096", fontsize=8)


def _volume(axes: Axes, departments: Sequence[DepartmentFigures]) -> bool:
    rows = _labels(axes, departments)
    bars = axes.barh(rows, [d.requests for d in departments], color=MEDIAN, height=0.6)
    axes.bar_label(bars, padding=3)
    _counting(axes)
    axes.set_xlabel("requests")
    return any(d.requests for d in departments)


def _times(measure: Callable[[DepartmentFigures], Times]) -> Draw:
    def draw(axes: Axes, departments: Sequence[DepartmentFigures]) -> bool:
        times = [measure(d) for d in departments]
        rows = _labels(axes, departments)
        axes.barh([r - 0.18 for r in rows], [t.median_h or 0 for t in times], height=0.36,
                  color=MEDIAN, label="median")
        axes.barh([r + 0.18 for r in rows], [t.p90_h or 0 for t in times], height=0.36,
                  color=P90, label="90th percentile")
        targets = [(r, t.target_h) for r, t in zip(rows, times, strict=True) if t.target_h]
        if targets:
            axes.scatter([t for _, t in targets], [r for r, _ in targets], marker="|", s=600,
                         linewidths=2.5, color=TARGET, label="target", zorder=3)
        _unmeasured(axes, rows, [not t.count for t in times])
        axes.set_xlabel("working hours")
        _legend(axes)
        return any(t.count for t in times)
    return draw


def _sla(axes: Axes, departments: Sequence[DepartmentFigures]) -> bool:
    rows = _labels(axes, departments)
    shares = [d.sla_met_pct for d in departments]
    bars = axes.barh(rows, [s or 0 for s in shares], color=MEDIAN, height=0.6)
    axes.bar_label(bars, labels=["" if s is None else _percent(s) for s in shares], padding=3)
    _unmeasured(axes, rows, [s is None for s in shares])
    axes.set_xlim(0, 108)
    axes.set_xlabel("requests within their due times (%)")
    return any(s is not None for s in shares)


def _satisfaction(axes: Axes, departments: Sequence[DepartmentFigures]) -> bool:
    rows = _labels(axes, departments)
    left = [0] * len(departments)
    for rating, colour in zip(range(1, 6), RATING_COLOURS, strict=True):
        counts = [d.ratings.get(rating, 0) for d in departments]
        axes.barh(rows, counts, left=left, color=colour, height=0.6, label=f"{rating}")
        left = [a + b for a, b in zip(left, counts, strict=True)]
    _unmeasured(axes, rows, [not total for total in left])
    _counting(axes)
    axes.set_xlabel("ratings")
    _legend(axes, "rating")
    return any(left)


def _period(report: Report) -> str:
    """The period in the report's zone: whole days as dates, anything else as times."""
    days = whole_days(report)
    if days is None:
        zone = ZoneInfo(report.zone)
        since, until = report.since.astimezone(zone), report.until.astimezone(zone)
        return f"{since:%Y-%m-%d %H:%M} {DASH} {until:%Y-%m-%d %H:%M}"
    first, last = days
    return _date(first) if first == last else f"{_date(first)} {DASH} {_date(last)}"


def _date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _transfers(report: Report) -> tuple[list[str], list[tuple[str, list[tuple[int, str]]]]]:
    """The transfers matrix: department names, and per sending department its cells with their
    heat colour (stronger for more)."""
    names = {d.key: d.name for d in report.departments}
    keys = list(names) + sorted({k for pair in report.transfers for k in pair} - set(names))
    most = max(report.transfers.values(), default=0)
    rows = [(names.get(source, source),
             [_cell(report.transfers.get((source, target), 0), most) for target in keys])
            for source in keys]
    return [names.get(k, k) for k in keys], rows


def _cell(count: int, most: int) -> tuple[int, str]:
    if not count:
        return 0, ""
    strength = 0.15 + 0.75 * count / most
    ink = "#ffffff" if strength > 0.55 else "#1a202c"
    return count, f"background-color: rgba(197, 48, 48, {strength:.2f}); color: {ink}"


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} h"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _average(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _categories(figures: DepartmentFigures) -> str:
    return ", ".join(f"{name or 'none'} {count}" for name, count in figures.categories.items())


def _template() -> jinja2.Template:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(hours=_hours, percent=_percent, average=_average,
                               categories=_categories)
    return environment.from_string(PAGE)


def _groups(report: Report) -> tuple[tuple[str, tuple[Group, ...]], ...]:
    return (("By the requester's department or domain", report.by_requester),
            ("By priority", report.by_priority))


STYLE = """
@page { size: A4; margin: 16mm 14mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1a202c; background: #f7fafc; margin: 0; }
main { max-width: 960px; margin: 0 auto; padding: 24px; }
header { border-bottom: 3px solid #2b6cb0; margin-bottom: 20px; padding-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 10px; color: #2b6cb0; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.period { color: #4a5568; margin: 0; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 12px 14px; }
.card .value { display: block; font-size: 26px; font-weight: 600; }
.card .label { color: #4a5568; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
section, figure, table, .card { break-inside: avoid; page-break-inside: avoid; }
figure.chart { margin: 10px 0 14px; background: #fff; border: 1px solid #e2e8f0;
               border-radius: 8px; padding: 8px; }
figure.chart svg { display: block; width: 100%; height: auto; }
figcaption { color: #4a5568; font-size: 12px; padding: 4px 6px 0; }
table { width: 100%; border-collapse: collapse; background: #fff; margin: 6px 0 12px;
        font-size: 13px; }
th, td { border: 1px solid #e2e8f0; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #edf2f7; font-weight: 600; }
table.narrow { width: auto; min-width: 50%; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.matrix td.n { text-align: center; }
.none { color: #718096; font-style: italic; }
blockquote { margin: 0; }
@media print {
  body { background: #fff; font-size: 11pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .card, figure.chart { border-color: #cbd5e0; }
}
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Service report {{ period }}</title>
<style>""" + STYLE + """</style>
</head>
<body>
<main>
<header>
<h1>Service report</h1>
<p class="period">{{ period }} · times in {{ report.zone }}</p>
</header>

<section id="summary">
<h2>Summary</h2>
<div class="cards">
<div class="card"><span class="value">{{ report.total.requests }}</span>
<span class="label">requests</span></div>
<div class="card"><span class="value">{{ report.total.sla_met_pct | percent }}</span>
<span class="label">SLA met</span></div>
<div class="card"><span class="value">{{ report.total.first_response.median_h | hours }}</span>
<span class="label">median first response</span></div>
<div class="card"><span class="value">{{ report.total.csat_avg | average }}</span>
<span class="label">satisfaction (1&ndash;5)</span></div>
</div>
</section>

<section id="volume">
<h2>Volume</h2>
<figure class="chart" id="chart-volume">{{ charts["volume"] }}
<figcaption>Requests created in the period, by department</figcaption></figure>
<table>
<thead><tr><th>Department</th><th class="n">Requests</th><th class="n">Still open</th>
<th>Categories</th></tr></thead>
<tbody>
{% for d in departments %}
<tr><td>{{ d.name }}</td><td class="n">{{ d.requests }}</td><td class="n">{{ d.still_open }}</td>
<td>{{ d | categories }}</td></tr>
{% endfor %}
<tr><th>All</th><th class="n">{{ report.total.requests }}</th>
<th class="n">{{ report.total.still_open }}</th><th>{{ report.total | categories }}</th></tr>
</tbody>
</table>
</section>

<section id="times">
<h2>Response and resolution times</h2>
<figure class="chart" id="chart-first-response">{{ charts["first-response"] }}
<figcaption>First response in working hours: median and 90th percentile against the target
</figcaption></figure>
<figure class="chart" id="chart-resolution">{{ charts["resolution"] }}
<figcaption>Resolution in working hours: median and 90th percentile against the target
</figcaption></figure>
<table>
<thead>
<tr><th rowspan="2">Department</th><th colspan="4">First response</th>
<th colspan="4">Resolution</th></tr>
<tr>{% for _ in range(2) %}<th class="n">Median</th><th class="n">p90</th><th class="n">Target</th>
<th class="n">Met</th>{% endfor %}</tr>
</thead>
<tbody>
{% for d in departments + [report.total] %}
<tr><td>{{ d.name if d.key else "All" }}</td>
{% for t in (d.first_response, d.resolution) %}
<td class="n">{{ t.median_h | hours }}</td><td class="n">{{ t.p90_h | hours }}</td>
<td class="n">{{ t.target_h | hours }}</td><td class="n">{{ t.met_pct | percent }}</td>
{% endfor %}
</tr>
{% endfor %}
</tbody>
</table>
</section>

<section id="sla">
<h2>SLA compliance</h2>
<figure class="chart" id="chart-sla">{{ charts["sla"] }}
<figcaption>Decided requests that met both their response and resolution due times
</figcaption></figure>
<table class="narrow">
<thead><tr><th>Department</th><th class="n">SLA met</th></tr></thead>
<tbody>
{% for d in departments %}
<tr><td>{{ d.name }}</td><td class="n">{{ d.sla_met_pct | percent }}</td></tr>
{% endfor %}
<tr><th>All</th><th class="n">{{ report.total.sla_met_pct | percent }}</th></tr>
</tbody>
</table>
</section>

<section id="satisfaction">
<h2>Satisfaction</h2>
<figure class="chart" id="chart-satisfaction">{{ charts["satisfaction"] }}
<figcaption>Ratings from 1 (poor) to 5 (excellent), by department</figcaption></figure>
<table>
<thead><tr><th>Department</th><th class="n">Average</th>
{% for rating in range(1, 6) %}<th class="n">{{ rating }}</th>{% endfor %}</tr></thead>
<tbody>
{% for d in departments + [report.total] %}
<tr><td>{{ d.name if d.key else "All" }}</td><td class="n">{{ d.csat_avg | average }}</td>
{% for rating in range(1, 6) %}<td class="n">{{ d.ratings.get(rating, 0) }}</td>{% endfor %}
</tr>
{% endfor %}
</tbody>
</table>
<h3>Comments with low ratings</h3>
{% if low_ratings %}
<table>
<thead><tr><th>Request</th><th>Department</th><th class="n">Rating</th><th>Comment</th></tr>
</thead>
<tbody>
{% for d, low in low_ratings %}
<tr><td>{{ low.reference }}</td><td>{{ d.name }}</td><td class="n">{{ low.rating }}</td>
<td>{{ low.comment or "—" }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="none">No rating of 1 or 2 in this period.</p>
{% endif %}
</section>

<section id="transfers">
<h2>Transfers</h2>
{% set names, rows = transfers %}
{% if report.transfers %}
<table class="matrix">
<thead><tr><th>From \\ to</th>{% for name in names %}<th class="n">{{ name }}</th>{% endfor %}
</tr></thead>
<tbody>
{% for source, cells in rows %}
<tr><th>{{ source }}</th>
{% for count, style in cells %}<td class="n"{% if style %} style="{{ style }}"{% endif %}>
{{- count or "" }}</td>{% endfor %}
</tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="none">No request was transferred in this period.</p>
{% endif %}
</section>

<section id="topics">
<h2>Recurring topics</h2>
{% for d in departments %}
<h3>{{ d.name }}</h3>
{% if d.topics %}
<table>
<thead><tr><th>Term or phrase</th><th class="n">Requests</th><th>Examples</th></tr></thead>
<tbody>
{% for topic in d.topics %}
<tr><td>{{ topic.phrase }}</td><td class="n">{{ topic.count }}</td>
<td>{{ topic.references | join(", ") }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="none">Nothing recurs in this period.</p>
{% endif %}
{% endfor %}
</section>

<section id="fairness">
<h2>Fairness</h2>
{% for title, groups in groups %}
<h3>{{ title }}</h3>
{% if groups %}
<table>
<thead><tr><th>Group</th><th class="n">Requests</th><th class="n">Answered</th>
<th class="n">Median first response</th><th class="n">p90</th><th class="n">Met target</th>
</tr></thead>
<tbody>
{% for g in groups %}
<tr><td>{{ g.name }}</td><td class="n">{{ g.requests }}</td>
<td class="n">{{ g.first_response.count }}</td>
<td class="n">{{ g.first_response.median_h | hours }}</td>
<td class="n">{{ g.first_response.p90_h | hours }}</td>
<td class="n">{{ g.first_response.met_pct | percent }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="none">No requests in this period.</p>
{% endif %}
{% endfor %}
</section>
</main>
</body>
</html>
"""
