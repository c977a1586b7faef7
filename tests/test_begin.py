"""PostgreSQL: a tracked save in autocommit costs one or two round trips (signaltrail.begin).

BEGIN travels with the row's statement and COMMIT with the event's INSERT; an
update and its event go as one statement, which commits on its own. The
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
from tests.test_held import installed, verified
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
                    text = parts[4].strip()
                    queries.append(text[1:-1] if text[:1] == text[-1:] == '"' else text)


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


def test_a_load_change_save_sends_row_event_and_commit_in_one_round_trip():
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    p.stock = 4
    with sent() as queries:
        p.save()
    assert len(queries) == 1, queries
    # One statement, which PostgreSQL commits on its own: no BEGIN, no COMMIT.
    assert queries[0].startswith('WITH "signaltrail_row" AS (UPDATE "testapp_product"')
    assert queries[0].endswith('SELECT 1 FROM "signaltrail_row"')
    assert idle() and connection.execute_wrappers == []
    created, updated = Event.objects.order_by("id")
    assert updated.action == "update" and updated.changes == {"stock": [0, 4]}
    assert updated.prev_hash == created.hash
    p.stock = 5
    with sent() as queries:
        p.save()
    assert len(queries) == 1, queries
    last = Event.objects.order_by("id").last()
    assert last.changes == {"stock": [4, 5]} and last.prev_hash == updated.hash
    assert Product.objects.get(pk=p.pk).stock == 5
    assert verified()


def test_an_update_that_matches_no_row_inserts_it_with_its_create_event_atomically():
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    with connection.cursor() as cursor:  # gone behind the ORM's back
        cursor.execute('DELETE FROM "testapp_product" WHERE id = %s', [p.pk])
    p.stock = 4
    with sent() as queries:
        p.save()
    # No row matched: nothing was written and the transaction is over; a new
    # one holds Django's INSERT and its event.
    assert queries[0].startswith('WITH "signaltrail_row"')
    assert queries[1:3] == ["BEGIN", queries[2]] and queries[2].startswith("INSERT INTO")
    assert queries[-1].endswith("; COMMIT") and len(queries) == 4, queries
    assert idle() and connection.execute_wrappers == []
    assert Product.objects.get(pk=p.pk).stock == 4
    assert [(e.action, e.object_pk) for e in Event.objects.order_by("id")] == [
        ("create", str(p.pk)),
        ("create", str(p.pk)),
    ]
    assert verified()


def test_an_event_refused_by_the_database_leaves_the_row_as_it_was():
    from tests.test_held import refusing_events

    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    p.stock = 4
    with refusing_events(), sent() as queries, pytest.raises(DatabaseError, match="trail down"):
        p.save()
    assert len(queries) == 1 and queries[0].startswith("WITH"), queries
    assert idle() and connection.execute_wrappers == []
    assert Product.objects.get(pk=p.pk).stock == 0
    assert Event.objects.count() == 1


def test_a_paused_update_sends_no_event_with_its_row():
    import signaltrail

    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    p.stock = 4
    with signaltrail.paused(), sent() as queries:
        p.save()
    assert not any("signaltrail_event" in q for q in queries), queries
    assert Product.objects.get(pk=p.pk).stock == 4
    assert not Event.objects.filter(action="update").exists()


def test_a_commit_refused_by_a_deferred_constraint_leaves_the_row_as_it_was():
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    late = [
        "CREATE SEQUENCE st_late_runs",  # not rolled back
        "CREATE FUNCTION st_late() RETURNS trigger AS $$ BEGIN "
        "PERFORM nextval('st_late_runs'); "
        "IF NEW.stock = 13 THEN RAISE EXCEPTION 'unlucky stock'; END IF; "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        'CREATE CONSTRAINT TRIGGER st_late AFTER UPDATE ON "testapp_product" '
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION st_late()",
    ]
    gone = [
        'DROP TRIGGER st_late ON "testapp_product"',
        "DROP FUNCTION st_late()",
        "DROP SEQUENCE st_late_runs",
    ]
    with installed(late, gone):
        p.stock = 13
        with sent() as queries, pytest.raises(DatabaseError, match="unlucky stock"):
            p.save()
        assert idle() and connection.execute_wrappers == []
        assert Product.objects.get(pk=p.pk).stock == 0
        assert Event.objects.count() == 1
        # The COMMIT's error is the save's, as without the trail: the row is
        # not sent again (the trigger ran once).
        assert len(queries) == 1 and queries[0].startswith("WITH"), queries
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_value FROM st_late_runs")
            assert cursor.fetchone() == (1,)
        p.stock = 12
        p.save()
        assert Product.objects.get(pk=p.pk).stock == 12
    assert Event.objects.order_by("id").last().changes == {"stock": [0, 12]}
    assert verified()


def test_a_trigger_discarding_the_event_leaves_the_update_counted():
    """Django reads the statement's row count: the UPDATE's, not the INSERT's."""
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    discard = [
        "CREATE FUNCTION st_elsewhere() RETURNS trigger AS $$ BEGIN "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        'CREATE TRIGGER st_elsewhere BEFORE INSERT ON "signaltrail_event" '
        "FOR EACH ROW EXECUTE FUNCTION st_elsewhere()",
    ]
    gone = ['DROP TRIGGER st_elsewhere ON "signaltrail_event"', "DROP FUNCTION st_elsewhere()"]
    with installed(discard, gone):
        p.stock = 4
        with sent() as queries:
            p.save()
        assert len(queries) == 1, queries
        assert Product.objects.filter(pk=p.pk).values_list("stock", flat=True).get() == 4
        assert Product.objects.count() == 1
    assert Event.objects.count() == 1  # only the create: the trigger kept the update's


