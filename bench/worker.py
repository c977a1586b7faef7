"""One benchmark worker: one contender on one database, driven by bench/run.py.

Django can be configured once per process, and each auditing package needs
its own INSTALLED_APPS and model registration, so run.py starts one worker
per contender and database, with the environment saying which:

    BENCH_CONTENDER   none, signaltrail, auditlog, simple_history or pghistory
    BENCH_DATABASES   the DATABASES dict, as JSON
    BENCH_SIZES       {"ops": ..., "rows": ..., "events": ..., "queries": ...}
    BENCH_WORKLOADS   comma-separated workload names

Protocol, one JSON object per line: the worker sets up (migrate, in a
process of its own; seed; one warm-up pass) and prints {"ready": ...} or
{"error": ...}; then for every line {"cmd": "run", "workload": name} on
stdin it runs that workload once and prints {"result": {"seconds", "ops",
"rows", "events"} or {"error": ...}};
{"cmd": "quit"} or end of input ends it. Anything else the worker or Django
prints goes to stderr, so stdout carries nothing but the protocol.
:class:`Worker` is run.py's handle on one such process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


# -- the orchestrator's side (bench/run.py) ----------------------------------------


class WorkerError(Exception):
    pass


class Worker:
    """A bench/worker.py process for one contender on one database."""

    def __init__(
        self,
        contender: str,
        databases: dict[str, Any],
        sizes: dict[str, int],
        workloads: list[str],
        logdir: Path,
    ) -> None:
        self.contender = contender
        self.log = logdir / f"{contender}.log"
        env = {
            **os.environ,
            "BENCH_CONTENDER": contender,
            "PYTHONUNBUFFERED": "1",
            "BENCH_DATABASES": json.dumps(databases),
            "BENCH_SIZES": json.dumps(sizes),
            "BENCH_WORKLOADS": ",".join(workloads),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(BENCH / "worker.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
                cwd=BENCH,
            )

    def receive(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"worker exited ({self.proc.returncode}): {self.tail()}")
        message = json.loads(line)
        if "error" in message:
            raise WorkerError(f"{message['error']} (log: {self.tail()})")
        return message

    def run(self, workload: str) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"cmd": "run", "workload": workload}) + "\n")
        self.proc.stdin.flush()
        return self.receive()["result"]

    def stop(self, kill: bool = False) -> None:
        """Ask the worker to quit; ``kill`` when interrupted, not to wait for a run."""
        if kill and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:]) or "(empty log)"


# -- the worker's side -------------------------------------------------------------


def _protocol_stream() -> Any:
    """A private copy of stdout for the protocol; fd 1 then points at stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _send(out: Any, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _error(exc: BaseException) -> str:
    traceback.print_exc(file=sys.stderr)
    return f"{type(exc).__name__}: {exc}".strip()[:500]


def _django() -> None:
    """Configure Django for this worker (settings from the environment)."""
    sys.path.insert(0, str(BENCH))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
    import django

    django.setup()


def migrate() -> None:
    """Create every contender's tables (``worker.py --migrate``, a process of its own).

    Not in the measuring process: each model field Django instantiates bumps a
    counter on the ``Field`` class, and on CPython 3.12+ a class changed more
    than about a thousand times between attribute lookups stops using the type
    attribute cache for good - for ``Field`` and every subclass. ``migrate``
    instantiates fields by the thousand (it renders model states), more for
    packages with more migrations, so the processes would be measured with
    and without that cache depending on the contender, not on its code. A
    served project doesn't run ``migrate`` in its web or worker processes.
    """
    _django()
    from django.core.management import call_command
    from django.db import connections

    # Migrated apps first: syncdb (benchapp has no migrations) would otherwise
    # create simple-history's table before the auth_user it points at.
    for alias in connections.databases:
        call_command("migrate", verbosity=0, interactive=False, database=alias)
        call_command("migrate", run_syncdb=True, verbosity=0, interactive=False, database=alias)


def setup(contender: str, sizes: dict[str, int], workloads: list[str]) -> Any:
    subprocess.run(
        [sys.executable, str(BENCH / "worker.py"), "--migrate"],
        check=True,
        cwd=BENCH,
        stdout=sys.stderr,
    )
    _django()
    from django.db import connections

    if contender == "pghistory":
        import pgtrigger

        pgtrigger.install(database="default")
    if "trail" in connections.databases:
        from seed import seed_trail

        seed_trail(sizes["events"])

    from workloads import Bench

    # One small pass first: imports, content-type caches and query plans are
    # then warm for the first measured repetition too.
    warm = Bench(
        contender,
        {
            **sizes,
            "ops": min(sizes["ops"], 5),
            "rows": min(sizes["rows"], 50),
            "queries": min(sizes["queries"], 5),
            "pairs": min(sizes["pairs"], 3),
        },
    )
    for name in workloads:
        try:
            warm.measure(name)
        except Exception:  # reported by the measured runs, workload by workload
            traceback.print_exc(file=sys.stderr)
    warm.reset()
    return Bench(contender, sizes)


def main() -> int:
    out = _protocol_stream()
    contender = os.environ.get("BENCH_CONTENDER", "none")
    try:
        sizes = json.loads(os.environ["BENCH_SIZES"])
        workloads = [w for w in os.environ["BENCH_WORKLOADS"].split(",") if w]
        bench = setup(contender, sizes, workloads)
    except Exception as exc:
        _send(out, {"error": f"setup failed: {_error(exc)}"})
        return 1
    _send(out, {"ready": {"audit_tables": bench.audit}})
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("cmd") != "run":
            break
        try:
            result = bench.measure(command["workload"])
        except Exception as exc:
            result = {"error": _error(exc)}
        _send(out, {"result": result})
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--migrate"]:
        migrate()
        sys.exit(0)
    sys.exit(main())
