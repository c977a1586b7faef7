"""What the benchmark compares and measures: contenders, workloads, sizes.

Imported by the orchestrator (run.py), by the bench settings and by the
worker, so it must not import Django: the orchestrator never configures it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Contender:
    """One way of auditing the Product model (or none at all)."""

    name: str
    apps: tuple[str, ...]  # added to INSTALLED_APPS
    modules: tuple[str, ...]  # must be importable
    dist: str | None  # distribution whose version is reported
    postgres_only: bool = False

    def missing(self) -> str | None:
        """Why this contender cannot run in this environment, or None."""
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return (
                    f"{module} is not installed (install the bench group: "
                    f".venv/bin/pip install -e . --group bench)"
                )
        return None

    def version(self) -> str:
        if self.dist is None:
            return "-"
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"


CONTENDERS = {
    c.name: c
    for c in (
        Contender("none", (), (), "Django"),
        Contender("signaltrail", ("signaltrail",), ("signaltrail",), "django-signaltrail"),
        Contender("auditlog", ("auditlog",), ("auditlog",), "django-auditlog"),
        Contender(
            "simple_history", ("simple_history",), ("simple_history",), "django-simple-history"
        ),
        Contender(
            "pghistory",
            ("pgtrigger", "pghistory"),
            ("pgtrigger", "pghistory", "psycopg"),
            "django-pghistory",
            postgres_only=True,
        ),
    )
}

# Accepted spellings on the command line.
ALIASES = {
    "django-auditlog": "auditlog",
    "simple-history": "simple_history",
    "django-simple-history": "simple_history",
    "django-pghistory": "pghistory",
    "django-signaltrail": "signaltrail",
}


@dataclass(frozen=True)
class Workload:
    """One measured operation.

    ``kind`` says what one timed "op" is: "single" ops are repeated ``ops``
    times and reported per op; a "bulk" op is one call over ``rows`` rows;
    "query" workloads read the seeded event table (signaltrail only);
    "micro" workloads compare variants inside one signaltrail worker, in
    rotating rounds, ``pairs`` times (their own table and targets).
    """

    name: str
    label: str
    kind: str
    write: bool

    @property
    def signaltrail_only(self) -> bool:
        return self.kind in ("query", "micro")


WORKLOADS = {
    w.name: w
    for w in (
        Workload("create", "create() in autocommit", "single", True),
        Workload("save", "load-change-save() in autocommit", "single", True),
        Workload("save_txn", "load-change-save() x N in one transaction", "single", True),
        Workload("delete", "delete() in autocommit", "single", True),
        Workload("m2m_add", "tags.add() in autocommit", "single", True),
        Workload("bulk_create", "bulk_create(N rows)", "bulk", True),
        Workload("qs_update", "QuerySet.update(F() + 1) over N rows", "bulk", True),
        Workload("bulk_update", "bulk_update(N rows)", "bulk", True),
        Workload("read", "list(qs) of N rows", "bulk", False),
        Workload("event_history", "history(obj) on the seeded trail", "query", False),
        Workload("event_latest", "newest 50 events of one model", "query", False),
        Workload(
            "read_hook",
            "list(qs) of N rows: signaltrail's from_db hook vs Django's own, one process",
            "micro",
            False,
        ),
        Workload(
            "trace_off",
            "tracing off: dispatch before, after and beside trace()/muted() blocks",
            "micro",
            False,
        ),
    )
}

# Sizes at --scale 1, and the least any scale may shrink them to.
# "pairs": rounds of a "micro" workload, each one batch of MICRO_BATCH
# operations per variant.
BASE_SIZES = {"ops": 1000, "rows": 10_000, "events": 1_000_000, "queries": 500, "pairs": 200}
MIN_SIZES = {"ops": 1, "rows": 10, "events": 1000, "queries": 1, "pairs": 3}
# Operations per timed batch of a micro workload: long enough for the clock, short
# enough that a busy moment of the machine rarely spans a whole batch.
MICRO_BATCH = {"send": 1000, "save": 50, "read": 1}  # read: one list(qs) of N rows


def sizes(scale: float, events: int | None = None) -> dict[str, int]:
    """The sizes used at ``scale``; ``events`` overrides the seeded trail size."""
    out = {k: max(MIN_SIZES[k], round(v * scale)) for k, v in BASE_SIZES.items()}
    if events is not None:
        out["events"] = events
    return out
