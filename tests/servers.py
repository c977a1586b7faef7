"""Find or start the PostgreSQL, MariaDB and Redis servers the tests run against.

Importable without Django configured: tests/settings.py calls it while Django is
still reading its settings, and tests of background work call redis_url().

The same rules hold for every kind of server:

1. If its URL env var is set (SIGNALTRAIL_POSTGRES_URL, SIGNALTRAIL_MARIADB_URL,
   SIGNALTRAIL_REDIS_URL), use that server. CI does this.
2. Else start a throw-away server from the installed binaries: data in a new
   temp dir, listening on 127.0.0.1 only, on a free port, so that concurrent runs
   never share anything. It is stopped and its dir removed when this process ends,
   however it ends (see _start_reaper).
3. Else say why not; the caller skips what needs the server.

SIGNALTRAIL_TEST_NO_SERVERS=1 turns step 2 off, as if no binaries were installed.

Each function returns a Found: (value, note). value is None when the server is
unavailable, and note then says why; otherwise note says where the server is.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

START_TIMEOUT = 60  # seconds for a throw-away server to accept connections
STOP_TIMEOUT = 30  # seconds for it to stop before it is killed


class Found(NamedTuple):
    value: Any  # a DATABASES entry or a URL; None if unavailable
    note: str  # where the server is, or why there is none


class ServerError(Exception):
    """A throw-away server could not be started."""


# -- public API ---------------------------------------------------------------


@functools.cache
def postgres() -> Found:
    """A DATABASES entry (without NAME) for a PostgreSQL server."""
    if url := os.environ.get("SIGNALTRAIL_POSTGRES_URL"):
        return _from_url(url, "SIGNALTRAIL_POSTGRES_URL")
    if reason := _no_throwaway("SIGNALTRAIL_POSTGRES_URL"):
        return Found(None, reason)
    bindir = _postgres_bindir()
    if bindir is None:
        return Found(
            None, "no SIGNALTRAIL_POSTGRES_URL and no PostgreSQL binaries (initdb, pg_ctl)"
        )
    try:
        return _start_postgres(bindir)
    except (ServerError, OSError, subprocess.SubprocessError) as exc:
        return Found(None, f"could not start a throw-away PostgreSQL: {exc}")


@functools.cache
def mariadb() -> Found:
    """A DATABASES entry (without NAME) for a MariaDB server."""
    if url := os.environ.get("SIGNALTRAIL_MARIADB_URL"):
        return _from_url(url, "SIGNALTRAIL_MARIADB_URL")
    if reason := _no_throwaway("SIGNALTRAIL_MARIADB_URL"):
        return Found(None, reason)
    mariadbd = _which("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
    install_db = _which("mariadb-install-db", "mysql_install_db")
    if mariadbd is None or install_db is None:
        return Found(None, "no SIGNALTRAIL_MARIADB_URL and no MariaDB binaries (mariadbd)")
    try:
        return _start_mariadb(mariadbd, install_db)
    except (ServerError, OSError, subprocess.SubprocessError) as exc:
        return Found(None, f"could not start a throw-away MariaDB: {exc}")


@functools.cache
def redis_url() -> Found:
    """A redis:// URL for a Redis server (one per process, started on first use)."""
    if url := os.environ.get("SIGNALTRAIL_REDIS_URL"):
        return Found(url, f"{url} (from SIGNALTRAIL_REDIS_URL)")
    if reason := _no_throwaway("SIGNALTRAIL_REDIS_URL"):
        return Found(None, reason)
    redis_server = _which("redis-server")
    if redis_server is None:
        return Found(None, "no SIGNALTRAIL_REDIS_URL and no redis-server binary")
    try:
        return _start_redis(redis_server)
    except (ServerError, OSError, subprocess.SubprocessError) as exc:
        return Found(None, f"could not start a throw-away Redis: {exc}")


# -- configured servers -------------------------------------------------------


def _from_url(url: str, var: str) -> Found:
    try:
        import dj_database_url
    except ImportError:
        return Found(None, f"{var} is set but dj-database-url is not installed")
    config = dj_database_url.parse(url)
    return Found(config, f"{config['HOST']}:{config['PORT']} (from {var})")


def _no_throwaway(var: str) -> str:
    if os.environ.get("SIGNALTRAIL_TEST_NO_SERVERS") == "1":
        return f"no {var}, and throw-away servers are off (SIGNALTRAIL_TEST_NO_SERVERS=1)"
    return ""


# -- throw-away servers -------------------------------------------------------


def _start_postgres(bindir: Path) -> Found:
    # PostgreSQL refuses to run as root, so root runs it as the postgres user.
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerError("running as root and there is no 'postgres' user") from None
        if not shutil.which("runuser"):
            raise ServerError("running as root and there is no runuser")
        as_user = ["runuser", "-u", "postgres", "--"]
    workdir = _workdir("pg", owner)
    data = workdir / "data"
    _start_reaper(workdir, data / "postmaster.pid", signal.SIGINT)  # SIGINT: fast shutdown
    port = _free_port()
    _run(
        [*as_user, bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"],
        workdir / "initdb.log", cwd=workdir,
    )  # fmt: skip
    options = [
        "-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(workdir),
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
    ]  # fmt: skip
    _run(
        [*as_user, bindir / "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT), "-D", data,
         "-l", workdir / "postgres.log", "-o", shlex.join(options)],
        workdir / "pg_ctl.log", cwd=workdir, server_log=workdir / "postgres.log",
    )  # fmt: skip
    version = _output([bindir / "postgres", "--version"]).removeprefix("postgres (PostgreSQL) ")
    version = version.split(" ")[0]
    config = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": port,
        "USER": "postgres",
        "PASSWORD": "",
    }
    return Found(config, f"throw-away PostgreSQL {version} on 127.0.0.1:{port} in {workdir}")


