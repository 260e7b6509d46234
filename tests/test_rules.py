"""The rule engine: every condition, matcher, combinator and action, and every check error."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailroom import rules
from mailroom.errors import ConfigError
from mailroom.located import loads
from mailroom.parse import Attachment, Inbound
from mailroom.rules.loader import build

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

KNOWN = rules.Known(
    {"hr": frozenset({"hr@contoh.co.id", "rina@contoh.co.id"}),
     "finance": frozenset({"finance@contoh.co.id", "dewi@contoh.co.id"}),
     "it": frozenset({"it@contoh.co.id"}), "ga": frozenset({"ga@contoh.co.id"}),
     "triage": frozenset({"sd@contoh.co.id"})},
    frozenset({"vip"}), "Asia/Jakarta")
MISTAKES = sorted((Path(__file__).parent / "data" / "rules-mistakes").glob("*.yaml"))
MONDAY_9_WIB = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def ruleset(text: str) -> rules.RuleSet:
    return build(loads(textwrap.dedent(text), "rules.yaml"), "rules.yaml", "v1", KNOWN)


def one_rule(condition: str, then: str = "{department: it}") -> rules.RuleSet:
    return ruleset(f"rules:\n  - name: r\n    if: {condition}\n    then: {then}\n"
                   "fallback: {department: triage}\n")


def mail(subject: str = "", text: str = "", **fields: object) -> Inbound:
    values: dict[str, object] = {"message_id": "<m@x>", "sender": "budi@contoh.co.id",
                                 "subject": subject, "text": text, "new_text": text,
                                 "language": "id", "size": 1000}
    values.update(fields)
    return Inbound(**values)  # type: ignore[arg-type]


def routed(rs: rules.RuleSet, inbound: Inbound, at: datetime = MONDAY_9_WIB) -> str:
    fast, full = rules.route(rs, inbound, at), rules.route(rs, inbound, at, explain=True)
    assert (fast.rule, fast.department, fast.tags) == (full.rule, full.department, full.tags)
    return fast.rule


@pytest.mark.parametrize("path", MISTAKES, ids=lambda p: p.stem)
def test_each_rules_mistake_names_file_line_and_column(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(ConfigError) as caught:
        rules.load(path, KNOWN)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"{path}:{expected}") for line in lines), lines


CASES = [
    # (condition, matching message, non-matching message)
    ("{text: [slip gaji, payroll]}", mail("Slip  GAJI Oktober"), mail("gaji saja")),
    ("{text: [reimbursement]}", mail(text="Mohon REIMBURSEMENT"), mail("reimbursements")),
    ("{subject: [café]}", mail("Cafe rusak"), mail(text="cafe")),
    ("{body: [vpn]}", mail(text="VPN mati"), mail("VPN mati")),
    ("{text: {all: [laptop, rusak]}}", mail("laptop", "rusak"), mail("laptop baru")),
    ("{text: {any: [invoice], whole_words: false}}", mail("Invoices attached"), mail("faktur")),
    ("{subject: {regex: 'INV-[0-9]{4}'}}", mail("re: inv-2026"), mail("INV-12")),
    ("{subject: {equals: 'Slip Gaji'}}", mail("slip  gaji"), mail("Slip gaji Oktober")),
    ("{subject: {glob: 'urgent*'}}", mail("URGENT: server"), mail("not urgent")),
    ("{from: [rina@contoh.co.id]}", mail(sender="rina@contoh.co.id"), mail()),
    ("{from: {glob: '*@vendor.example'}}", mail(sender="a@vendor.example"), mail()),
    ("{from: {regex: '^no-?reply@'}}", mail(sender="noreply@x.id"), mail()),
    ("{from_domain: [vendor.example]}", mail(sender="a@mail.vendor.example"),
     mail(sender="a@notvendor.example")),
    ("{to: [layanan+it@contoh.co.id]}", mail(to=("layanan+it@contoh.co.id",)),
     mail(to=("layanan@contoh.co.id",))),
    ("{to: [layanan+it@contoh.co.id]}", mail(cc=("layanan+it@contoh.co.id",)), mail()),
    ("{cc: [joko@contoh.co.id]}", mail(cc=("joko@contoh.co.id",)),
     mail(to=("joko@contoh.co.id",))),
    ("{delivered_to: [hr@contoh.co.id]}", mail(delivered_to=("hr@contoh.co.id",)), mail()),
    ("{header: {X-Priority: {equals: '1'}}}", mail(headers={"x-priority": ("1",)}),
     mail(headers={"x-priority": ("3",)})),
    ("{header: {List-Id: {exists: true}}}", mail(headers={"list-id": ("<a.b>",)}), mail()),
    ("{header: {List-Id: {exists: false}}}", mail(), mail(headers={"list-id": ("<a.b>",)})),
    ("{header: {X-Mailer: {regex: outlook}}}", mail(headers={"x-mailer": ("MS Outlook 16",)}),
     mail(headers={"x-mailer": ("Thunderbird",)})),
    ("{header: {Keywords: [urgent]}}", mail(headers={"keywords": ("urgent, hr",)}), mail()),
    ("{attachments: true}", mail(attachments=(Attachment("a.pdf", "application/pdf", 9),)),
     mail()),
    ("{attachments: false}", mail(),
     mail(attachments=(Attachment("a.pdf", "application/pdf", 9),))),
    ("{attachments: {content_type: [application/pdf]}}",
     mail(attachments=(Attachment("x", "application/pdf", 9),)),
     mail(attachments=(Attachment("x.png", "image/png", 9),))),
    ("{attachments: {filename: '*.xlsx'}}",
     mail(attachments=(Attachment("Klaim.XLSX", "application/vnd.ms-excel", 9),)),
     mail(attachments=(Attachment("klaim.pdf", "application/pdf", 9),))),
    ("{language: [en]}", mail(language="en"), mail(language="id")),
    ("{sender_in: [finance]}", mail(sender="dewi@contoh.co.id"), mail()),
    ("{received: {weekdays: [mon], hours: '08:00-17:00'}}", mail(), None),
    ("{size: {over: 5KB}}", mail(size=6000), mail(size=5000)),
    ("{size: {under: 1KB}}", mail(size=500), mail(size=2000)),
    ("{any: [{subject: [gaji]}, {from_domain: [payroll.example]}]}",
     mail(sender="x@payroll.example"), mail("cuti")),
    ("{all: [{subject: [gaji]}, {language: [id]}]}", mail("gaji"), mail("gaji", language="en")),
    ("{not: {language: [en]}}", mail(), mail(language="en")),
    ("{subject: [gaji], not: {any: [{text: [dummy]}, {from: [x@y.id]}]}}", mail("gaji"),
     mail("gaji", "dummy")),
    ("{}", mail("anything"), None),
]


@pytest.mark.parametrize(("condition", "yes", "no"), CASES, ids=[c[0] for c in CASES])
def test_each_condition_matches_and_refuses(condition: str, yes: Inbound,
                                            no: Inbound | None) -> None:
    rs = one_rule(condition)
    assert routed(rs, yes) == "r"
    if no is not None:
        assert routed(rs, no) == "fallback"


@pytest.mark.parametrize(("at", "expected"), [
    (datetime(2026, 11, 23, 0, 59, tzinfo=UTC), "fallback"),  # Mon 07:59 WIB
    (datetime(2026, 11, 23, 1, 0, tzinfo=UTC), "r"),  # Mon 08:00 WIB
    (datetime(2026, 11, 23, 10, 0, tzinfo=UTC), "fallback"),  # Mon 17:00 WIB
    (datetime(2026, 11, 24, 2, 0, tzinfo=UTC), "fallback"),  # Tuesday
])
def test_time_window_is_read_in_the_service_time_zone(at: datetime, expected: str) -> None:
    rs = one_rule("{received: {weekdays: [mon], hours: '08:00-17:00'}}")
    assert routed(rs, mail(), at) == expected


def test_overnight_window_wraps_midnight() -> None:
    rs = one_rule("{received: {hours: '18:00-06:00'}}")
    assert routed(rs, mail(), datetime(2026, 11, 23, 16, 0, tzinfo=UTC)) == "r"  # 23:00 WIB
    assert routed(rs, mail(), datetime(2026, 11, 23, 5, 0, tzinfo=UTC)) == "fallback"  # 12:00


def test_every_action_reaches_the_route() -> None:
    rs = one_rule("{text: [gaji]}", "{department: hr, priority: urgent, category: payroll, "
                  "sla: {first_response: 1h, resolution: 2d}, tags: [salary], "
                  "cc: [joko@contoh.co.id], templates: vip}")
    route = rules.route(rs, mail("gaji"), MONDAY_9_WIB)
    assert (route.department, route.priority, route.category) == ("hr", "urgent", "payroll")
    assert (route.first_response, route.resolution) == (timedelta(hours=1), timedelta(days=2))
    assert (route.tags, route.watchers, route.templates) == (
        ("salary",), ("joko@contoh.co.id",), "vip")
    assert route.rules_version == "v1" and route.ignore is None


def test_ignore_records_a_reason_and_routes_nowhere() -> None:
    rs = one_rule("{subject: [newsletter]}", "{ignore: internal newsletter}")
    route = rules.route(rs, mail("Newsletter November"), MONDAY_9_WIB)
    assert (route.rule, route.ignore) == ("r", "internal newsletter")


def test_continue_adds_tags_and_watchers_then_first_match_wins() -> None:
    rs = ruleset("""
        rules:
          - name: vip sender
            if: {from: [direktur@contoh.co.id]}
            then: {tags: [vip], cc: [sekretaris@contoh.co.id]}
            continue: true
          - name: salary
            if: {text: [gaji]}
            then: {department: hr, tags: [salary]}
          - name: also salary
            if: {text: [payroll]}
            then: {department: finance}
        fallback: {department: triage, priority: low}
        """)
    route = rules.route(rs, mail("gaji payroll", sender="direktur@contoh.co.id"), MONDAY_9_WIB)
    assert (route.rule, route.department, route.priority) == ("salary", "hr", "low")
    assert route.tags == ("vip", "salary") and route.watchers == ("sekretaris@contoh.co.id",)
    fallback = rules.route(rs, mail("halo", sender="direktur@contoh.co.id"), MONDAY_9_WIB)
    assert (fallback.rule, fallback.department, fallback.tags) == ("fallback", "triage", ("vip",))


def test_explain_traces_every_rule_with_the_deciding_condition() -> None:
    rs = ruleset("""
        rules:
          - name: salary
            if: {text: [gaji], language: [en]}
            then: {department: hr}
          - name: laptops
            if: {text: [laptop]}
            then: {department: it}
          - name: rooms
            if: {text: [ruang rapat]}
            then: {department: ga}
        fallback: {department: triage}
        """)
    route = rules.route(rs, mail("gaji laptop"), MONDAY_9_WIB, explain=True)
    assert [(s.rule, s.matched) for s in route.trace] == [("salary", False), ("laptops", True)]
    assert route.trace[0].why == "no: language is 'en'"
    assert route.trace[1].why == "yes: text has any of 'laptop'"


def test_body_rules_read_the_new_text_not_the_quoted_history() -> None:
    rs = one_rule("{body: [vpn]}")
    quoted = mail(text="Terima kasih\n> VPN saya mati", new_text="Terima kasih")
    assert routed(rs, quoted) == "fallback"


def test_regexes_are_linear_time_so_hostile_input_cannot_stall_routing() -> None:
    # with a backtracking engine this pattern takes longer than the universe's age on this input
    rs = one_rule("{body: {regex: '(a+)+$'}}")
    assert routed(rs, mail(text="a" * 7_000 + "!")) == "fallback"
    assert routed(rs, mail(text="aaa")) == "r"


def test_example_rules_route_a_message_for_each_department() -> None:
    from mailroom import config

    loaded = config.load(Path(__file__).parent.parent / "config" / "demo.yaml")
    known = rules.Known({k: frozenset({d.address, *d.members}) for k, d in
                         loaded.departments.items()}, frozenset(), "Asia/Jakarta")
    rs = rules.load(loaded.rules_path, known)
    for text, department in [("slip gaji belum masuk", "hr"), ("klaim reimbursement", "finance"),
                             ("VPN tidak bisa connect", "it"), ("pesan ruang rapat", "ga"),
                             ("jam buka kantin", "triage")]:
        assert rules.route(rs, mail(text), MONDAY_9_WIB).department == department, text


def test_the_examples_in_docs_rules_md_pass_the_check() -> None:
    text = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()
    example = text.split("## Examples by department", 1)[1].split("```yaml\n", 1)[1]
    ruleset(example.split("```", 1)[0])
