"""Whether a ``QuerySet.update()`` may run in batches.

:mod:`signaltrail.bulk` updates a tracked model's rows ``BULK_BATCH_SIZE``
at a time, so that memory stays bounded. Batches are statements one after
the other; Django's UPDATE is one. Where that difference would change which
rows are updated or the values they get, the update runs as one batch.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.models import Q, sql
from django.db.models.expressions import Col, RawSQL
from django.db.models.query import QuerySet
from django.db.models.sql.where import ExtraWhere

from .registry import FieldPlan


def in_one_batch(qs: QuerySet, kwargs: dict[str, Any], plans: list[FieldPlan]) -> bool:
    """Whether ``qs.update(**kwargs)`` must run as one batch to do what Django's does.

    Django's UPDATE is one statement: it finds its rows and computes its
    values from the table as it was before. Batches are statements one after
    the other, each seeing what the previous ones wrote, and each starting
    after the previous batch's greatest pk. That changes the result when:

    - the update changes the primary key: a row moved past the last pk
      would be found, and updated, again;
    - the filter or a value has a subquery over the model's own table that
      reads a column the update writes (an average, a maximum), or the
      filter joins back to that table: a row's fate would depend on rows
      already updated;
    - on MySQL/MariaDB, the update is ordered (``order_by()``, e.g. to shift
      a unique column): the order holds within one statement only.
    """
    written = {p.field for p in plans}
    if any(field.primary_key for field in written):
        return True
    query = qs.query
    if query.order_by and connections[qs.db].vendor == "mysql":
        return True
    meta = qs.model._meta
    tables = {meta.db_table, *(parent._meta.db_table for parent in meta.get_parent_list())}
    own = [alias for alias in query.alias_map.values() if alias.table_name in tables]
    if len(own) > len(tables):  # a join back to the model's table
        return True
    return any(_reads(node, tables, written) for node in (query.where, *kwargs.values()))


def _parts(node: Any) -> list[Any]:
    """What an expression, a filter's tree or a subquery is made of."""
    if isinstance(node, Q):  # unresolved, as in When(): (lookup, value) pairs and Qs
        return [child[1] if isinstance(child, tuple) else child for child in node.children]
    if isinstance(node, QuerySet):
        node = node.query
    if isinstance(node, sql.Query):
        ordering = [o for o in node.order_by if hasattr(o, "get_source_expressions")]
        return [node.where, *node.select, *node.annotations.values(), *ordering]
    if hasattr(node, "get_source_expressions"):
        return [child for child in node.get_source_expressions() if child is not None]
    return []


def _reads(node: Any, tables: set[str], written: set[models.Field]) -> bool:
    """Whether ``node`` holds a subquery over one of ``tables`` reading a ``written`` field.

    SQL of the project's own (``RawSQL``, ``extra(where=...)``) can't be
    looked into: it may, so it counts as one.
    """
    if isinstance(node, (RawSQL, ExtraWhere)):
        return True
    query = node.query if isinstance(node, QuerySet) else node
    if isinstance(query, sql.Query) and _over(query, tables) and _uses(query, written):
        return True
    return any(_reads(part, tables, written) for part in _parts(node))


def _over(query: sql.Query, tables: set[str]) -> bool:
    """Whether ``query`` reads one of ``tables`` (before it is compiled, by its model)."""
    if query.model is not None and query.model._meta.db_table in tables:
        return True
    return any(alias.table_name in tables for alias in query.alias_map.values())


def _uses(node: Any, written: set[models.Field]) -> bool:
    """Whether ``node`` reads one of the ``written`` fields, its subqueries included."""
    if isinstance(node, Col):
        return node.target in written
    return any(_uses(part, written) for part in _parts(node))
