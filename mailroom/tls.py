"""TLS for both ways mail travels: the inbox (IMAP) and the way out (SMTP)."""

from __future__ import annotations

import ssl

from mailroom.config import Server


def context(server: Server) -> ssl.SSLContext:
    """Certificate-checking TLS, trusting `ca_file` when the server's CA is private."""
    return ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)
