"""The measured operations; imported by the worker once Django is configured.

Each workload has a ``prepare`` step (not timed) that builds the rows it
needs from a clean state, and a ``run`` step (timed) that returns how many
rows it affected. Every workload starts from empty Product and audit tables
for every contender, so no package pays for a bigger history table than
another; the seeded event table for the query workloads lives on its own
database alias ("trail").
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from benchproject.benchapp.models import Category, Product, Tag
from django.apps import apps
from django.db import connections, transaction
from django.db.models import F, Model
from django.dispatch import Signal
from spec import MICRO_BATCH

PRICE = Decimal("19.99")


def audit_tables(contender: str) -> list[str]:
    """The tables a contender writes its audit rows to (all counted as events)."""
    core = {Category, Product, Tag, Product.tags.through}
    config = apps.get_app_config("benchapp")
    models = config.get_models(include_auto_created=True)
    tables = [m._meta.db_table for m in models if m not in core]
    if contender == "signaltrail":
        from signaltrail.models import Event

        tables.append(Event._meta.db_table)
    elif contender == "auditlog":
        from auditlog.models import LogEntry

        tables.append(LogEntry._meta.db_table)
    return tables


class Bench:
    """Runs workloads on the "default" alias and counts audit rows."""

    def __init__(self, contender: str, sizes: dict[str, int]) -> None:
        self.contender = contender
        self.sizes = sizes
        self.audit = audit_tables(contender)
        self.connection = connections["default"]
        self.categories: list[Category] = []
        self.tags: list[Tag] = []

    # -- state ------------------------------------------------------------------

    def count_events(self) -> int:
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            total = 0
            for table in self.audit:
                cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")
                total += cursor.fetchone()[0]
        return total

    def reset(self) -> None:
        """Empty the Product and audit tables, then add categories and tags."""
        quote = self.connection.ops.quote_name
        tables = [
            Product.tags.through._meta.db_table,
            Product._meta.db_table,
            Category._meta.db_table,
            Tag._meta.db_table,
            *self.audit,
        ]
        with self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(quote(t) for t in tables)} CASCADE")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {quote(table)}")
        self.categories = Category.objects.bulk_create(
            [Category(name=f"category {i}") for i in range(10)]
        )
        self.tags = Tag.objects.bulk_create([Tag(name=f"tag {i}") for i in range(20)])

    def new_products(self, n: int, prefix: str) -> list[Product]:
        cats = self.categories
        return [
            Product(name=f"{prefix} {i}", price=PRICE, stock=100, category=cats[i % len(cats)])
            for i in range(n)
        ]

    def make_products(self, n: int) -> list[int]:
        """Insert ``n`` products (not timed) and return their pks."""
        created = Product.objects.bulk_create(self.new_products(n, "seed"), batch_size=2000)
        return [p.pk for p in created]

    # -- measuring --------------------------------------------------------------

    def measure(self, name: str) -> dict[str, Any]:
        prepare, run, unit = WORKLOADS[name]
        self.reset()
        state = prepare(self)
        before = self.count_events()
        gc.collect()
        start = time.perf_counter()
        rows = run(self, state)
        seconds = time.perf_counter() - start
        events = self.count_events() - before
        ops = self.sizes[unit] if unit != "rows" else 1
        micro = None
        if isinstance(rows, dict):  # a micro workload: its samples, timed by itself
            micro, rows = rows, 0
        result = {"seconds": seconds, "ops": ops, "rows": rows, "events": events}
        if micro is not None:
            result["micro"] = micro
        return result


# -- single operations (ops of them, each in autocommit unless said) ------------


def prep_none(b: Bench) -> Any:
    return None


def run_create(b: Bench, state: Any) -> int:
    cats = b.categories
    n = b.sizes["ops"]
    for i in range(n):
        Product.objects.create(
            name=f"create {i}", price=PRICE, stock=100, category=cats[i % len(cats)]
        )
    return n


def prep_pks(b: Bench) -> list[int]:
    return b.make_products(b.sizes["ops"])


def _load_change_save(pks: list[int]) -> int:
    for pk in pks:
        product = Product.objects.get(pk=pk)
        product.price += 1
        product.stock -= 1
        product.save()
    return len(pks)


def run_save(b: Bench, pks: list[int]) -> int:
    return _load_change_save(pks)


def run_save_txn(b: Bench, pks: list[int]) -> int:
    with transaction.atomic():
        return _load_change_save(pks)


def prep_loaded(b: Bench) -> list[Product]:
    b.make_products(b.sizes["ops"])
    return list(Product.objects.order_by("pk"))


def run_delete(b: Bench, products: list[Product]) -> int:
    for product in products:
        product.delete()
    return len(products)


def run_m2m_add(b: Bench, products: list[Product]) -> int:
    tags = b.tags
    for i, product in enumerate(products):
        product.tags.add(tags[i % len(tags)])
    return len(products)


# -- bulk operations (one call over rows rows) -----------------------------------


def prep_new(b: Bench) -> list[Product]:
    return b.new_products(b.sizes["rows"], "bulk")


def run_bulk_create(b: Bench, products: list[Product]) -> int:
    return len(Product.objects.bulk_create(products))


def prep_rows(b: Bench) -> None:
    b.make_products(b.sizes["rows"])


def run_qs_update(b: Bench, state: Any) -> int:
    return Product.objects.update(stock=F("stock") + 1)


def prep_changed(b: Bench) -> list[Product]:
    b.make_products(b.sizes["rows"])
    products = list(Product.objects.all())
    for product in products:
        product.price += 1
    return products


def run_bulk_update(b: Bench, products: list[Product]) -> int:
    return Product.objects.bulk_update(products, ["price"])


def run_read(b: Bench, state: Any) -> int:
    return len(list(Product.objects.all()))


# -- queries on the seeded trail (signaltrail only) ---------------------------


def prep_trail_objects(b: Bench) -> list[Product]:
    """Unsaved Products on the "trail" alias, whose pks have seeded events."""
    from seed import objects_per_model

    per_model = objects_per_model(b.sizes["events"])
    products = []
    for i in range(b.sizes["queries"]):
        product = Product(pk=1 + (i * 7919) % per_model)
        product._state.db = "trail"
        products.append(product)
    return products


def run_event_history(b: Bench, products: list[Product]) -> int:
    from signaltrail import history

    found = 0
    for product in products:
        found += len(list(history(product)))
    if not found:
        raise RuntimeError("history() found no seeded events")
    return len(products)


def run_event_latest(b: Bench, state: Any) -> int:
    from signaltrail.models import Event

    n = b.sizes["queries"]
    for _ in range(n):
        events = list(Event.objects.using("trail").for_model(Product).newest_first()[:50])
    if len(events) != min(50, b.sizes["events"]):
        raise RuntimeError(f"expected 50 events, got {len(events)}")
    return n


# -- tracing off (signaltrail only): the dispatch hook's cost outside any block ----
#
# trace() and muted() hook Signal._live_receivers while a block's scope is
# reachable, and give Django its own method back after the last one. This
# measures what dispatch costs outside any block in three states, alternating
# batch by batch in one process so they share the machine's every slow moment:
#   "before":    Django's own method, as before any block ever ran;
#   "after":     whatever is in place once trace() and muted() blocks have run
#                and ended (the claim: nothing is left behind);
#   "elsewhere": another thread is inside a muted() block right now, so the hook
#                is installed and this thread, outside any block, pays for it.
# Saves run in one transaction, as commits (an fsync each) would bury a
# difference of nanoseconds.

bench_signal = Signal()


def _receiver_1(sender: Any, **kwargs: Any) -> None:
    return None


def _receiver_2(sender: Any, **kwargs: Any) -> None:
    return None


def _receiver_3(sender: Any, **kwargs: Any) -> None:
    return None


def _receiver_4(sender: Any, **kwargs: Any) -> None:
    return None


def _receiver_5(sender: Any, **kwargs: Any) -> None:
    return None


for _receiver in (_receiver_1, _receiver_2, _receiver_3, _receiver_4, _receiver_5):
    bench_signal.connect(_receiver)


class _Sender:
    pass


def _sends(n: int, category: Category) -> None:
    send = bench_signal.send
    for _ in range(n):
        send(sender=_Sender, value=1)


def _saves(n: int, category: Category) -> None:
    for _ in range(n):
        category.save()


class _BlockHolder:
    """A thread that enters and leaves a muted() block on request."""

    def __init__(self) -> None:
        self.want_open = threading.Event()
        self.want_closed = threading.Event()
        self.opened = threading.Event()
        self.closed = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from signaltrail import muted

        other = Signal()
        while True:
            self.want_open.wait()
            self.want_open.clear()
            if self.stop:
                return
            with muted(other):
                self.opened.set()
                self.want_closed.wait()
                self.want_closed.clear()
            self.closed.set()

    def open(self) -> None:
        self.opened.clear()
        self.want_open.set()
        if not self.opened.wait(30):
            raise RuntimeError("the block-holding thread did not answer")

    def close(self) -> None:
        self.closed.clear()
        self.want_closed.set()
        if not self.closed.wait(30):
            raise RuntimeError("the block-holding thread did not answer")

    def shut(self) -> None:
        self.stop = True
        self.want_open.set()
        self.thread.join(30)


def prep_trace_off(b: Bench) -> tuple[Any, Category]:
    from signaltrail import muted, trace

    if Signal.__dict__["_live_receivers"].__module__ != "django.dispatch.dispatcher":
        raise RuntimeError("Signal._live_receivers is not Django's own before any block")
    before = Signal.__dict__["_live_receivers"]
    with trace(), muted(bench_signal):  # what a project's blocks do
        bench_signal.send(sender=_Sender)
    gc.collect()
    if len(bench_signal.send(sender=_Sender)) != 5:
        raise RuntimeError("the bench signal should have 5 receivers")
    return before, b.categories[0]  # Category: not tracked by signaltrail


def run_trace_off(b: Bench, state: tuple[Any, Category]) -> dict[str, Any]:
    """ns per operation of each batch, per state; index i of every list is one round."""
    before, category = state
    after = Signal.__dict__["_live_receivers"]
    holder = _BlockHolder()
    samples: dict[str, dict[str, list[float]]] = {}
    orders = [("before", "after", "elsewhere"), ("after", "elsewhere", "before"),
              ("elsewhere", "before", "after")]  # fmt: skip
    try:
        for op, step in (("send", _sends), ("save", _saves)):
            n = MICRO_BATCH[op]
            per = samples[op] = {"before": [], "after": [], "elsewhere": []}
            with transaction.atomic():
                step(n, category)  # warm: caches, the connection, the statement
                for i in range(b.sizes["pairs"]):
                    # Rotate which state goes first, so none always runs right
                    # after a (cache-warming) batch of another.
                    for variant in orders[i % 3]:
                        if variant == "before":
                            Signal._live_receivers = before  # type: ignore[method-assign]
                        elif variant == "elsewhere":
                            holder.open()
                        start = time.perf_counter_ns()
                        step(n, category)
                        per[variant].append((time.perf_counter_ns() - start) / n)
                        if variant == "before":
                            Signal._live_receivers = after  # type: ignore[method-assign]
                        elif variant == "elsewhere":
                            holder.close()
    finally:
        Signal._live_receivers = after  # type: ignore[method-assign]
        holder.shut()
    return {"restored": after is before, "ops": samples}


# Reading: the one thing signaltrail does on a read is its wrapper of the
# tracked model's from_db (it keeps the loaded row). Across processes, list(qs)
# varies by several percent whatever the package (those that do nothing on
# reads show it too), which hides a difference of that size; here the same
# process reads the same rows with Django's own from_db and with the wrapper,
# in alternating rounds.


def run_read_hook(b: Bench, state: Any) -> dict[str, Any]:
    """ns per row loaded, per variant; index i of both lists is one round."""
    hooked = Product.__dict__["from_db"]
    if not getattr(hooked.__func__, "_signaltrail", False):
        raise RuntimeError("Product.from_db is not signaltrail's wrapper")
    variants = {"django": classmethod(Model.from_db.__func__), "signaltrail": hooked}
    rows = b.sizes["rows"]
    per: dict[str, list[float]] = {"django": [], "signaltrail": []}
    try:
        len(list(Product.objects.all()))  # warm: the connection, the statement, the caches
        for i in range(b.sizes["pairs"]):
            for variant in ("django", "signaltrail") if i % 2 == 0 else ("signaltrail", "django"):
                Product.from_db = variants[variant]  # type: ignore[method-assign]
                gc.collect()
                start = time.perf_counter_ns()
                loaded = len(list(Product.objects.all()))
                per[variant].append((time.perf_counter_ns() - start) / rows)
                if loaded != rows:
                    raise RuntimeError(f"read {loaded} rows, expected {rows}")
    finally:
        Product.from_db = hooked  # type: ignore[method-assign]
    return {"ops": {"read": per}}


Step = Callable[[Bench], Any]
# name -> (prepare, run, unit of "ops": "ops", "rows" (one call) or "queries")
WORKLOADS: dict[str, tuple[Step, Callable[[Bench, Any], int], str]] = {
    "create": (prep_none, run_create, "ops"),
    "save": (prep_pks, run_save, "ops"),
    "save_txn": (prep_pks, run_save_txn, "ops"),
    "delete": (prep_loaded, run_delete, "ops"),
    "m2m_add": (prep_loaded, run_m2m_add, "ops"),
    "bulk_create": (prep_new, run_bulk_create, "rows"),
    "qs_update": (prep_rows, run_qs_update, "rows"),
    "bulk_update": (prep_changed, run_bulk_update, "rows"),
    "read": (prep_rows, run_read, "rows"),
    "event_history": (prep_trail_objects, run_event_history, "queries"),
    "event_latest": (prep_none, run_event_latest, "queries"),
    "read_hook": (prep_rows, run_read_hook, "pairs"),
    "trace_off": (prep_trace_off, run_trace_off, "pairs"),
}