def test_a_table_with_a_rule_gets_its_update_alone():
    """PostgreSQL refuses DO ALSO rules in a WITH clause; Django's UPDATE alone is fine."""
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    rule = ['CREATE RULE st_also AS ON UPDATE TO "testapp_product" DO ALSO NOTIFY st_also']
    with installed(rule, ['DROP RULE st_also ON "testapp_product"']):
        p.stock = 4
        p.save()
        assert idle() and connection.execute_wrappers == []
    assert Product.objects.get(pk=p.pk).stock == 4
    assert Event.objects.order_by("id").last().changes == {"stock": [0, 4]}
    assert verified()


def test_a_save_inside_another_saves_pre_save_commits_with_it(monkeypatch):
    """The inner save is not its transaction's own: it must not send COMMIT."""
    from tests.testapp.models import Category

    warm()
    category = Category.objects.create(name="Tools")
    category = Category.objects.get(pk=category.pk)
    p = Product.objects.get(name="warm")

    def inner_save_then_fail():
        category.name = "Garden"
        category.save()
        raise RuntimeError("outer save fails")

    description_pre_save(monkeypatch, inner_save_then_fail)
    events = Event.objects.count()
    p.stock = 4
    with pytest.raises(RuntimeError, match="outer save fails"):
        p.save()
    assert idle()
    assert Category.objects.get(pk=category.pk).name == "Tools"
    assert Product.objects.get(pk=p.pk).stock == 0
    assert Event.objects.count() == events


@pytest.mark.parametrize("method", ["_save_table", "_do_update"])
def test_code_after_an_overridden_save_step_runs_inside_the_transaction(monkeypatch, method):
    """A model whose _save_table or _do_update runs code after super(): that code fails the save."""
    from django.db import models

    from signaltrail import capture

    django_own = getattr(models.Model, method)

    def override(self, *args, **kwargs):
        result = django_own(self, *args, **kwargs)
        if self.stock == 13:
            raise ValueError("checked after the row")
        return result

    monkeypatch.setattr(Product, method, override)
    # As install() wraps a model's own override:
    getattr(capture, f"_wrap{method}")(Product)
    a_save_failing_after_its_update_leaves_nothing("checked after the row")


def test_code_after_a_querysets_own_update_runs_inside_the_transaction(monkeypatch):
    """A base manager whose queryset overrides _update: its code after super() fails the save."""
    from django.db.models.query import QuerySet

    class Checked(QuerySet):
        def _update(self, values, *args, **kwargs):
            rows = super()._update(values, *args, **kwargs)
            if any(value == 13 for _, _, value in values):
                raise ValueError("checked after the update")
            return rows

    manager = Product._base_manager
    monkeypatch.setattr(manager, "_queryset_class", Checked)
    a_save_failing_after_its_update_leaves_nothing("checked after the update")


def a_save_failing_after_its_update_leaves_nothing(message):
    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    p.stock = 13
    with pytest.raises(ValueError, match=message):
        p.save()
    assert idle() and connection.execute_wrappers == []
    assert Product.objects.get(pk=p.pk).stock == 0
    assert Event.objects.count() == 1


