"""PostgreSQL: a tracked save in autocommit costs two round trips (signaltrail.begin).

BEGIN travels with the row's statement and COMMIT with the event's INSERT. The
round trips are counted from libpq's own trace of the messages the client sends,
so what is asserted is what went over the wire.
"""

import contextlib
import tempfile
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus

from signaltrail.models import Event
from tests.testapp.models import Code, Note, Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_with_client_side_binding():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL with psycopg 3")
    connection.ensure_connection()


@contextlib.contextmanager
def sent():
    """The Query messages the client sends inside the block, one per round trip."""
    queries: list[str] = []
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        try:
            yield queries
        finally:
            pgconn.untrace()
            trace.seek(0)
            for line in trace:
                parts = line.rstrip("\n").split("\t", 4)
                if len(parts) == 5 and parts[1] == "F" and parts[3] == "Query":
                    queries.append(parts[4].strip().strip('"'))


def idle():
    return connection.connection.info.transaction_status == TransactionStatus.IDLE


def warm():
    """A first event: the content type ids and the newest hash are then known."""
    Product.objects.create(name="warm")


def test_a_create_costs_two_round_trips():
    warm()
    with sent() as queries:
        p = Product.objects.create(name="Hammer", price=Decimal("9.90"))
    assert len(queries) == 2, queries
    assert queries[0].startswith('BEGIN; INSERT INTO "testapp_product"')
    assert queries[1].startswith('INSERT INTO "signaltrail_event"')
    assert queries[1].endswith("; COMMIT")
    assert idle() and connection.execute_wrappers == []
    assert Event.objects.order_by("id").last().object_pk == str(p.pk)


def test_a_load_change_save_costs_two_round_trips_for_the_save():
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    p.stock = 4
    with sent() as queries:
        p.save()
    assert len(queries) == 2, queries
    assert queries[0].startswith('BEGIN; UPDATE "testapp_product"')
    assert queries[1].endswith("; COMMIT")
    assert Event.objects.filter(action="update").get().changes == {"stock": [0, 4]}


def test_untracked_saves_are_left_to_django():
    with sent() as queries:
        Note.objects.create(text="x")
    assert len(queries) == 1
    assert queries[0].startswith('INSERT INTO "testapp_note"')


def test_a_failing_row_statement_leaves_nothing_open():
    Code.objects.create(code="A", label="first")
    with pytest.raises(IntegrityError):
        Code.objects.create(code="A", label="again")
    assert idle() and connection.execute_wrappers == []
    assert connection.get_autocommit() and connection.connection.autocommit
    Code.objects.create(code="B", label="next")
    assert list(Code.objects.order_by("code").values_list("label", flat=True)) == [
        "first",
        "next",
    ]
    assert Event.objects.filter(action="create").count() == 2


def test_an_error_before_any_statement_leaves_nothing_armed():
    with pytest.raises(Exception):  # noqa: B017  (Django's own decimal validation)
        Product.objects.create(name="Hammer", price="not a number")
    assert idle() and connection.execute_wrappers == []
    Product.objects.create(name="Saw")
    assert Event.objects.count() == 1


def test_a_save_inside_atomic_is_left_to_atomic():
    warm()
    with sent() as queries, transaction.atomic():
        Product.objects.create(name="Hammer")
    # psycopg's own BEGIN, the row, the events with the COMMIT.
    assert queries[0] == "BEGIN"
    assert len(queries) == 3


def test_with_an_isolation_level_psycopg_sends_its_own_begin():
    warm()
    raw = connection.connection
    raw.isolation_level = IsolationLevel.SERIALIZABLE
    try:
        with sent() as queries:
            Product.objects.create(name="Hammer")
    finally:
        raw.isolation_level = None
    assert queries[0] == "BEGIN ISOLATION LEVEL SERIALIZABLE"
    assert len(queries) == 3
    assert Event.objects.count() == 2


def test_with_execute_wrappers_the_transaction_is_left_to_psycopg():
    """A project's wrapper sees the statement as Django sends it, inside the
    transaction (here: a transaction-local setting a trigger requires)."""
    warm()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION st_tenant() RETURNS trigger AS $$ BEGIN "
            "IF current_setting('app.tenant', true) IS DISTINCT FROM 'acme' THEN "
            "RAISE EXCEPTION 'no tenant'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            'CREATE TRIGGER st_tenant BEFORE INSERT ON "testapp_product" '
            "FOR EACH ROW EXECUTE FUNCTION st_tenant()"
        )
    seen = []

    def tenant(execute, sql, params, many, context):
        context["cursor"].cursor.execute("SELECT set_config('app.tenant', 'acme', true)")
        seen.append(sql)
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(tenant):
            Product.objects.create(name="Hammer")
    finally:
        with connection.cursor() as cursor:
            cursor.execute('DROP TRIGGER st_tenant ON "testapp_product"')
            cursor.execute("DROP FUNCTION st_tenant()")
    assert seen[0].startswith('INSERT INTO "testapp_product"')
    assert Product.objects.filter(name="Hammer").exists()
    assert Event.objects.filter(object_repr="Hammer").exists()


def test_a_non_database_error_at_commit_leaves_no_transaction_open():
    warm()

    def refuse_events(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "signaltrail_event"'):
            raise RuntimeError("events refused")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_events), pytest.raises(RuntimeError):
        Product.objects.create(name="Hammer")
    assert idle() and connection.get_autocommit() and connection.connection.autocommit
    Note.objects.create(text="autocommit")
    connection.close()
    assert Note.objects.filter(text="autocommit").exists()
    assert not Product.objects.filter(name="Hammer").exists()


def test_a_delete_begins_with_its_first_statement():
    warm()
    p = Product.objects.get(pk=Product.objects.create(name="Hammer").pk)
    with sent() as queries:
        p.delete()
    # The m2m rows, the row, the event with the COMMIT: no BEGIN of its own.
    assert len(queries) == 3, queries
    assert queries[0].startswith("BEGIN; DELETE")
    assert queries[-1].startswith('INSERT INTO "signaltrail_event"')
    assert queries[-1].endswith("; COMMIT")
    assert idle()
    assert Event.objects.filter(action="delete").count() == 1


def test_a_queryset_delete_begins_with_its_first_statement():
    warm()
    for name in ("a", "b"):
        Product.objects.create(name=name)
    with sent() as queries:
        Product.objects.filter(name__in=["a", "b"]).delete()
    # The collector's SELECT runs before the transaction, which begins with a DELETE.
    begins = [q for q in queries if q.startswith("BEGIN")]
    assert len(begins) == 1 and begins[0].startswith("BEGIN; DELETE")
    assert idle()
    assert Event.objects.filter(action="delete").count() == 2


def test_m2m_changes_begin_with_their_first_statement():
    from tests.testapp.models import Tag

    warm()
    p = Product.objects.create(name="Hammer")
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    with sent() as forward:
        p.tags.add(red)
    with sent() as reverse:
        blue.products.add(p)
    for queries in (forward, reverse):
        # Django's SELECT of the missing rows, their INSERT, the event with the COMMIT.
        assert len(queries) == 3, queries
        assert queries[0].startswith("BEGIN; SELECT")
        assert queries[-1].endswith("; COMMIT")
    p.tags.set([blue])
    p.tags.clear()
    assert idle() and connection.execute_wrappers == []
    m2m = Event.objects.filter(action__startswith="m2m").order_by("id")
    actions = list(m2m.values_list("action", flat=True))
    assert actions == ["m2m_add", "m2m_add", "m2m_remove", "m2m_clear"]
    assert not p.tags.exists()
