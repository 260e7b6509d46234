"""Real servers on 127.0.0.1 for tests: a private Dovecot IMAP server, an aiosmtpd capture."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import pwd
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import imapclient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
START_TIMEOUT = 10.0
# The post-login CAPABILITY a default Dovecot 2.3.19 sends. imap_capability replaces it
# wholesale (no way to drop one token; an explicit list also stops Dovecot appending LITERAL+
# and NOTIFY), so idle=False / move=False / uidplus=False write this list minus those tokens.
DOVECOT_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
).split()
CERT_CONFIG = """\
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = localhost
[v3]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1/localhost; it is its own CA file."""
    cert, key, config = folder / "cert.pem", folder / "key.pem", folder / "openssl.cnf"
    config.write_text(CERT_CONFIG)
    subprocess.run(
        ["openssl", "req", "-x509", "-config", str(config), "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def port_answers(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


class Server:
    """A server a `with` block starts (stopped again if starting fails) and stops."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


class Dovecot(Server):
    """A private Dovecot 2.3 IMAP server with one passwd-file user and Maildir storage.

    Everything (config, base_dir, state_dir, log, cert, mail) lives in one folder made by
    ``tempfile.mkdtemp(dir="/tmp")`` and chmod 0755: the auth and imap processes run as the
    ``dovecot`` user and must traverse every parent of the passwd file and the Maildir, which
    pytest's 0700 tmp_path parents would forbid. The mail user borrows the ``dovecot`` uid/gid
    because Dovecot refuses uid 0 (and uids below first_valid_uid, lowered here to match).
    """

    def __init__(self, *, idle: bool = True, move: bool = True, uidplus: bool = True,
                 tls: bool = False, starttls: bool = False) -> None:
        if tls and starttls:
            raise ValueError("tls (implicit TLS) and starttls are two modes of the one port")
        self.idle, self.move, self.uidplus = idle, move, uidplus
        self.tls, self.starttls = tls, starttls
        self.host, self.port = HOST, free_port()
        self.user, self.password = "layanan@contoh.co.id", "secret"
        self.root = Path(tempfile.mkdtemp(prefix="mailroom-dovecot-", dir="/tmp"))
        self.root.chmod(0o755)
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.home = self.root / "home"
        self.maildir = self.home / "Maildir"
        self.ca_file: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (on the same port and data as before, if it ran already)."""
        if self._proc is not None:
            raise RuntimeError("Dovecot is already running")
        self._prepare()
        with (self.root / "dovecot.stderr").open("ab") as stderr:
            self._proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, start_new_session=True)
        try:
            self._wait_for_greeting()
        except BaseException:
            self._halt(signal.SIGKILL)
            raise

    def stop(self) -> None:
        """End the server and delete its folder.

        SIGKILL, not SIGTERM: on SIGTERM Dovecot's master waits a full second for its log
        process, and the data is deleted right after anyway. restart() is the clean path.
        """
        self._halt(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the master and all its children at once; returns when the port refuses."""
        self._halt(signal.SIGKILL)

    def restart(self) -> None:
        """Stop cleanly (SIGTERM, ~1 s) if running, then start on the same port and mail."""
        self._halt(signal.SIGTERM)
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None

    def log(self) -> str:
        """Dovecot's log so far, plus anything it wrote to stderr before logging was set up."""
        texts = [p.read_text(errors="replace")
                 for p in (self.log_path, self.root / "dovecot.stderr") if p.exists()]
        return "".join(texts)

    def logins(self) -> list[str]:
        """The log's 'Login:' lines; each says ', TLS,' or ', secured,' (loopback, no TLS)."""
        return [line for line in self.log().splitlines() if "imap-login: Info: Login:" in line]

    # -- IMAP helpers ----------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's self-signed certificate."""
        if self.ca_file is None:
            raise RuntimeError("this Dovecot has no TLS (pass tls=True or starttls=True)")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self) -> imapclient.IMAPClient:
        """A logged-in IMAPClient (implicit TLS or STARTTLS as configured); log it out after."""
        context = self.ssl_context() if self.ca_file else None
        client = imapclient.IMAPClient(self.host, self.port, ssl=self.tls,
                                       ssl_context=context, timeout=10)
        try:
            if self.starttls:
                client.starttls(context)
            client.login(self.user, self.password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, raw: bytes, folder: str = "INBOX", flags: Sequence[str] = (),
               arrived: datetime | None = None) -> int:
        """Store one message (creating the folder if needed) and return its UID.

        `arrived` is its INTERNALDATE, when it reached the mailbox (default: now).
        """
        with self.client() as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            reply = imap.append(folder, raw, flags=flags, msg_time=arrived)
        found = re.search(rb"\[APPENDUID \d+ (\d+)\]", reply)
        if found is None:
            raise AssertionError(f"no APPENDUID in Dovecot's reply {reply!r}")
        return int(found.group(1))

    def uids(self, folder: str = "INBOX") -> list[int]:
        """UIDs in the folder, ascending, \\Deleted ones included; [] if it does not exist."""
        with self.client() as imap:
            if not imap.folder_exists(folder):
                return []
            imap.select_folder(folder, readonly=True)
            return sorted(imap.search("ALL"))

    def fetch_all(self, folder: str = "INBOX") -> list[bytes]:
        """Every message of the folder as raw bytes, in UID order, without setting \\Seen."""
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            uids = sorted(imap.search("ALL"))
            found = imap.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return [found[uid][b"BODY[]"] for uid in uids]

    def folders(self) -> list[str]:
        """Names of all folders, sorted, e.g. ['INBOX', 'Processed']."""
        with self.client() as imap:
            return sorted(name for _flags, _separator, name in imap.list_folders())

    # -- internals -------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Write config, passwd file, cert and an empty Maildir owned by the mail user."""
        owner = pwd.getpwnam("dovecot")
        if (self.tls or self.starttls) and self.ca_file is None:
            self.ca_file = make_cert(self.root)[0]
        for sub in ("", "cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.home, *self.home.rglob("*")):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        passwd = self.root / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}:"
                          f"{owner.pw_uid}:{owner.pw_gid}::{self.home}::\n")
        passwd.chmod(0o644)
        self.config_path.write_text(self._config(owner.pw_uid))
        # After kill() the pid file is stale; were its pid reused, Dovecot would refuse to start.
        (self.root / "run" / "master.pid").unlink(missing_ok=True)

    def _config(self, uid: int) -> str:
        ssl_lines = "ssl = no"
        if self.ca_file is not None:
            # required: no plaintext auth before TLS. Note Dovecot counts a connection whose
            # remote IP equals its local IP as "secured", so on loopback LOGIN still works
            # without STARTTLS; check the "Login: ... TLS" log line to prove TLS was used.
            ssl_lines = (f"ssl = required\nssl_cert = <{self.ca_file}\n"
                         f"ssl_key = <{self.root / 'key.pem'}")
        capability = ""
        offered = {"IDLE": self.idle, "MOVE": self.move, "UIDPLUS": self.uidplus}
        if not all(offered.values()):
            dropped = {name for name, on in offered.items() if not on}
            kept = [token for token in DOVECOT_CAPABILITIES if token not in dropped]
            capability = "imap_capability = " + " ".join(kept)
        plain_port, tls_port = (0, self.port) if self.tls else (self.port, 0)
        return f"""\
# Written by tests/servers.py; nothing from /etc/dovecot is read.
base_dir = {self.root / 'run'}
state_dir = {self.root / 'state'}
instance_name = mailroom-test-{self.port}
log_path = {self.log_path}
protocols = imap
listen = {HOST}
{ssl_lines}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
{capability}
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = {self.root / 'passwd'}
}}
userdb {{
  driver = passwd-file
  args = {self.root / 'passwd'}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {plain_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {tls_port}
    ssl = yes
  }}
}}
"""

    def _greeting(self) -> bytes:
        """The server's first line on a fresh connection, or b'' if none (yet)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as raw:
                if not self.tls:
                    return raw.recv(512)
                with self.ssl_context().wrap_socket(raw, server_hostname=self.host) as tls:
                    return tls.recv(512)
        except OSError:
            return b""

    def _wait_for_greeting(self) -> None:
        """Poll until the port sends '* OK' (imap-login only greets once auth is ready)."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not self._greeting().startswith(b"* OK"):
            if self._proc.poll() is not None:
                raise RuntimeError(f"Dovecot exited with status {self._proc.returncode} at "
                                   f"start; its log:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not greet on {self.host}:{self.port} within "
                                   f"{START_TIMEOUT}s; its log:\n{self.log()}")
            time.sleep(0.01)

    def _halt(self, how: signal.Signals) -> None:
        """End the master (SIGTERM: it ends its children; SIGKILL: the whole process group).

        Then wait until the port refuses, so a restart can bind it again. Orphaned children
        are left for init to reap, so the group is not polled (zombies would keep it alive).
        """
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if how == signal.SIGTERM:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                how = signal.SIGKILL
        if how == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 10
        while port_answers(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.port} still answers after Dovecot ended")
            time.sleep(0.01)


