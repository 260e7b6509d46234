"""Routing speed: 1,000 rules, a realistic message set; load time and per-message routing time.

Run: .venv/bin/python benchmarks/routing.py [--rules 1000] [--messages 2000]
Prints the median and 95th percentile per message for the indexed engine and, as the
baseline from the same run, for trying every rule in order (what `rules test` does).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mailroom import rules
from mailroom.parse import parse

ROOT = Path(__file__).resolve().parent.parent
DEPARTMENTS = ("hr", "finance", "it", "ga", "legal", "procurement", "security", "facilities")
VOCABULARY = (
    "gaji slip payroll salary thr lembur overtime cuti leave bpjs izin sakit klaim reimbursement "
    "reimburse invoice tagihan faktur uang muka advance expense laptop komputer printer vpn "
    "wifi internet email password sandi akun login ruang rapat meeting room kendaraan mobil "
    "dinas vehicle driver ac atk pantry lampu kebersihan cleaning kontrak vendor pengadaan "
    "purchase order keamanan badge parkir asuransi pensiun pajak npwp absensi kehadiran "
    "pelatihan training sertifikat server jaringan aplikasi lisensi software hardware monitor "
    "keyboard mouse headset telepon ponsel seragam kunci loker gedung lift toilet air listrik"
).split()
FILLER = ("mohon bantuan terima kasih selamat pagi saya kami sudah belum bisa tidak hari ini "
          "please help thank you hello my the is not since yesterday could you check").split()


def rules_file(count: int, seed: int) -> str:
    """`count` rules in the shapes admins write: word lists, some with a second field."""
    rng = random.Random(seed)
    lines = ["rules:"]
    for n in range(count):
        words = rng.sample(VOCABULARY, rng.randint(2, 6))
        if rng.random() < 0.3:
            words.append(" ".join(rng.sample(VOCABULARY, 2)))
        field = rng.choice(("text", "text", "text", "subject", "body"))
        condition = f"{field}: [{', '.join(words)}]"
        if rng.random() < 0.2:
            condition += ", language: [" + rng.choice(("id", "en")) + "]"
        if rng.random() < 0.05:
            condition = f"from_domain: [vendor{n}.example]"
        lines += [f"  - name: rule {n}", f"    if: {{{condition}}}",
                  f"    then: {{department: {rng.choice(DEPARTMENTS)}}}"]
    lines.append("fallback: {department: hr}")
    return "\n".join(lines) + "\n"


def messages(count: int, seed: int) -> list[bytes]:
    """The demo requests plus generated ones of similar length (3-8 lines)."""
    rng = random.Random(seed)
    found = [p.read_bytes() for p in sorted((ROOT / "config" / "demo-mail").glob("*.eml"))]
    while len(found) < count:
        body = " ".join(rng.choice(FILLER + VOCABULARY[:20]) for _ in range(rng.randint(20, 90)))
        subject = " ".join(rng.choice(FILLER + VOCABULARY) for _ in range(rng.randint(3, 7)))
        found.append(f"From: a{len(found)}@contoh.co.id\nTo: layanan@contoh.co.id\n"
                     f"Subject: {subject}\nMessage-ID: <b{len(found)}@x>\n\n{body}\n".encode())
    return found


def timed_route(ruleset: rules.RuleSet, inbound: list, explain: bool) -> list[float]:
    at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    times = []
    for message in inbound:
        started = time.perf_counter()
        rules.route(ruleset, message, at, explain=explain)
        times.append(time.perf_counter() - started)
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95)]
    print(f"{name:28} median {statistics.median(times) * 1e6:8.1f} µs   p95 {p95 * 1e6:8.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    known = rules.Known({d: frozenset() for d in DEPARTMENTS}, frozenset(), "Asia/Jakarta")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.yaml"
        path.write_text(rules_file(args.rules, seed=1))
        started = time.perf_counter()
        ruleset = rules.load(path, known)
        loaded = time.perf_counter() - started
    inbound = [parse(raw) for raw in messages(args.messages, seed=2)]
    timed_route(ruleset, inbound[:200], explain=False)  # warm up
    indexed = timed_route(ruleset, inbound, explain=False)
    every = timed_route(ruleset, inbound, explain=True)
    print(f"{len(ruleset.rules)} rules loaded and compiled in {loaded * 1000:.0f} ms; "
          f"{len(inbound)} messages")
    report("indexed (the daemon)", indexed)
    report("every rule (rules test)", every)
    print(f"indexed / every-rule median ratio: "
          f"{statistics.median(indexed) / statistics.median(every):.3f}")
    unmatched = [parse(f"From: x@contoh.co.id\nSubject: pertanyaan umum\n\n"
                       f"{' '.join(FILLER * 3)}\n".encode())] * 500
    report("no rule matches, indexed", timed_route(ruleset, unmatched, explain=False))
    report("no rule matches, every rule", timed_route(ruleset, unmatched, explain=True))


if __name__ == "__main__":
    main()
