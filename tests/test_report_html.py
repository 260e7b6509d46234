"""The HTML report: its figures, charts and escaping; how headless Chromium shows and prints it."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from mailroom.report_html import html
from mailroom.reports import DepartmentFigures, Group, LowRating, Report, Times, Topic

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

JAKARTA = ZoneInfo("Asia/Jakarta")
CHARTS = ("volume", "first-response", "resolution", "sla", "satisfaction")
SCRIPT = "<script>alert('topic')</script>"
NOTHING = Times(count=0, median_h=None, p90_h=None, target_h=None, met_pct=None)
A4_POINTS = (595, 842)


def department(key: str, name: str, requests: int = 0, **figures: object) -> DepartmentFigures:
    values: dict[str, object] = dict(
        key=key, name=name, requests=requests, still_open=0, categories={},
        first_response=NOTHING, resolution=NOTHING, sla_met_pct=None, csat_avg=None, ratings={},
        low_ratings=(), topics=())
    return DepartmentFigures(**{**values, **figures})  # type: ignore[arg-type]


def october() -> Report:
    """A month of three departments: IT busy, HR quieter, Finance without a request."""
    it = department(
        "it", "IT Support", 12, still_open=2, categories={"laptop": 7, "email": 3, "": 2},
        first_response=Times(10, 1.5, 3.8, 2.0, 80.0), resolution=Times(9, 6.0, 14.2, 8.0, 77.8),
        sla_met_pct=75.0, csat_avg=4.25, ratings={5: 5, 4: 2, 2: 1},
        low_ratings=(LowRating("REQ-000007", 2, "Two days & nobody called <back>"),),
        topics=(Topic("laptop rusak", 5, ("REQ-000011", "REQ-000009", "REQ-000004")),
                Topic(SCRIPT, 2, ("REQ-000010", "REQ-000003"))))
    hr = department(
        "hr", "Human Resources", 5, still_open=1, categories={"payroll": 4, "leave": 1},
        first_response=Times(5, 3.0, 7.5, 4.0, 60.0), resolution=Times(4, 12.0, 20.0, 16.0, 75.0),
        sla_met_pct=50.0, csat_avg=3.5, ratings={5: 1, 3: 2, 1: 1},
        low_ratings=(LowRating("REQ-000002", 1, "Slip gaji masih salah"),),
        topics=(Topic("slip gaji", 3, ("REQ-000012", "REQ-000005", "REQ-000002")),))
    finance = department("finance", "Finance")
    total = department(
        "", "All departments", 17, still_open=3,
        categories={"laptop": 7, "payroll": 4, "email": 3, "": 2, "leave": 1},
        first_response=Times(15, 2.0, 6.1, None, 73.3), resolution=Times(13, 8.0, 18.5, None, 76.9),
        sla_met_pct=66.7, csat_avg=4.0, ratings={5: 6, 4: 2, 3: 2, 2: 1, 1: 1})
    return Report(
        since=datetime(2026, 10, 1, tzinfo=JAKARTA).astimezone(UTC),
        until=datetime(2026, 11, 1, tzinfo=JAKARTA).astimezone(UTC), zone="Asia/Jakarta",
        departments=(hr, it, finance), total=total,
        transfers={("it", "finance"): 3, ("hr", "it"): 1, ("it", "facilities"): 2},
        by_requester=(Group("contoh.co.id", 15, Times(13, 1.8, 5.9, None, 76.9)),
                      Group("mitra.co.id", 2, Times(2, 4.5, 6.0, None, 50.0))),
        by_priority=(Group("high", 4, Times(4, 0.5, 1.0, None, 100.0)),
                     Group("normal", 13, Times(11, 2.5, 6.2, None, 63.6))))


def quiet() -> Report:
    """A period in which nothing happened."""
    departments = (department("hr", "Human Resources"), department("it", "IT Support"))
    return Report(since=datetime(2026, 10, 1, tzinfo=JAKARTA),
                  until=datetime(2026, 11, 1, tzinfo=JAKARTA), zone="Asia/Jakarta",
                  departments=departments, total=department("", "All departments"),
                  transfers={}, by_requester=(), by_priority=())


class Tables(HTMLParser):
    """The text of every table cell, by the id of the section the table is in."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.sections: dict[str, list[list[list[str]]]] = {}
        self.section = ""
        self.cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.section = dict(attrs)["id"] or ""
        elif tag == "table":
            self.sections.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.sections[self.section][-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.sections[self.section][-1][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(page: str, section: str) -> list[list[list[str]]]:
    return Tables(page).sections[section]


def test_the_summary_cards_show_the_periods_figures() -> None:
    page = html(october())
    cards = re.findall(r'<span class="value">(.*?)</span>', page)
    assert cards == ["17", "66.7%", "2.0 h", "4.00"]
    assert "1 October 2026 \N{EN DASH} 31 October 2026 · times in Asia/Jakarta" in page


def test_each_department_has_its_volume_times_sla_and_satisfaction() -> None:
    page = html(october())
    [volume] = tables(page, "volume")
    assert volume[1:] == [["Human Resources", "5", "1", "payroll 4, leave 1"],
                          ["IT Support", "12", "2", "laptop 7, email 3, none 2"],
                          ["Finance", "0", "0", ""],
                          ["All", "17", "3", "laptop 7, payroll 4, email 3, none 2, leave 1"]]
    [times] = tables(page, "times")
    assert times[2] == ["Human Resources", "3.0 h", "7.5 h", "4.0 h", "60.0%",
                        "12.0 h", "20.0 h", "16.0 h", "75.0%"]
    assert times[4] == ["Finance", *["—"] * 8]
    assert times[5][:5] == ["All", "2.0 h", "6.1 h", "—", "73.3%"]
    [sla] = tables(page, "sla")
    assert [row[1] for row in sla[1:]] == ["50.0%", "75.0%", "—", "66.7%"]
    ratings, low = tables(page, "satisfaction")
    assert ratings[2] == ["IT Support", "4.25", "0", "1", "0", "2", "5"]
    assert low[1:] == [["REQ-000002", "Human Resources", "1", "Slip gaji masih salah"],
                       ["REQ-000007", "IT Support", "2", "Two days & nobody called <back>"]]


def test_transfers_are_a_matrix_hottest_where_most_went() -> None:
    page = html(october())
    [matrix] = tables(page, "transfers")
    assert matrix == [["From \\ to", "Human Resources", "IT Support", "Finance", "facilities"],
                      ["Human Resources", "", "1", "", ""],
                      ["IT Support", "", "", "3", "2"],
                      ["Finance", "", "", "", ""],
                      ["facilities", "", "", "", ""]]
    shades = {int(count): float(shade) for shade, count
              in re.findall(r'rgba\(197, 48, 48, ([\d.]+)\).*?">(\d+)</td>', page)}
    assert shades[3] > shades[2] > shades[1] > 0


def test_topics_and_fairness_are_tables_with_their_examples() -> None:
    page = html(october())
    hr, it = tables(page, "topics")
    assert hr[1] == ["slip gaji", "3", "REQ-000012, REQ-000005, REQ-000002"]
    assert it[1:] == [["laptop rusak", "5", "REQ-000011, REQ-000009, REQ-000004"],
                      [SCRIPT, "2", "REQ-000010, REQ-000003"]]
    assert "Finance</h3>\n<p class=\"none\">Nothing recurs" in page
    requesters, priorities = tables(page, "fairness")
    assert requesters[1:] == [["contoh.co.id", "15", "13", "1.8 h", "5.9 h", "76.9%"],
                              ["mitra.co.id", "2", "2", "4.5 h", "6.0 h", "50.0%"]]
    assert priorities[1] == ["high", "4", "4", "0.5 h", "1.0 h", "100.0%"]


def test_text_from_mail_is_escaped() -> None:
    page = html(october())
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&#39;topic&#39;)&lt;/script&gt;" in page
    assert "Two days &amp; nobody called &lt;back&gt;" in page
    assert "<script" not in page


def test_the_page_needs_nothing_from_elsewhere() -> None:
    page = html(october())
    assert not re.search(r'\b(src|href)="(?!#)', page)
    assert "@import" not in page and "url(http" not in page


def test_every_chart_is_an_inline_svg_with_a_caption() -> None:
    page = html(october())
    for name in CHARTS:
        chart = re.search(rf'<figure class="chart" id="chart-{name}">(.*?)</figure>', page, re.S)
        assert chart, name
        assert chart[1].startswith("<svg") and "</svg>" in chart[1] and "<figcaption>" in chart[1]
        assert "no data" not in chart[1]
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "IT Support" in re.search(r'id="chart-volume">(.*?)</figure>', page, re.S)[1]  # type: ignore[index]


def test_svg_ids_differ_between_charts_and_the_page_is_the_same_each_time() -> None:
    page = html(october())
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'url\(#([^)]+)\)', page))
    assert references and references <= set(ids)
    assert html(october()) == page


