"""A private PostgreSQL cluster on 127.0.0.1 for tests: initdb into a temporary folder."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.servers import HOST, Server, free_port

USER = "mailroom"
TEMPLATE = "mailroom_template"  # migrated to the newest schema once; each test copies it


def binaries() -> Path | None:
    """Debian's PostgreSQL programs (not on PATH there), the newest version installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda path: int(Path(path).parent.parent.name))
    return Path(versions[-1]).parent if versions else None


class Postgres(Server):
    """A cluster of its own: trust authentication, no fsync (a test's data need not survive
    a power cut), a free port, stopped and removed at the end.

    PostgreSQL refuses to run as root: then its programs run as Debian's `postgres` user,
    which owns the folder.
    """

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bin = bin_dir
        self.host, self.port = HOST, free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mailroom-postgres-", dir="/tmp"))
        self.data = self.root / "data"
        self.owner = pwd.getpwnam("postgres") if os.getuid() == 0 else None
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self.names = itertools.count(1)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C")
        options = (f"-p {self.port} -c listen_addresses={self.host} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database of this cluster."""
        return f"postgresql+psycopg://{USER}@{self.host}:{self.port}/{database}"

    def execute(self, statement: str, database: str = "postgres") -> None:
        with psycopg.connect(host=self.host, port=self.port, user=USER, dbname=database,
                             autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def create(self, template: str = "template0") -> str:
        """A new empty database (or a copy of `template`); its URL."""
        name = f"test_{os.getpid()}_{next(self.names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def _run(self, program: str, *arguments: str) -> None:
        user = self.owner.pw_name if self.owner is not None else None
        done = subprocess.run([str(self.bin / program), *arguments], capture_output=True,
                              text=True, user=user, cwd=self.root, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}")
