"""What the bulk wrappers share: Django's originals, and diffing rows.

:mod:`signaltrail.bulk` wraps ``QuerySet.update()``, ``bulk_create()``,
``bulk_update()`` and ``Collector.delete()``; the wrappers (there and in
:mod:`signaltrail.bulk_writes`) call the originals kept here, skip the rows
Django's own ``bulk_update()`` passes to ``update()`` (:func:`_suppressed`),
and compare old and new values of many rows at once (:func:`_diff`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from django.db import connections, models
from django.db.models import F, Lookup
from django.db.models.query import QuerySet

from . import canonical
from .compare import same_value
from .pause import count_skipped, is_paused
from .registry import FieldPlan, TrackOptions, registry
from .serialization import _plain
from .writer import Entry, write_streamed

_inside: ContextVar[bool] = ContextVar("signaltrail_bulk_inside", default=False)
_original: dict[str, Any] = {}


@contextlib.contextmanager
def _suppressed() -> Iterator[None]:
    """Django's bulk_update() calls update(): don't record those rows twice."""
    token = _inside.set(True)
    try:
        yield
    finally:
        _inside.reset(token)


def _options(qs: QuerySet) -> TrackOptions | None:
    if _inside.get():
        return None
    return registry.options_for(qs.model)


def _plans_for(opts: TrackOptions, names: Any) -> list[FieldPlan]:
    names = set(names)
    return [p for p in opts.fields if p.name in names or p.attname in names]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Values _plain (the serializer of most fields) records as they are.
_AS_IS = frozenset({int, str, bool, type(None)})

# One recorded field, as the per-row loops use it: (name, attname, plan,
# recorded as is when unmasked and of an _AS_IS type, compared with ==
# when both values have the same type - any field but a JSONField).
Spec = tuple[str, str, FieldPlan, bool, bool]


def _specs(plans: Sequence[FieldPlan]) -> list[Spec]:
    return [
        (
            p.name,
            p.attname,
            p,
            p.serialize is _plain and not p.masked,
            not isinstance(p.field, models.JSONField),
        )
        for p in plans
    ]


def _diff(specs: list[Spec], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``{name: [old, new]}`` for the fields in ``new`` whose value changed."""
    present = [spec for spec in specs if spec[1] in new]
    found = _diff_values(
        present, None, [old.get(spec[1]) for spec in present], [new[spec[1]] for spec in present]
    )
    return {} if found is None else found[0] or {}


def _diff_values(
    specs: list[Spec],
    encode: canonical.PairsEncoder | None,
    old: Sequence[Any],
    new: Sequence[Any],
) -> tuple[dict[str, Any] | None, tuple[str, str] | None] | None:
    """The changes of one row given as old and new values in ``specs``' order.

    None when nothing changed; else ``(changes, None)``, or, when every field
    changed and ``encode`` (``canonical.pairs_encoder`` of the specs' names)
    writes their values, ``(None, (canonical text, JSON))``: the common row
    of a ``QuerySet.update()``, which then builds no dict of pairs at all.

    What ``compare.same_value`` decides, with its common case inlined: two
    values of the same type (outside a JSONField) are the same when ``==``
    says so.
    """
    recorded: list[Any] = []
    names: list[str] = []
    try:
        for (name, _, plan, as_is, by_eq), previous, value in zip(specs, old, new, strict=True):
            if by_eq and type(previous) is type(value):
                if previous == value:
                    continue
            else:
                same, value = same_value(plan.field, previous, value)
                if same:
                    continue
            if as_is:
                recorded.append(previous if type(previous) in _AS_IS else plan.record(previous))
                recorded.append(value if type(value) in _AS_IS else plan.record(value))
            else:
                recorded.append(plan.record(previous))
                recorded.append(plan.record(value))
            names.append(name)
    except Exception:  # an odd __eq__: same_value copes with it
        attnames = [spec[1] for spec in specs]
        changes = _diff_slowly(
            specs, dict(zip(attnames, old, strict=True)), dict(zip(attnames, new, strict=True))
        )
        return (changes, None) if changes else None
    if not names:
        return None
    if encode is not None and len(names) == len(specs):
        encoded = encode(recorded)
        if encoded is not None:
            return None, encoded
    return canonical.pairs_dict(names, recorded), None


def _diff_slowly(specs: list[Spec], old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    changes = {}
    for name, attname, plan, _, _ in specs:
        if attname not in new:
            continue
        previous = old.get(attname)
        same, value = same_value(plan.field, previous, new[attname])
        if not same:
            changes[name] = [plan.record(previous), plan.record(value)]
    return changes


class _AnyOf(Lookup):
    """``column = ANY(%s)``: one array parameter where ``pk__in`` has one per pk.

    PostgreSQL parses and plans ``IN`` with thousands of literals markedly
    slower (a 2,000-row ``UPDATE ... RETURNING`` took 15.7 ms with ``IN``,
    9.9 ms with ``ANY``), and psycopg quotes one array instead of thousands
    of parameters. Used directly as a filter expression, never registered.
    """

    lookup_name = "signaltrail_any_of"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = compiler.compile(self.lhs)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection, prepared=False) for v in self.rhs]
        return f"{lhs} = ANY(%s)", [*lhs_params, values]


def by_pks(qs: QuerySet, pks: Sequence[Any]) -> QuerySet:
    """``qs.filter(pk__in=pks)``, as one array parameter on PostgreSQL."""
    meta = qs.model._meta
    if connections[qs.db].vendor == "postgresql" and not isinstance(
        meta.pk, models.CompositePrimaryKey
    ):
        return qs.filter(_AnyOf(F("pk"), list(pks)))
    return qs.filter(pk__in=pks)


def locked(qs: QuerySet) -> QuerySet:
    """``qs`` locking the rows it reads, where the database locks rows.

    For the old values the bulk paths read before they write (inside their
    transaction): a transaction changing one of those rows meanwhile waits,
    so an event's old value is the one its write replaced. ``FOR NO KEY
    UPDATE`` on PostgreSQL (the lock its UPDATE takes), ``FOR UPDATE`` on
    MySQL/MariaDB; SQLite locks the whole database for a write.
    """
    features = connections[qs.db].features
    if not features.has_select_for_update:
        return qs
    return qs.select_for_update(no_key=features.has_select_for_no_key_update)


def _values(
    model: type[models.Model], using: str, pks: Sequence[Any], attnames: list[str]
) -> dict[Any, dict[str, Any]]:
    rows = locked(by_pks(model._base_manager.using(using), pks)).values_list("pk", *attnames)
    return {row[0]: dict(zip(attnames, row[1:], strict=True)) for row in rows}


def _record(using: str, model: type[models.Model], entries: Iterable[Entry], most: int) -> None:
    """Insert one batch's events of ``model``, at most ``most``.

    ``entries`` may be a generator: the writer builds them while it sends
    them where it can (:func:`signaltrail.writer.write_streamed`), so it
    must compute them from values already fetched, without a query.
    """
    if is_paused():
        skipped = sum(1 for _ in entries)
        if skipped:
            count_skipped(model, skipped, using=using)
        return
    write_streamed(using, model, entries, most)
