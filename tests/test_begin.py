"""PostgreSQL: a tracked save in autocommit costs two round trips (signaltrail.begin).

BEGIN travels with the row's statement and COMMIT with the event's INSERT. The
round trips are counted from libpq's own trace of the messages the client sends,
so what is asserted is what went over the wire.
"""

import contextlib
import tempfile
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
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


def description_pre_save(monkeypatch, before):
    """Run ``before()`` in a field's pre_save: the one place project code runs
    between a save's atomic() and its first statement."""
    field = Product._meta.get_field("description")
    original = field.pre_save

    def pre_save(instance, add):
        before()
        return original(instance, add)

    monkeypatch.setattr(field, "pre_save", pre_save)


def test_a_server_side_cursor_first_in_the_transaction_gets_a_begin_of_its_own(monkeypatch):
    from tests.testapp.models import Tag

    warm()
    Tag.objects.create(name="red")
    seen = []
    description_pre_save(monkeypatch, lambda: seen.extend(Tag.objects.iterator()))
    Product.objects.create(name="Hammer")
    assert seen and {t.name for t in seen} == {"red"}  # pre_save may run twice on insert
    assert idle() and Event.objects.filter(object_repr="Hammer").exists()


def test_a_first_statement_refused_before_the_server_still_leaves_a_transaction(monkeypatch):
    """psycopg refuses a NUL character before sending anything: the BEGIN that
    rode on that statement must be sent anyway, or what follows autocommits."""
    from django.db import DataError

    from tests.test_held import refusing_events
    from tests.testapp.models import Tag

    warm()

    def refused_lookup():
        with contextlib.suppress(DataError):
            Tag.objects.filter(name="a\x00b").exists()

    description_pre_save(monkeypatch, refused_lookup)
    with refusing_events(), pytest.raises(DatabaseError, match="trail down"):
        Product.objects.create(name="Hammer")
    assert not Product.objects.filter(name="Hammer").exists()
    assert idle()


def test_a_wrapper_added_after_the_transaction_opened_sees_plain_sql(monkeypatch):
    from tests.testapp.models import Tag

    warm()
    seen = []

    def mine(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    def look():
        with connection.execute_wrapper(mine):
            list(Tag.objects.all())

    description_pre_save(monkeypatch, look)
    Product.objects.create(name="Hammer")
    assert seen and seen[0].startswith('SELECT "testapp_tag"')
    assert idle() and Event.objects.filter(object_repr="Hammer").exists()


def test_deletions_and_m2m_changes_are_left_to_django():
    """pre_delete and m2m_changed receivers run inside Django's transaction
    before any statement of Django's: it is begun by psycopg as usual."""
    from tests.testapp.models import Tag

    warm()
    p = Product.objects.create(name="Hammer")
    tag = Tag.objects.create(name="red")
    with sent() as added:
        p.tags.add(tag)
    p = Product.objects.get(pk=p.pk)
    with sent() as deleted:
        p.delete()
    for queries in (added, deleted):
        assert queries[0] == "BEGIN"
        assert queries[-1].endswith("; COMMIT")
    assert idle()


class Boom(Exception):
    pass


def test_a_raw_write_in_a_pre_delete_receiver_rolls_back_with_the_deletion():
    from django.db.models.signals import post_delete, pre_delete

    warm()
    keep = Product.objects.create(name="keep")
    p = Product.objects.create(name="gone?")

    def before(sender, instance, **kwargs):
        connection.connection.execute(
            "UPDATE testapp_product SET stock = 99 WHERE id = %s", [keep.pk]
        )
        assert list(Product.objects.filter(pk=keep.pk).iterator()) != []

    def after(sender, instance, **kwargs):
        raise Boom

    pre_delete.connect(before, sender=Product, dispatch_uid="test_begin.before")
    post_delete.connect(after, sender=Product, dispatch_uid="test_begin.after")
    try:
        with pytest.raises(Boom):
            p.delete()
    finally:
        pre_delete.disconnect(sender=Product, dispatch_uid="test_begin.before")
        post_delete.disconnect(sender=Product, dispatch_uid="test_begin.after")
    assert Product.objects.filter(name="gone?").exists()
    assert Product.objects.get(pk=keep.pk).stock == 0
    assert idle()


def test_a_first_statement_failing_on_the_server_aborts_the_transaction(monkeypatch):
    """A syntax error makes PostgreSQL reject the whole "BEGIN; ..." message:
    the transaction must still be open, and aborted, as without the trail."""
    from django.db import InternalError

    warm()

    calls = []

    def broken_query():
        if calls:  # Django may call pre_save twice on an insert: only the first
            return
        calls.append(1)
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELEC 1")

    description_pre_save(monkeypatch, broken_query)
    with pytest.raises(InternalError, match="aborted"):
        Product.objects.create(name="Hammer")
    assert idle() and connection.execute_wrappers == []
    monkeypatch.undo()
    Product.objects.create(name="Saw")
    assert list(Product.objects.values_list("name", flat=True).order_by("id")) == ["warm", "Saw"]


def test_the_setting_off_leaves_begin_to_psycopg(settings):
    warm()
    settings.SIGNALTRAIL = {
        **getattr(settings, "SIGNALTRAIL", {}),
        "POSTGRES_BEGIN_WITH_ROW": False,
    }
    with sent() as queries:
        Product.objects.create(name="Hammer")
    assert queries[0] == "BEGIN"
    assert len(queries) == 3
    assert queries[-1].endswith("; COMMIT")
    assert Event.objects.filter(object_repr="Hammer").exists()
