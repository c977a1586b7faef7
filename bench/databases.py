"""The databases the workers run on: one of its own per contender, same engine.

SQLite: a file per contender in a temp dir (Django's defaults: rollback
journal, no WAL). PostgreSQL: the server at SIGNALTRAIL_POSTGRES_URL if set,
else a throw-away server started here from the installed binaries (initdb and
pg_ctl, run as the ``postgres`` user when we are root), with PostgreSQL's
default settings, on 127.0.0.1 and a free port, in a temp dir. On either
server the bench creates databases of its own and drops them at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class Unavailable(Exception):
    """This database cannot be used here; the message says why."""


class SQLiteDatabases:
    kind = "sqlite"

    def __init__(self) -> None:
        import sqlite3

        self.dir = Path(tempfile.mkdtemp(prefix="signaltrail-bench-sqlite-"))
        self.note = f"SQLite {sqlite3.sqlite_version}, a temp file each, default settings (no WAL)"

    def databases_for(self, contender: str, trail: bool) -> dict[str, Any]:
        names = {"default": contender, **({"trail": f"{contender}-trail"} if trail else {})}
        return {
            alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(self.dir / f"{n}.sqlite3")}
            for alias, n in names.items()
        }

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresDatabases:
    kind = "postgres"

    def __init__(self) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise Unavailable("psycopg is not installed (install the bench group)") from None
        self.workdir: Path | None = None
        self.stop_command: list[Any] = []
        self.created: list[str] = []
        url = os.environ.get("SIGNALTRAIL_POSTGRES_URL")
        if url:
            self.server, self.admin_db = _parse_url(url)
            where = f"{self.server['HOST']}:{self.server['PORT']}"
            self.note = f"PostgreSQL at {where} (from SIGNALTRAIL_POSTGRES_URL)"
        else:
            self.admin_db = "postgres"
            try:
                self.server = self._start()
            except Exception:
                self.close()
                raise
        self.note = f"{self.note}, {self._version()}"

    # -- throw-away server --------------------------------------------------------

    def _start(self) -> dict[str, Any]:
        bindir = _bindir()
        as_user: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root, and there is no 'postgres' user") from None
            as_user = ["runuser", "-u", "postgres", "--"]
        self.workdir = Path(tempfile.mkdtemp(prefix="signaltrail-bench-pg-"))
        if owner is not None:
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        data, log = self.workdir / "data", self.workdir / "postgres.log"
        port = _free_port()
        _run(
            [
                *as_user,
                bindir / "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            self.workdir,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {shlex.quote(str(self.workdir))}"
        self.stop_command = [*as_user, bindir / "pg_ctl", "stop", "-m", "fast", "-D", data]
        _run(
            [
                *as_user,
                bindir / "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                data,
                "-l",
                log,
                "-o",
                options,
            ],
            self.workdir,
            log,
        )
        self.note = f"throw-away PostgreSQL on 127.0.0.1:{port} (default settings)"
        return {"HOST": "127.0.0.1", "PORT": port, "USER": "postgres", "PASSWORD": ""}

    def _connect(self) -> Any:
        import psycopg

        s = self.server
        return psycopg.connect(
            host=s["HOST"],
            port=s["PORT"],
            user=s["USER"],
            password=s["PASSWORD"],
            dbname=self.admin_db,
            autocommit=True,
        )

    def _version(self) -> str:
        with self._connect() as conn:
            return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]

    # -- databases --------------------------------------------------------------------

    def databases_for(self, contender: str, trail: bool) -> dict[str, Any]:
        token = secrets.token_hex(3)
        out = {}
        for alias in ("default", "trail") if trail else ("default",):
            name = f"bench_{contender}_{alias}_{os.getpid()}_{token}"
            with self._connect() as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            out[alias] = {"ENGINE": "django.db.backends.postgresql", "NAME": name, **self.server}
        return out

    def close(self) -> None:
        try:
            if self.created:
                with self._connect() as conn:
                    for name in self.created:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            if self.stop_command:
                subprocess.run(
                    [str(p) for p in self.stop_command],
                    capture_output=True,
                    cwd=self.workdir,
                    timeout=60,
                    check=False,
                )
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)


def open_databases(kind: str) -> SQLiteDatabases | PostgresDatabases:
    """Raises Unavailable with the reason when ``kind`` cannot be used."""
    if kind == "sqlite":
        return SQLiteDatabases()
    return PostgresDatabases()


def _parse_url(url: str) -> tuple[dict[str, Any], str]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise Unavailable(f"SIGNALTRAIL_POSTGRES_URL is not a postgres:// URL: {url!r}")
    server = {
        "HOST": parts.hostname,
        "PORT": parts.port or 5432,
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
    }
    return server, (parts.path.lstrip("/") or "postgres")


def _bindir() -> Path:
    pg_ctl = shutil.which("pg_ctl")
    found = [Path(pg_ctl).resolve().parent] if pg_ctl else []
    found += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for bindir in found:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise Unavailable("no SIGNALTRAIL_POSTGRES_URL and no PostgreSQL binaries (initdb, pg_ctl)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[Any], cwd: Path, log: Path | None = None) -> None:
    result = subprocess.run(
        [str(p) for p in command], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
    if result.returncode != 0:
        text = result.stdout + result.stderr
        if log is not None and log.exists():
            text += log.read_text(errors="replace")
        tail = " | ".join(text.strip().splitlines()[-4:])
        tool = next(Path(str(p)).name for p in command if str(p).startswith("/"))
        raise Unavailable(f"{tool} failed: {tail}")