class SilentListener:
    """A port on 127.0.0.1 that completes TCP connections and never says a word on them.

    It listens and never accepts: the kernel finishes the handshake from its backlog, so a
    client connects at once and then waits for a greeting that does not come.
    """

    def __init__(self) -> None:
        self.host, self.port = HOST, free_port()
        self._socket: socket.socket | None = None

    def __enter__(self) -> SilentListener:
        self._socket = socket.create_server((self.host, self.port), backlog=16)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class _Link:
    """One client connection through the proxy, its upstream twin, and what is held back."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.held = bytearray()  # sent by the client while frozen
        self.client_gone = False


class FreezingProxy:
    """A TCP proxy on 127.0.0.1 in front of another local port, which can be frozen.

    Frozen, it forwards nothing in either direction and closes nothing: open connections stay
    open and silent, and new ones wait unaccepted in the backlog, so they get no greeting.
    What a client sends meanwhile is read and held (so a client hanging up is seen, counted
    in ``hung_up``) and passed on after ``thaw()``. ``freeze_after(pattern)`` freezes as soon
    as a chunk containing ``pattern`` has passed, in either direction. ``transcript`` keeps
    every chunk passed on, as ("client" | "server", bytes), so tests can see what was said.
    ``cut()`` closes every connection, both ways, and refuses new ones from then on.
    """

    def __init__(self, target_port: int) -> None:
        self.host, self.port, self.target_port = HOST, free_port(), target_port
        self.accepted = 0  # connections taken and joined to the target
        self.hung_up = 0  # connections the client closed
        self.frozen = threading.Event()
        self.severed = threading.Event()
        self.transcript: list[tuple[str, bytes]] = []
        self._trigger: bytes | None = None
        self._links: list[_Link] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = False

    def __enter__(self) -> FreezingProxy:
        self._listener = socket.create_server((self.host, self.port), backlog=16)
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="freezing-proxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5)
        for link in list(self._links):
            self._close(link)
        if self._listener is not None:
            self._listener.close()

    def freeze(self) -> None:
        self.frozen.set()

    def freeze_after(self, pattern: bytes) -> None:
        """Freeze once `pattern` has passed through, from the client or from the server."""
        self._trigger = pattern

    def cut(self) -> None:
        """Close every connection through the proxy, both ways, and refuse new ones: the
        network between the two ends is gone."""
        self.severed.set()
        deadline = time.monotonic() + 5
        while self._listener is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    def thaw(self) -> None:
        """Forward again, starting with what clients sent while frozen."""
        self.frozen.clear()

    def said(self, speaker: str, pattern: bytes) -> bool:
        """Whether `speaker` ("client" or "server") has sent a chunk containing `pattern`."""
        return any(who == speaker and pattern in chunk for who, chunk in list(self.transcript))

    def served_bytes(self) -> int:
        """How many bytes the target has sent to clients through the proxy."""
        return sum(len(chunk) for who, chunk in list(self.transcript) if who == "server")

    # -- the forwarding thread ---------------------------------------------------------------

    def _serve(self) -> None:
        while self._running:
            if self.severed.is_set():
                self._sever()
                time.sleep(0.05)
                continue
            if not self.frozen.is_set():
                self._release()
            watched = self._watched()
            ready = select.select(watched, [], [], 0.05)[0] if watched else []
            if not watched:
                time.sleep(0.05)
            for sock in ready:
                self._on_readable(sock)

    def _sever(self) -> None:
        for link in list(self._links):
            self._close(link)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _watched(self) -> list[socket.socket]:
        frozen = self.frozen.is_set()
        assert self._listener is not None
        watched = [] if frozen else [self._listener]
        for link in self._links:
            watched += [] if link.client_gone else [link.client]
            watched += [] if frozen else [link.upstream]
        return watched

    def _release(self) -> None:
        """After a thaw: pass on what was held; end links whose client hung up meanwhile."""
        for link in list(self._links):
            if link.held:
                held, link.held = bytes(link.held), bytearray()
                self._pass(link, held, link.upstream)
            if link.client_gone:
                self._close(link)

    def _on_readable(self, sock: socket.socket) -> None:
        if sock is self._listener:
            self._accept()
            return
        link = next((lk for lk in self._links if sock in (lk.client, lk.upstream)), None)
        if link is None:
            return
        data = _receive(sock)
        if sock is link.upstream and data:
            self._pass(link, data, link.client)
        elif sock is link.upstream:
            self._close(link)
        elif not data:
            link.client_gone = True
            self.hung_up += 1
        elif self.frozen.is_set():
            link.held += data
        else:
            self._pass(link, data, link.upstream)

    def _accept(self) -> None:
        assert self._listener is not None
        client, _ = self._listener.accept()
        try:
            upstream = socket.create_connection((HOST, self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        client.settimeout(5)
        self._links.append(_Link(client, upstream))
        self.accepted += 1

    def _pass(self, link: _Link, data: bytes, to: socket.socket) -> None:
        try:
            to.sendall(data)
        except OSError:
            self._close(link)
            return
        self.transcript.append(("client" if to is link.upstream else "server", data))
        if self._trigger is not None and self._trigger in data:
            self._trigger = None
            self.frozen.set()

    def _close(self, link: _Link) -> None:
        for sock in (link.client, link.upstream):
            sock.close()
        if link in self._links:
            self._links.remove(link)


def _receive(sock: socket.socket) -> bytes:
    """What is waiting on a readable socket; b'' when the peer closed or reset it."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@dataclass