def test_a_str_that_queries_first_takes_the_begin_and_runs_once():
    from tests.testapp.models import Category

    p = Product.objects.create(name="Hammer", category=Category.objects.create(name="Tools"))
    p = Product.objects.get(pk=p.pk)  # its category not loaded: __str__ selects it
    p.stock = 4
    with sent() as queries:
        p.save()
    assert queries[0].startswith('BEGIN; SELECT "testapp_category"'), queries
    assert queries[1].startswith('UPDATE "testapp_product"')
    assert queries[2].startswith('INSERT INTO "signaltrail_event"')
    assert queries[2].endswith("; COMMIT") and len(queries) == 3, queries
    last = Event.objects.order_by("id").last()
    assert (last.object_repr, last.changes) == ("Hammer (Tools)", {"stock": [0, 4]})
    assert verified()


def test_event_recorded_receivers_keep_the_event_apart():
    from signaltrail.signals import event_recorded

    seen = []

    def receiver(sender, event, **kwargs):
        seen.append((event.pk is not None, event.changes))

    p = Product.objects.create(name="Hammer")
    p = Product.objects.get(pk=p.pk)
    p.stock = 4
    event_recorded.connect(receiver, sender=Event)
    try:
        with sent() as queries:
            p.save()
    finally:
        event_recorded.disconnect(receiver, sender=Event)
    assert seen == [(True, {"stock": [0, 4]})]
    assert queries[0].startswith('BEGIN; UPDATE "testapp_product"'), queries


def test_an_update_with_an_expression_is_read_back_as_before():
    from django.db.models import F

    p = Product.objects.create(name="Hammer", stock=2)
    p.stock = F("stock") + 3
    with sent() as queries:
        p.save()
    assert queries[0].startswith('BEGIN; UPDATE "testapp_product"'), queries
    assert "RETURNING" in queries[0]
    assert Event.objects.order_by("id").last().changes == {"stock": [2, 5]}


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


def test_an_add_and_a_deletion_send_begin_with_their_first_statement():
    """add()'s first statement is its INSERT (only the trail receives
    m2m_changed here); a deletion's comes after pre_delete, which only the
    trail receives too."""
    from tests.testapp.models import Tag

    warm()
    p = Product.objects.create(name="Hammer")
    tag = Tag.objects.create(name="red")
    with sent() as added:
        p.tags.add(tag)
    assert added[0].startswith('BEGIN; INSERT INTO "testapp_product_tags"'), added
    assert "RETURNING" in added[0]
    assert added[1].endswith("; COMMIT") and len(added) == 2, added
    with sent() as again:
        tag.products.add(Product.objects.create(name="Saw"))
    assert any(q.startswith('BEGIN; INSERT INTO "testapp_product_tags"') for q in again), again
    p = Product.objects.get(pk=p.pk)
    with sent() as deleted:
        p.delete()
    assert deleted[0].startswith("BEGIN; DELETE FROM"), deleted
    assert deleted[-1].endswith("; COMMIT")
    assert idle() and connection.execute_wrappers == []
    assert [e.action for e in Event.objects.order_by("id")][-5:] == [
        "create",
        "m2m_add",
        "create",
        "m2m_add",
        "delete",
    ]
    assert not Product.objects.filter(pk=p.pk).exists()
    assert verified()


def test_receivers_running_before_djangos_first_statement_get_psycopgs_begin():
    """pre_delete, and m2m_changed for remove() and clear(), are sent inside
    the transaction before any statement of Django's: with a receiver of the
    project's there, psycopg begins the transaction as usual."""
    from django.db.models.signals import m2m_changed, pre_delete

    from tests.testapp.models import Tag

    warm()
    p = Product.objects.create(name="Hammer")
    tag = Tag.objects.create(name="red")
    p.tags.add(tag)
    with sent() as removed:
        p.tags.remove(tag)
    p.tags.add(tag)
    with sent() as cleared:
        p.tags.clear()
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    pre_delete.connect(receiver, sender=Product, dispatch_uid="test_begin.seen")
    p = Product.objects.get(pk=p.pk)
    try:
        with sent() as deleted:
            p.delete()
    finally:
        pre_delete.disconnect(sender=Product, dispatch_uid="test_begin.seen")
    for queries in (removed, cleared, deleted):
        assert queries[0] == "BEGIN", queries
        assert queries[-1].endswith("; COMMIT")
    assert seen and idle() and m2m_changed.has_listeners(Product.tags.through)


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
