"""HTML bodies as readable plain text (inscriptis): blocks, lists, table rows and links kept."""

from __future__ import annotations

import html as entities
import logging
import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

log = logging.getLogger(__name__)
CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)
# inscriptis writes a link as [text](url); a link whose text is its own address needs it once
SELF_LINK = re.compile(r"\[([^\]\n]{1,500})\]\((?:mailto:)?\1\)")


def html_to_text(html: str) -> str:
    """Plain text of an HTML body; scripts and styles vanish, nothing raises."""
    if not html.strip():
        return ""
    try:
        text = get_text(html, CONFIG)
    except Exception as exc:  # lxml refuses some broken markup; keep the words anyway
        log.debug("inscriptis failed (%s); stripping tags instead", exc)
        text = entities.unescape(re.sub(r"<[^>]*>", " ", html))
    text = SELF_LINK.sub(r"\1", text)
    lines = (line.rstrip() for line in text.replace("\xa0", " ").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