class Captured:
    """One message the SMTP capture accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: object = None  # the client's (host, port): one per connection

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _Recorder:
    """aiosmtpd handler: answers each stage as the capture says, and records what it accepts."""

    def __init__(self, capture: SmtpCapture) -> None:
        self.capture = capture

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.capture.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.capture.fail_mail_from:
            return self.capture.fail_mail_from
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        refusal = self.capture.fail_rcpt_with or self.capture.refuse_recipients.get(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.capture.fail_data_with:
            return self.capture.fail_data_with
        await asyncio.sleep(self.capture.data_seconds)
        assert envelope.mail_from is not None and envelope.original_content is not None
        self.capture.messages.append(Captured(
            envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
            session.peer))
        return "250 2.0.0 Message accepted"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        given = (auth_data.login, auth_data.password) if isinstance(
            auth_data, LoginPassword) else None
        wanted = self.capture.auth and tuple(part.encode() for part in self.capture.auth)
        return AuthResult(success=given == wanted, handled=False)  # a failure answers 535


class SmtpCapture(Server):
    """An aiosmtpd server on 127.0.0.1 that keeps what it accepts in ``messages``.

    Refusals per stage, each a reply like "451 4.3.0 try later", settable while it runs:
    ``fail_mail_from`` answers MAIL FROM, ``fail_rcpt_with`` every RCPT TO,
    ``refuse_recipients`` ({address: reply}) those RCPT TOs only, and ``fail_data_with``
    (also named ``fail_with``) the end of DATA, so nothing is recorded.
    ``starttls=True`` offers (and requires) STARTTLS with a self-signed cert (``ca_file``);
    ``auth=(user, password)`` makes MAIL FROM need AUTH first (after STARTTLS when TLS is on).
    ``smtputf8=False`` stops offering SMTPUTF8.
    """

    def __init__(self, *, starttls: bool = False, auth: tuple[str, str] | None = None,
                 fail_with: str | None = None, fail_mail_from: str | None = None,
                 fail_rcpt_with: str | None = None,
                 refuse_recipients: dict[str, str] | None = None, smtputf8: bool = True) -> None:
        self.host, self.port = HOST, free_port()
        self.starttls, self.auth, self.smtputf8 = starttls, auth, smtputf8
        self.fail_mail_from, self.fail_rcpt_with = fail_mail_from, fail_rcpt_with
        self.refuse_recipients: dict[str, str] = dict(refuse_recipients or {})
        self.fail_data_with = fail_with
        self.data_seconds = 0.0  # how long each end of DATA waits for its answer: a slow relay
        self.messages: list[Captured] = []
        self.ca_file: Path | None = None
        self._root: Path | None = None
        self._controller: Controller | None = None

    @property
    def fail_with(self) -> str | None:
        """The reply to the end of DATA instead of accepting: ``fail_data_with``."""
        return self.fail_data_with

    @fail_with.setter
    def fail_with(self, reply: str | None) -> None:
        self.fail_data_with = reply

    def start(self) -> None:
        recorder = _Recorder(self)
        options: dict[str, Any] = {"enable_SMTPUTF8": self.smtputf8}
        if self.starttls:
            options.update(tls_context=self._tls_context(), require_starttls=True)
        if self.auth is not None:
            # AUTH is enforced in handle_MAIL: aiosmtpd's auth_required without TLS warns.
            options.update(authenticator=recorder.authenticate, auth_require_tls=self.starttls)
        self._controller = Controller(recorder, hostname=self.host, port=self.port,
                                      server_hostname="smtp.test.localhost", **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's self-signed certificate."""
        if self.ca_file is None:
            raise RuntimeError("this SmtpCapture has no TLS (pass starttls=True)")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Captured]:
        """Poll until at least ``count`` messages arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                got = [(m.mail_from, m.rcpt_tos, m.message["Subject"]) for m in self.messages]
                raise AssertionError(f"expected {count} message(s) within {timeout}s, "
                                     f"got {len(got)}: {got}")
            time.sleep(0.01)
        return list(self.messages)

    def _tls_context(self) -> ssl.SSLContext:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="mailroom-smtp-", dir="/tmp"))
        cert, key = make_cert(self._root)
        self.ca_file = cert
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context