def test_dollar_signs_in_a_name_are_drawn_as_written_not_as_mathematics() -> None:
    """A name like "Dana $a^$ b" is text: mathematics would fail to parse it."""
    report = october()
    money = dataclasses.replace(report.departments[1], name="Dana $a^$ b")
    page = html(dataclasses.replace(report, departments=(report.departments[0], money,
                                                         report.departments[2])))
    for name in CHARTS:
        chart = re.search(rf'id="chart-{name}">(<svg.*?</svg>)', page, re.S)
        assert chart and "Dana $a^$ b" in chart[1], name


def test_a_period_without_requests_draws_no_data_in_every_chart() -> None:
    page = html(quiet())
    for name in CHARTS:
        chart = re.search(rf'id="chart-{name}">(<svg.*?</svg>)', page, re.S)
        assert chart and "no data" in chart[1], name
    assert "No request was transferred" in page and "No rating of 1 or 2" in page


# -- in a browser and on paper -------------------------------------------------------------------

def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed: `make system-deps` installs it"
    return found


def browse(page: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on the page, with its console written to stderr."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={page.parent / 'profile'}", *action, page.as_uri()],
        capture_output=True, text=True, timeout=30, check=True)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to the console: it has no script, so anything there is an error."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html(october()), encoding="utf-8")
    return path


