"""``add()`` on a tracked many-to-many relation, when the trail alone listens.

Django SELECTs the rows already related before an ``add()`` whenever
``m2m_changed`` has a receiver, to send the new ones as ``pk_set``. When the
trail's receiver is the only one, the new rows are inserted with conflicts
ignored and returned by the INSERT itself: no SELECT, and exactly the rows
this ``add()`` inserted are recorded. With a receiver of the project's,
Django's own path runs and the receiver gets what it gets without the trail.
"""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.models.signals import m2m_changed
from django.test.utils import CaptureQueriesContext

import signaltrail
from signaltrail.models import Event
from tests.test_held import verified
from tests.testapp.models import Product, Tag

pytestmark = pytest.mark.django_db(transaction=True)

THROUGH = Product.tags.through._meta.db_table


def adds(obj):
    return [
        e.changes["tags"]["add"]
        for e in Event.objects.for_object(obj).filter(action="m2m_add").order_by("id")
    ]


def related(product):
    return sorted(product.tags.values_list("pk", flat=True))


def through_queries(ctx):
    """The statements on the through table, upper-cased, without the BEGIN
    that travels with a transaction's first statement on PostgreSQL."""
    found = []
    for query in ctx.captured_queries:
        sql = query["sql"].strip().upper()
        if THROUGH.upper() in sql:
            found.append(sql.removeprefix("BEGIN; "))
    return found


def test_add_records_only_the_rows_it_inserted_without_selecting_them_first():
    red, green, blue = (Tag.objects.create(name=n) for n in ("red", "green", "blue"))
    p = Product.objects.create(name="Hammer")
    p.tags.add(red, blue)
    with CaptureQueriesContext(connection) as ctx:
        p.tags.add(red, green)  # red is there already
    p.tags.add(red)  # nothing new: nothing recorded
    assert adds(p) == [sorted([red.pk, blue.pk]), [green.pk]]
    assert related(p) == sorted([red.pk, green.pk, blue.pk])
    (insert,) = through_queries(ctx)
    assert insert.startswith("INSERT") and "RETURNING" in insert, insert
    assert verified()


def test_add_costs_the_same_queries_for_one_row_and_for_fifty():
    tags = [Tag.objects.create(name=f"t{i}") for i in range(51)]
    one, many = Product.objects.create(name="One"), Product.objects.create(name="Many")
    with CaptureQueriesContext(connection) as small:
        one.tags.add(tags[0])
    with CaptureQueriesContext(connection) as large:
        many.tags.add(*tags[1:])
    assert len(small.captured_queries) == len(large.captured_queries)
    assert adds(many) == [sorted(t.pk for t in tags[1:])]
    assert len(related(many)) == 50


def test_add_by_pk_and_from_the_other_side_records_on_each_new_product():
    red = Tag.objects.create(name="red")
    hammer, saw = Product.objects.create(name="Hammer"), Product.objects.create(name="Saw")
    hammer.tags.add(red.pk)  # by pk
    red.products.add(hammer, saw)  # hammer has it already
    assert adds(hammer) == [[red.pk]]
    assert adds(saw) == [[red.pk]]
    assert list(saw.tags.all()) == [red]


def test_through_defaults_are_called_and_ignored_as_django_does():
    """Django's own fast path (no receiver at all) calls the callables in
    ``through_defaults`` and uses none of them on an auto-created through."""
    calls = []
    p = Product.objects.create(name="Hammer")
    red = Tag.objects.create(name="red")
    p.tags.add(red, through_defaults={"unknown": lambda: calls.append(1)})
    assert calls == [1]
    assert adds(p) == [[red.pk]]


def test_with_a_receiver_of_the_projects_it_gets_what_django_sends():
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    p = Product.objects.create(name="Hammer")
    p.tags.add(red)
    seen = []

    def receiver(sender, action, pk_set, **kwargs):
        seen.append((action, set(pk_set)))

    m2m_changed.connect(receiver, sender=Product.tags.through, dispatch_uid="test_m2m_add")
    try:
        with CaptureQueriesContext(connection) as ctx:
            p.tags.add(red, blue)
    finally:
        m2m_changed.disconnect(sender=Product.tags.through, dispatch_uid="test_m2m_add")
    assert seen == [("pre_add", {blue.pk}), ("post_add", {blue.pk})]
    assert through_queries(ctx)[0].startswith("SELECT")  # Django's own path
    assert adds(p) == [[red.pk], [blue.pk]]


def test_a_rolled_back_add_leaves_neither_rows_nor_events():
    red = Tag.objects.create(name="red")
    p = Product.objects.create(name="Hammer")
    with pytest.raises(RuntimeError), transaction.atomic():
        p.tags.add(red)
        raise RuntimeError("roll back")
    assert related(p) == []
    assert adds(p) == []
    p.tags.add(red)
    assert adds(p) == [[red.pk]]


def test_a_paused_add_counts_the_rows_it_inserted():
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    p = Product.objects.create(name="Hammer")
    p.tags.add(red)
    with signaltrail.paused(reason="import"):
        p.tags.add(red, blue)
    assert adds(p) == [[red.pk]]
    paused = Event.objects.get(action="trail_paused")
    assert paused.changes == {"skipped": {"testapp.Product": 1}}
    assert related(p) == sorted([red.pk, blue.pk])


def waiting_for_a_lock(statement: str = "INSERT%") -> int:
    """How many statements of other connections wait for a row lock.

    ``statement``: on MySQL/MariaDB, a LIKE pattern of the waiting statement.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        else:
            # (innodb_trx, read inside this transaction, did not show the wait.)
            cursor.execute(
                "SELECT count(*) FROM information_schema.processlist"
                " WHERE id <> CONNECTION_ID() AND info LIKE %s",
                [statement],
            )
        return cursor.fetchone()[0]


def test_a_row_another_transaction_inserted_meanwhile_is_not_recorded_twice():
    """Django's path SELECTs the missing rows, then inserts them: a row
    another transaction inserts in between is reported added by both. The
    INSERT's own RETURNING names only what this add() inserted."""
    if connection.vendor not in ("postgresql", "mysql"):
        pytest.skip("needs row locks between two connections (PostgreSQL, MariaDB)")
    red = Tag.objects.create(name="red")
    p = Product.objects.create(name="Hammer")
    errors = []

    def other():
        try:
            Product.objects.get(pk=p.pk).tags.add(red)
        except Exception as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)
    with transaction.atomic():
        p.tags.add(red)
        thread.start()
        # The other add() waits for this transaction, past any SELECT it made.
        deadline = time.monotonic() + 10
        while not waiting_for_a_lock():
            assert thread.is_alive() and time.monotonic() < deadline, errors
            time.sleep(0.02)
    thread.join(10)
    assert not thread.is_alive() and not errors, errors
    assert adds(p) == [[red.pk]]
    assert related(p) == [red.pk]
    assert verified()