def _start_mariadb(mariadbd: str, install_db: str) -> Found:
    # mariadbd runs as root only when told so; --no-defaults keeps the system my.cnf out.
    user = ["--user=root"] if os.geteuid() == 0 else []
    workdir = _workdir("mariadb")
    data, pidfile, log = workdir / "data", workdir / "mariadbd.pid", workdir / "mariadbd.log"
    _start_reaper(workdir, pidfile, signal.SIGTERM)
    port = _free_port()
    # --skip-name-resolve makes root@127.0.0.1 (empty password), so TCP works.
    _run(
        [install_db, "--no-defaults", f"--datadir={data}", *user, "--skip-test-db",
         "--auth-root-authentication-method=normal", "--skip-name-resolve"],
        workdir / "install.log", cwd=workdir,
    )  # fmt: skip
    command = [
        mariadbd, "--no-defaults", f"--datadir={data}", *user, f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={workdir / 'mariadbd.sock'}",
        f"--pid-file={pidfile}", f"--log-error={log}", "--skip-name-resolve",
        "--skip-log-bin", "--innodb-buffer-pool-size=64M",
        "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0",
        "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
    ]  # fmt: skip
    _spawn(command, log, workdir, port)
    version = _output([mariadbd, "--version"]).split(" Ver ", 1)[-1].split()[0]
    config = {
        "ENGINE": "django.db.backends.mysql",
        "HOST": "127.0.0.1",
        "PORT": port,
        "USER": "root",
        "PASSWORD": "",
    }
    return Found(config, f"throw-away MariaDB {version} on 127.0.0.1:{port} in {workdir}")


def _start_redis(redis_server: str) -> Found:
    workdir = _workdir("redis")
    pidfile, log = workdir / "redis.pid", workdir / "redis.log"
    _start_reaper(workdir, pidfile, signal.SIGTERM)
    port = _free_port()
    command = [
        redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
        "--appendonly", "no", "--dir", workdir, "--pidfile", pidfile, "--logfile", log,
    ]  # fmt: skip
    _spawn(command, log, workdir, port)
    url = f"redis://127.0.0.1:{port}/0"
    return Found(url, f"throw-away Redis on {url} in {workdir}")


# -- helpers ------------------------------------------------------------------


def _which(*names: str) -> str | None:
    for name in names:
        if found := shutil.which(name):
            return found
    return None


def _postgres_bindir() -> Path | None:
    """The bin dir with initdb and pg_ctl: from PATH, else Debian's newest version."""
    if pg_ctl := shutil.which("pg_ctl"):
        candidates = [Path(pg_ctl).resolve().parent]
    else:
        found = glob.glob("/usr/lib/postgresql/*/bin")
        candidates = [Path(p) for p in sorted(found, key=_version_key, reverse=True)]
    for bindir in candidates:
        if all((bindir / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _version_key(path: str) -> tuple[int, ...]:
    number = Path(path).parent.name
    return tuple(int(part) for part in number.split(".") if part.isdigit())


def _workdir(kind: str, owner: pwd.struct_passwd | None = None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"signaltrail-{kind}-{os.getpid()}-"))
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[Any], log: Path, cwd: Path, server_log: Path | None = None) -> None:
    """Run a set-up command; on failure raise with the end of its (or the server's) log."""
    with open(log, "ab") as out:
        result = subprocess.run(
            [str(part) for part in command],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, timeout=START_TIMEOUT,
        )  # fmt: skip
    if result.returncode != 0:
        raise ServerError(f"{Path(str(command[0])).name} failed: {_tail(server_log or log)}")


def _output(command: list[Any]) -> str:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False
    ).stdout.strip()


def _spawn(command: list[Any], log: Path, cwd: Path, port: int) -> None:
    """Start a server in the background and wait until it accepts connections.

    Its own session keeps Ctrl-C away from it: the reaper stops it.
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(part) for part in command],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"server exited: {_tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise ServerError(f"no connection on port {port} after {START_TIMEOUT}s: {_tail(log)}")


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


# -- clean-up -----------------------------------------------------------------


def _start_reaper(workdir: Path, pidfile: Path, signum: int) -> None:
    """Stop the server and remove workdir once this process ends, however it ends.

    A helper process waits for end-of-file on a pipe that only this process holds.
    The pipe closes on a normal exit, an exception, a signal or even SIGKILL, so
    an interrupted run does not leave servers and temp dirs behind. The helper
    runs in its own session so that Ctrl-C does not stop it before it is done.
    It is started before the server, so a failed start-up is cleaned up too.
    """
    reaper = subprocess.Popen(
        [sys.executable, "-I", __file__, "reap", str(workdir), str(pidfile), str(int(signum))],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip

    def finish() -> None:  # on a normal exit, wait until it is done
        reaper.stdin.close()
        try:
            reaper.wait(timeout=STOP_TIMEOUT + 15)
        except subprocess.TimeoutExpired:
            print(f"signaltrail tests: {workdir} is still being cleaned up", file=sys.stderr)

    atexit.register(finish)


def _reap(workdir: str, pidfile: str, signum: str) -> None:
    sys.stdin.buffer.read()  # returns when the test process closed the pipe or died
    pid = _read_pid(Path(pidfile))
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, int(signum))
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(workdir, ignore_errors=True)


def _read_pid(pidfile: Path) -> int | None:
    """The server's pid; waits a little in case the server is still starting."""
    deadline = time.monotonic() + 3
    while True:
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie (an exited child not yet waited for) is not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


if __name__ == "__main__":
    if sys.argv[1:2] == ["reap"]:
        _reap(*sys.argv[2:])