def test_chromium_loads_the_page_with_every_chart_and_no_console_error(page: Path) -> None:
    loaded = browse(page, "--dump-dom")
    for name in CHARTS:
        assert re.search(rf'<figure class="chart" id="chart-{name}"><svg', loaded.stdout), name
    assert console_messages(loaded.stderr) == []
    broken = page.with_name("broken.html")
    broken.write_text(page.read_text().replace("</main>", "<script>missing()</script></main>"))
    assert console_messages(browse(broken, "--dump-dom").stderr), "console errors are seen"


def test_the_screenshot_shows_a_page_with_colour(page: Path) -> None:
    png = page.with_name("report.png")
    browse(page, f"--screenshot={png}", "--window-size=1240,1754", "--hide-scrollbars")
    with Image.open(png) as shot:
        assert shot.size == (1240, 1754)
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200, "text, charts and cards, not a blank page"
    assert any(b > r + 60 for _, (r, _g, b) in colours), "the charts' blue is on screen"


def test_the_page_prints_on_a4(page: Path) -> None:
    pdf = page.with_name("report.pdf")
    browse(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert boxes, "the PDF has pages"
    assert {(round(float(w)), round(float(h))) for w, h in boxes} == {A4_POINTS}
    assert 2 <= len(boxes) <= 6
