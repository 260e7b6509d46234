"""What the author wrote this time: quoted history and signatures cut, forwarded content kept."""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

# Other languages' "On ... wrote:" and "From:/Sent:" headers, from mail-parser-reply.
REPLY_PARSER = EmailReplyParser(languages=["en", "de", "fr", "es", "nl"])
FORWARD_MARKER = re.compile(
    r"^[ \t]*(?:-{3,}[ \t]*(?:forwarded message|pesan terusan)[ \t]*-{3,}"
    r"|begin forwarded message:|awal pesan (?:yang )?diteruskan:)[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
# The headers mail clients write above the history they quote, in English and Indonesian:
# an attribution line (Gmail, Thunderbird, Apple Mail), or a header block (Outlook).
ATTRIBUTION = re.compile(
    r"^[ \t>]*(?:on\b[^\n]{0,300}(?:\n[^\n]{0,300})?\bwrote"
    r"|pada\b[^\n]{0,300}(?:\n[^\n]{0,300})?\bmenulis)[ \t]*:[ \t]*$",
    re.IGNORECASE | re.MULTILINE)
REPLY_HEADER = re.compile("|".join((
    ATTRIBUTION.pattern,
    r"^[ \t>*]*(?:from|dari)[ \t*]*:[^\n]*\n[ \t>*]*(?:sent|date|dikirim|terkirim|tanggal)"
    r"[ \t*]*:",
    r"^[ \t>]*-{3,}[ \t]*(?:original message|pesan asli)[ \t]*-{3,}[ \t]*$",
)), re.IGNORECASE | re.MULTILINE)
FORWARD_SUBJECT = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:fwd?|fw|tr|trs|wg)\s*:", re.IGNORECASE)
SIGNATURE = re.compile(r"^-- ?$", re.MULTILINE)
SENT_FROM = re.compile(
    r"^(?:sent from (?:my )?\S.{0,60}|get outlook for .{1,40}|dikirim dari .{1,60}"
    r"|dapatkan outlook untuk .{1,40})$", re.IGNORECASE)
RULE = re.compile(r"^[ \t]*[_\-=]{10,}[ \t]*$")


def new_text(text: str, subject: str = "") -> str:
    """The new text of a message body.

    History under a reply header is cut, and so is a signature; a forwarded message
    (Gmail's, Apple Mail's and Thunderbird's markers, or an Outlook header block under an
    "FW:" subject) is content and stays whole below the author's own words. Someone who
    wrote under the quote (or between its lines) keeps the lines that are not quoted.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    forward = _forward_start(text, subject)
    reply = REPLY_HEADER.search(text)
    if forward is not None and (reply is None or forward <= reply.start()):
        own = _own_words(text[:forward])
        return "\n\n".join(part for part in (own, text[forward:].strip()) if part)
    if reply is None:
        return _own_words(text)
    return _own_words(text[:reply.start()]) or _under_the_quote(text, reply)


def _under_the_quote(text: str, header: re.Match[str]) -> str:
    """What someone wrote below (or between the lines of) a quote marked with '>'.

    Only under an attribution line whose history is marked: below an Outlook header block
    or an unmarked quote, everything is history.
    """
    below = text[header.end():].lstrip("\n")
    if not ATTRIBUTION.fullmatch(header.group(0)) or not below.lstrip().startswith(">"):
        return ""
    return _own_words(below)


def _forward_start(text: str, subject: str) -> int | None:
    marker = FORWARD_MARKER.search(text)
    if marker:
        return marker.start()
    if FORWARD_SUBJECT.match(subject):
        header = REPLY_HEADER.search(text)
        return header.start() if header else None
    return None


def _own_words(head: str) -> str:
    """The author's part above any history: other languages' headers, quotes, signature cut."""
    try:
        latest = REPLY_PARSER.parse_reply(text=head)
    except Exception:  # the reply parser is heuristics over regexes; never let it stop intake
        latest = None
    kept = latest if latest and latest.strip() else head
    signature = SIGNATURE.search(kept)
    if signature:
        kept = kept[:signature.start()]
    lines = [line.rstrip() for line in kept.split("\n") if not line.lstrip().startswith(">")]
    while lines and (not lines[-1].strip() or SENT_FROM.match(lines[-1].strip())
                     or RULE.match(lines[-1])):
        lines.pop()
    return "\n".join(lines).strip()
