"""Events held until their transaction commits (signaltrail.held).

Inside ``atomic()`` the events of saves, deletions and m2m changes go into one
INSERT just before COMMIT. These tests pin what a user can observe: the count of
statements, that the transaction's own reads see its events, that rollbacks (of
savepoints too) drop exactly the events they should, that the chain stays intact,
and that a failing INSERT never lets the change commit without its event.
"""

import contextlib

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

import signaltrail
from signaltrail import held
from signaltrail.models import Event
from tests.testapp.models import Category, Product, Tag

EVENTS = Event._meta.db_table


def event_inserts(ctx):
    return [q["sql"] for q in ctx.captured_queries if f"INTO {quoted(EVENTS)}" in q["sql"]]


def quoted(name):
    return connection.ops.quote_name(name)


def verified():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("trail", "verify", "--no-progress", stdout=out)
    return "intact" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_saves_of_a_transaction_cost_one_insert_of_events_at_its_end():
    products = [Product.objects.create(name=f"p{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        for p in products:
            p.stock = F("stock") + 1 if p.name == "p0" else 7
            p.save()
        tag = Tag.objects.create(name="red")
        products[1].tags.add(tag)
        products[2].delete()
    inserts = event_inserts(ctx)
    assert len(inserts) == 1
    # ... sent after every write of the transaction, before its COMMIT.
    statements = [q["sql"] for q in ctx.captured_queries if q["sql"] != "COMMIT"]
    assert statements[-1] == inserts[0]
    actions = list(Event.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["create"] * 3 + ["update"] * 3 + ["m2m_add", "delete"]  # Tag: untracked
    assert Event.objects.get(action="update", object_pk=str(products[0].pk)).changes == {
        "stock": [0, 1]
    }
    assert verified()


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_insert_carries_the_commit():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL with psycopg 3")
    p = Product.objects.create(name="Hammer")
    tag = Tag.objects.create(name="red")
    with CaptureQueriesContext(connection) as ctx:
        p.tags.add(tag)  # a transaction Django opens itself
        Product.objects.get(pk=p.pk).delete()
    inserts = event_inserts(ctx)
    assert len(inserts) == 2
    assert all(sql.rstrip().endswith("; COMMIT") for sql in inserts)
    assert not transaction.get_connection().in_atomic_block
    assert list(Event.objects.order_by("id").values_list("action", flat=True)) == [
        "create",
        "m2m_add",
        "delete",
    ]


@pytest.mark.django_db
def test_reads_inside_the_transaction_see_its_events():
    p = Product.objects.create(name="Hammer")
    assert signaltrail.history(p).count() == 1
    p.name = "Saw"
    p.save()
    # Raw SQL through Django's cursor, and a subquery from another model.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {quoted(EVENTS)}")
        assert cursor.fetchone()[0] == 2
    Product.objects.create(name="Nail")
    ids = Event.objects.filter(action="create").values("object_pk")
    assert Product.objects.filter(pk__in=[int(x["object_pk"]) for x in ids]).count() == 2
    Product.objects.create(name="Screw")
    in_subquery = Product.objects.filter(
        name__in=Event.objects.filter(action="create").values("object_repr")
    )
    assert sorted(x.name for x in in_subquery) == ["Nail", "Screw"]  # "Hammer" is now "Saw"


@pytest.mark.django_db
def test_queries_on_other_tables_leave_the_events_waiting():
    with CaptureQueriesContext(connection) as ctx:
        p = Product.objects.create(name="Hammer")
        Product.objects.filter(pk=p.pk).exists()
        Category.objects.count()
    assert event_inserts(ctx) == []
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_drops_only_its_own_events():
    with transaction.atomic():
        kept = Product.objects.create(name="kept")
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Product.objects.create(name="gone")
            raise RuntimeError
        sid = transaction.savepoint_create()
        Product.objects.create(name="gone by hand")
        transaction.savepoint_rollback(sid)
        with transaction.atomic():  # released, not rolled back
            Product.objects.create(name="nested")
        kept.name = "kept, renamed"
        kept.save()
    reprs = list(Event.objects.order_by("id").values_list("object_repr", flat=True))
    assert reprs == ["kept", "nested", "kept, renamed"]
    assert sorted(Product.objects.values_list("name", flat=True)) == ["kept, renamed", "nested"]
    assert verified()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_drops_its_events_and_the_wrapper():
    wrappers = list(connection.execute_wrappers)
    with contextlib.suppress(RuntimeError), transaction.atomic():
        Product.objects.create(name="gone")
        assert len(connection.execute_wrappers) == len(wrappers) + 1
        raise RuntimeError
    Product.objects.count()  # the first query after it clears what the rollback left
    assert connection.execute_wrappers == wrappers
    assert not Event.objects.exists()
    Product.objects.create(name="kept")
    assert connection.execute_wrappers == wrappers
    assert list(Event.objects.values_list("object_repr", flat=True)) == ["kept"]
    assert verified()


@pytest.mark.django_db(transaction=True)
def test_a_projects_own_execute_wrapper_is_left_alone():
    seen = []

    def mine(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(mine):
            Product.objects.create(name="Hammer")
            assert connection.execute_wrappers[-1] is mine
        assert mine not in connection.execute_wrappers  # Django popped its own
        Product.objects.create(name="Saw")
    assert connection.execute_wrappers == []
    # The product's INSERT, but none of the events: they went in after the block.
    assert any(sql.startswith(f"INSERT INTO {quoted('testapp_product')}") for sql in seen)
    assert not any(EVENTS in sql for sql in seen)
    assert Event.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_long_transaction_inserts_its_events_in_batches(monkeypatch):
    monkeypatch.setattr(held, "LIMIT", 3)
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        for i in range(7):
            Product.objects.create(name=f"p{i}")
    assert len(event_inserts(ctx)) == 3  # 3 + 3 at the limit, 1 at the commit
    assert Event.objects.count() == 7
    assert verified()


@pytest.mark.django_db(transaction=True)
def test_context_and_time_are_those_of_the_change_not_of_the_commit():
    with transaction.atomic():
        with signaltrail.context(reason="import", source="command"):
            Product.objects.create(name="a")
        Product.objects.create(name="b")
    a, b = Event.objects.order_by("id")
    assert a.context.get("reason") == "import"
    assert "reason" not in b.context
    assert a.at <= b.at
    assert verified()


# -- a failing INSERT of held events -------------------------------------------------


@contextlib.contextmanager
def refusing_events():
    """A trigger in the database that refuses every event row."""
    table = quoted(EVENTS)
    if connection.vendor == "sqlite":
        create = [
            f"CREATE TRIGGER st_refuse BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'trail down'); END"
        ]
        drop = ["DROP TRIGGER st_refuse"]
    elif connection.vendor == "postgresql":
        create = [
            "CREATE FUNCTION st_refuse() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'trail down'; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER st_refuse BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION st_refuse()",
        ]
        drop = [f"DROP TRIGGER st_refuse ON {table}", "DROP FUNCTION st_refuse()"]
    else:
        create = [
            f"CREATE TRIGGER st_refuse BEFORE INSERT ON {table} FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'trail down'"
        ]
        drop = ["DROP TRIGGER st_refuse"]
    with installed(create, drop):
        yield


@contextlib.contextmanager
def installed(create: list[str], drop: list[str]):
    """Run the ``create`` statements; the ``drop`` ones after the block, whatever happens."""
    with connection.cursor() as cursor:
        for sql in create:
            cursor.execute(sql)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for sql in drop:
                cursor.execute(sql)


@pytest.mark.django_db(transaction=True)
def test_a_failing_insert_at_commit_rolls_the_changes_back():
    p = Product.objects.create(name="Hammer")
    with refusing_events():
        with pytest.raises(DatabaseError, match="trail down"):
            Product.objects.create(name="Saw")
        with pytest.raises(DatabaseError, match="trail down"), transaction.atomic():
            p.name = "Nail"
            p.save()
            Product.objects.create(name="Screw")
        with pytest.raises(DatabaseError, match="trail down"):
            Product.objects.get(pk=p.pk).delete()
    assert list(Product.objects.values_list("name", flat=True)) == ["Hammer"]
    assert Event.objects.count() == 1
    assert verified()


@pytest.mark.django_db(transaction=True)
def test_a_failing_insert_caught_inside_the_transaction_still_rolls_it_back():
    """The INSERT runs when the transaction reads the trail; an error caught
    there must not let the change commit without its event."""
    with refusing_events():
        with transaction.atomic():
            Product.objects.create(name="Saw")
            with contextlib.suppress(DatabaseError):
                Event.objects.count()
        assert not Product.objects.exists()
    assert not Event.objects.exists()


# -- the ends of a transaction ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_commit_inside_atomic_is_refused_and_commits_nothing():
    from django.db.transaction import TransactionManagementError

    from tests.testapp.models import Note

    Product.objects.create(name="warm")
    with contextlib.suppress(TransactionManagementError), transaction.atomic():
        Note.objects.create(text="untracked")
        Product.objects.create(name="tracked")
        transaction.commit()
    assert not Note.objects.exists()
    assert list(Product.objects.values_list("name", flat=True)) == ["warm"]
    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_manual_transactions_keep_the_change_and_its_event_together():
    """With autocommit off by hand, turning it back on commits (SQLite, MariaDB):
    the events are not held there, so they commit with the change."""
    Product.objects.create(name="warm")
    transaction.set_autocommit(False)
    try:
        Product.objects.create(name="manual")
    finally:
        if connection.vendor == "postgresql":  # refuses with a transaction open
            transaction.commit()
        transaction.set_autocommit(True)
    with contextlib.suppress(RuntimeError), transaction.atomic():
        raise RuntimeError  # a later rollback on the connection drops nothing of it
    assert Product.objects.filter(name="manual").exists()
    assert Event.objects.filter(object_repr="manual").exists()
    assert verified()


class WritesRefused(Exception):
    """Not a DatabaseError, as django-read-only's own error."""


@pytest.mark.django_db(transaction=True)
def test_any_error_while_inserting_at_commit_rolls_the_transaction_back():
    """atomic() rolls back after a DatabaseError only; a project's execute wrapper
    refusing writes raises something else, and the change must not commit."""
    Product.objects.create(name="warm")
    refusing = False

    def read_only(execute, sql, params, many, context):
        if refusing and not sql.lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE")):
            raise WritesRefused("writes are disabled")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(read_only):
        with pytest.raises(WritesRefused), transaction.atomic():
            Product.objects.create(name="written")
            refusing = True  # back to read-only before the block ends
        refusing = False
    assert not transaction.get_connection().in_atomic_block
    if connection.vendor == "postgresql":
        from psycopg.pq import TransactionStatus

        assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    connection.close()
    assert list(Product.objects.values_list("name", flat=True)) == ["warm"]
    assert list(Event.objects.values_list("object_repr", flat=True)) == ["warm"]


@pytest.mark.django_db
def test_sql_naming_the_table_in_other_letters_sees_the_events():
    if connection.vendor == "mysql":
        pytest.skip("MariaDB table names are case-sensitive on Linux")
    Product.objects.create(name="Hammer")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {EVENTS.upper()}")
        assert cursor.fetchone()[0] == 1
