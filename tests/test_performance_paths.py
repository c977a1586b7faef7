"""The fast paths behave exactly as the slow ones they replace.

Writing events skips the ORM (one raw INSERT of prepared values), the canonical
text and the HMAC have fast implementations, the newest hash is remembered
within a transaction, ``QuerySet.update()`` reads the values it wrote from
``UPDATE ... RETURNING`` and ``object_repr`` copies instances directly. Each
test here pins one of those to the behaviour it must keep: the same bytes,
the same stored values, an intact chain, the same events.
"""

import copy
import datetime
import decimal
import enum
import itertools
import json
import random
import threading
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.safestring import mark_safe

import signaltrail
from signaltrail import canonical as canon
from signaltrail import reprs
from signaltrail.models import Event
from tests.testapp.models import Category, Place, Product, Restaurant

EVENTS = Event._meta.db_table


def reference_canonical(**fields):
    """The canonical text as the reference encoder builds it, token by token."""
    out = []
    at = fields["at"]
    if at.tzinfo is not None:
        at = at.astimezone(datetime.UTC)
    canon._canon(
        [
            at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            fields["action"],
            fields["actor_label"],
            fields["content_type_id"],
            fields["object_pk"],
            fields["object_repr"],
            fields["changes"],
            fields["context"],
            fields["prev_hash"],
        ],
        out,
    )
    return "".join(out)


class Level(enum.IntEnum):
    HIGH = 30


SCALARS = [
    None,
    True,
    False,
    0,
    7,
    10,
    -120,
    2**63,
    10**27 - 1,
    10**27,
    12345678901234567890123456789012,
    0.1,
    -0.0,
    1e16,
    1e-7,
    decimal.Decimal("1.50"),
    decimal.Decimal("-0.0"),
    "",
    "plain",
    'quote " and \\ backslash',
    "non-ASCII: ü ✓ \u2028 \U0001f600",
    mark_safe("<b>safe</b>"),
    Level.HIGH,
    uuid.UUID(int=5),
    datetime.date(2030, 1, 2),
]


def random_value(rnd, depth=0):
    roll = rnd.random()
    if depth > 3 or roll < 0.5:
        return rnd.choice(SCALARS)
    if roll < 0.75:
        return [random_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if roll < 0.8:
        return tuple(random_value(rnd, depth + 1) for _ in range(rnd.randrange(3)))
    return {
        rnd.choice(["a", "b", "price", "ü", "id"]): random_value(rnd, depth + 1)
        for _ in range(rnd.randrange(5))
    }


def test_the_fast_canonical_text_is_the_reference_byte_for_byte():
    """Existing rows were hashed with the reference encoder: the fast one must
    give the same bytes for every value, or verify would flag them all."""
    rnd = random.Random(20261122)
    for _ in range(5000):
        value = random_value(rnd)
        assert canon.encode(value) == canon._slow(value), value
        fields = {
            "at": datetime.datetime(
                rnd.choice([999, 2026]), 11, 22, 3, 4, 5, rnd.choice([0, 7]), tzinfo=datetime.UTC
            ),
            "action": rnd.choice(["create", "update", mark_safe("custom")]),
            "actor_label": rnd.choice(["", "alice", "ü"]),
            "content_type_id": rnd.choice([None, 7, 10, 120]),
            "object_pk": rnd.choice(["", "1", "10", str(uuid.UUID(int=3))]),
            "object_repr": rnd.choice(["", "Lamp ✓", '"quoted"']),
            "changes": {"field": [random_value(rnd), random_value(rnd)]},
            "context": value if isinstance(value, dict) else {"v": value},
            "prev_hash": rnd.choice(["", "ab" * 32]),
        }
        assert canon.canonical(**fields) == reference_canonical(**fields)


def test_a_timestamp_in_another_time_zone_is_canonicalized_in_utc():
    paris = datetime.timezone(datetime.timedelta(hours=1))
    local = datetime.datetime(2030, 1, 1, 13, 0, 0, 5, tzinfo=paris)
    naive_utc = datetime.datetime(2030, 1, 1, 12, 0, 0, 5)
    assert canon.timestamp_text(local) == '"2030-01-01T12:00:00.000005"'
    assert canon.timestamp_text(naive_utc) == '"2030-01-01T12:00:00.000005"'


def test_encode_changes_gives_the_canonical_text_and_exactly_json_dumps():
    rnd = random.Random(7)
    plain = [None, 0, 10, -3, 2**70, "", "x", 'ü " \\', mark_safe("s")]
    other = [True, 1.5, decimal.Decimal("1"), [1], {"k": 1}, (1, 2)]
    for _ in range(3000):
        changes = {
            rnd.choice(["name", "price", "ü", "a"]): [
                rnd.choice(plain + other * (rnd.random() < 0.2)),
                rnd.choice(plain),
            ]
            for _ in range(rnd.randrange(6))
        }
        canonical, stored = canon.encode_changes(changes)
        assert canonical == canon._slow(changes)
        if stored is not None:
            assert stored == json.dumps(changes)


def test_pairs_encoder_gives_what_encode_changes_gives_for_rows_of_one_shape():
    rnd = random.Random(11)
    plain = [None, 0, 10, -120, 7, 10**27, -(10**30), 2**70, True, False, "", "x", 'ü "%s" {0}']
    other = [1.5, decimal.Decimal("1"), [1], {"k": 1}, mark_safe("s")]
    for _ in range(2000):
        names = tuple(rnd.sample(["name", "price", "ü", "a", "%s", "{0}", "b}"], rnd.randrange(6)))
        mode = rnd.choice(["update", "created", "deleted"])
        none_at = {"created": 0, "deleted": 1}.get(mode)  # the leaf always None
        flat = [
            None if i % 2 == none_at else rnd.choice(plain + other * (rnd.random() < 0.1))
            for i in range(2 * len(names))
        ]
        changes = {name: flat[2 * i : 2 * i + 2] for i, name in enumerate(names)}
        encode = canon.pairs_encoder(names, created=mode == "created", deleted=mode == "deleted")
        given = {"created": flat[1::2], "deleted": flat[0::2]}.get(mode, flat)
        got = encode(given)
        if any(v is not None and type(v) not in (int, str, bool) for v in flat):
            assert got is None  # the caller builds the dict then
        else:
            assert got == (canon._slow(changes), json.dumps(changes))


class _Refuses:
    """A value whose comparison raises: the diff must still record it."""

    def __eq__(self, other):
        raise ValueError("no comparing")

    __hash__ = object.__hash__

    def __str__(self):
        return "refuses"


@pytest.mark.django_db
def test_the_bulk_diffs_find_what_same_value_decides_field_by_field():
    """The bulk paths' diffs (by position for update(), by dict for
    bulk_update()) record what comparing each field with
    ``compare.same_value`` records, encoded as encode_changes would."""
    from signaltrail import bulk_rows
    from signaltrail.registry import registry

    rnd = random.Random(5)
    opts = registry.options_for(Product)
    names = ["name", "stock", "price", "api_key", "category", "data", "description"]
    values = {
        "name": ["a", "b", "", 'ü "%s"', None, 3],
        "stock": [0, 1, 10, -120, 2**70, "7", None],
        "price": [decimal.Decimal("1.50"), decimal.Decimal("1.5"), "2", 1, None],
        "api_key": ["k1", "k2", ""],
        "category": [None, 1, 2, "2"],
        "data": [{}, {"a": 1}, {"a": True}, [1], None, 1, True],
        "description": ["x", "y", _Refuses()],
    }
    for _ in range(1500):
        chosen = rnd.sample(names, rnd.randrange(1, 5))
        plans = bulk_rows._plans_for(opts, chosen)
        specs = bulk_rows._specs(plans)
        encode = canon.pairs_encoder(tuple(spec[0] for spec in specs))
        old = [rnd.choice(values[p.name]) for p in plans]
        new = [
            rnd.choice(values[p.name]) if rnd.random() < 0.7 else v
            for p, v in zip(plans, old, strict=True)
        ]
        attnames = [p.attname for p in plans]
        # The reference: compare.same_value and the serializer, field by field.
        as_dicts = dict(zip(attnames, old, strict=True)), dict(zip(attnames, new, strict=True))
        expected = bulk_rows._diff_slowly(specs, *as_dicts)
        assert bulk_rows._diff(specs, *as_dicts) == expected
        found = bulk_rows._diff_values(specs, encode, old, new)
        if not expected:
            assert found is None
            continue
        changes, encoded = found
        if encoded is None:
            assert changes == expected
        else:
            assert changes is None
            assert encoded == (canon._slow(expected), json.dumps(expected))


@pytest.mark.parametrize("secret", ["s3cret", b"bytes-secret", "ünïcode"])
def test_the_hmac_is_djangos_salted_hmac(secret):
    text = canon.canonical(
        at=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
        action="create",
        actor_label="ü",
        content_type_id=3,
        object_pk="1",
        object_repr="x",
        changes={"a": [None, 1]},
        context={},
        prev_hash="",
    )
    expected = salted_hmac(canon.KEY_SALT, text, secret=secret, algorithm="sha256")
    assert canon.compute_hash(text, secret) == expected.hexdigest()


def test_the_hmac_follows_a_changed_secret_key(settings):
    before = canon.compute_hash("text")
    settings.SECRET_KEY = "another-secret-key-for-this-test-only"
    expected = salted_hmac(canon.KEY_SALT, "text", algorithm="sha256").hexdigest()
    assert canon.compute_hash("text") == expected != before


# -- what the raw INSERT stores ------------------------------------------------------


def raw_columns(event_id, *columns):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {EVENTS} WHERE id = %s",
            [event_id],
        )
        return cursor.fetchone()


@pytest.mark.django_db
def test_the_raw_insert_stores_what_the_orm_stores(monkeypatch):
    """A create is written by the raw INSERT, a record() through bulk_create
    (it returns the instance): at the same moment, with the same changes
    and context, both rows must hold the same column values."""
    moment = datetime.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    with signaltrail.context(actor="cron", reason="ü ✓", n=10):
        product = Product.objects.create(name='Lamp "ü"', price="10.50", stock=100)
        raw = Event.objects.for_object(product).get(action="create")
        orm = signaltrail.record("checked", product)
    assert orm.pk is not None and orm.pk > raw.pk
    columns = ("at", "actor_id", "actor_label", "content_type_id", "object_pk", "object_repr")
    assert raw_columns(raw.pk, *columns) == raw_columns(orm.pk, *columns)
    stored_changes, stored_context = raw_columns(raw.pk, "changes", "context")
    _, orm_context = raw_columns(orm.pk, "changes", "context")
    assert stored_context == orm_context
    if connection.vendor != "postgresql":  # jsonb keeps values, not the text
        assert stored_changes == json.dumps(raw.changes)
        assert stored_context == json.dumps(raw.context)
    assert raw.changes["stock"] == [None, 100]
    assert raw.context == {"reason": "ü ✓", "n": 10}
    assert raw.actor_label == "cron" and raw.at == moment


@pytest.mark.django_db
def test_many_events_in_one_call_keep_the_chain_in_id_order():
    products = Product.objects.bulk_create([Product(name=f"p{i}") for i in range(250)])
    created = list(Event.objects.filter(action="create").order_by("id"))
    assert [e.object_pk for e in created] == [str(p.pk) for p in products]
    for before, after in itertools.pairwise(created):
        assert after.prev_hash == before.hash
    out = call_verify()
    assert "intact" in out


@pytest.mark.django_db
def test_sqlite_splits_the_insert_at_its_variable_limit():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's variable limit")
    import sqlite3

    raw = connection.connection
    limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 11 * 4)  # 4 events per INSERT
    try:
        Category.objects.create(name="warm")
        assert Event.objects.exists()  # its event is inserted; the newest hash is known
        with CaptureQueriesContext(connection) as ctx:
            Product.objects.bulk_create([Product(name=f"p{i}") for i in range(10)])
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    inserts = [q for q in ctx.captured_queries if f'INTO "{EVENTS}"' in q["sql"]]
    assert len(inserts) == 3  # 4 + 4 + 2 events
    assert "intact" in call_verify()


def call_verify():
    from io import StringIO

    out = StringIO()
    call_command("trail", "verify", "--no-progress", stdout=out)
    return out.getvalue()


# -- the newest hash, remembered within a transaction ----------------------------------


def hash_selects(ctx):
    """The SELECTs of the newest hash (integrity._latest) in a capture."""
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT HASH FROM") and EVENTS in q["sql"]
    ]


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("in a transaction", marks=pytest.mark.django_db),
        # Each autocommit save is a transaction of its own: after the first, the
        # connection knows the newest event it committed.
        pytest.param("autocommit", marks=pytest.mark.django_db(transaction=True)),
    ],
)
def test_only_a_connections_first_event_selects_the_newest_hash(mode):
    with CaptureQueriesContext(connection) as first:
        Product.objects.create(name="a")
        assert Event.objects.exists()  # in a transaction, this inserts the held event
    with CaptureQueriesContext(connection) as later:
        Product.objects.create(name="b")
        Product.objects.filter(name="b").update(stock=F("stock") + 1)
        signaltrail.record("noted")
    assert len(hash_selects(first)) == 1
    assert hash_selects(later) == []
    events = list(Event.objects.order_by("id"))
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert "intact" in call_verify()


@pytest.mark.django_db
def test_a_rolled_back_savepoint_makes_the_next_event_select_again():
    """The events written inside the savepoint are gone: the next event must
    chain to what is really the newest, not to the last one written."""
    Product.objects.create(name="kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.create(name="rolled back")
        raise RuntimeError
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="after")
        assert Event.objects.exists()  # inserts the held event
    assert len(hash_selects(ctx)) == 1
    sid = transaction.savepoint_create()
    Product.objects.create(name="rolled back too")
    transaction.savepoint_rollback(sid)
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="last")
        assert Event.objects.exists()
    assert len(hash_selects(ctx)) == 1
    assert Event.objects.filter(action="create").count() == 3
    assert "intact" in call_verify()


@pytest.mark.django_db
def test_a_released_savepoint_keeps_the_newest_hash():
    Product.objects.create(name="a")
    with transaction.atomic():
        Product.objects.create(name="b")
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="c")
        assert Event.objects.exists()  # inserts the held events
    assert hash_selects(ctx) == []
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_the_trail_registers_no_on_commit_callback(django_capture_on_commit_callbacks):
    """A project's tests that count their on-commit callbacks see only their
    own, and a long transaction pays nothing per event at commit."""
    with transaction.atomic(), django_capture_on_commit_callbacks() as callbacks:
        for i in range(5):
            Product.objects.create(name=f"p{i}")
        Product.objects.filter(name="p1").update(stock=F("stock") + 1)
        transaction.on_commit(lambda: None)
    assert len(callbacks) == 1
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="after")
    assert hash_selects(ctx) == []  # the commit was noted all the same
    events = list(Event.objects.order_by("id"))
    assert events[-1].prev_hash == events[-2].hash
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_concurrent_connections_fork_the_chain_and_verify_accepts_it():
    """Another connection (another thread, as another process would) writes in
    between: each continues from its own last event, and the fork is valid."""
    Product.objects.create(name="a")

    def elsewhere():
        try:
            signaltrail.record("elsewhere")
            signaltrail.record("elsewhere again")
        finally:
            connections.close_all()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="b")
    assert hash_selects(ctx) == []
    a, b = Event.objects.filter(action="create").order_by("id")
    first, second = Event.objects.filter(action__startswith="elsewhere").order_by("id")
    assert first.prev_hash == a.hash  # its connection's first event: the newest then
    assert second.prev_hash == first.hash
    assert b.prev_hash == a.hash  # this connection's own last committed event
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_is_never_pointed_at():
    Product.objects.create(name="kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.create(name="rolled back")
        raise RuntimeError
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="after")
    # The rolled-back event was held, never inserted: the committed head stands.
    assert hash_selects(ctx) == []
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.create(name="rolled back after a read")
        assert Event.objects.filter(action="create").count() == 3  # inserts it
        raise RuntimeError
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="after it")
    assert len(hash_selects(ctx)) == 1  # the head it knew was rolled back
    with transaction.atomic():
        Product.objects.create(name="kept in a transaction")
        sid = transaction.savepoint_create()  # by hand: Django keeps its callbacks
        Product.objects.create(name="rolled back in a savepoint")
        transaction.savepoint_rollback(sid)
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="after a savepoint by hand")
    assert len(hash_selects(ctx)) == 1
    with transaction.atomic():
        Product.objects.create(name="kept again")
        with pytest.raises(RuntimeError), transaction.atomic():
            Product.objects.create(name="rolled back in an atomic savepoint")
            raise RuntimeError
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="last")
    assert len(hash_selects(ctx)) == 1
    kept, after, after_it, in_txn, after_sp, kept_again, last = Event.objects.filter(
        action="create"
    ).order_by("id")
    assert after.prev_hash == kept.hash
    assert after_it.prev_hash == after.hash
    assert after_sp.prev_hash == in_txn.hash
    assert last.prev_hash == kept_again.hash
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_on_commit_callbacks_run_inside_a_transaction_commit_nothing(
    django_capture_on_commit_callbacks,
):
    """A test helper running on-commit callbacks early must not make a
    connection trust an event that is then rolled back."""
    Product.objects.create(name="committed")
    with pytest.raises(RuntimeError), transaction.atomic():
        with django_capture_on_commit_callbacks(execute=True):
            Product.objects.create(name="rolled back later")
        raise RuntimeError
    Product.objects.create(name="next")
    committed, nxt = Event.objects.filter(action="create").order_by("id")
    assert nxt.prev_hash == committed.hash
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("post_migrate", [True, False], ids=["flush", "flush-without-post_migrate"])
def test_after_flush_the_next_event_looks_again(post_migrate):
    """``flush`` empties the table: a hash remembered before it is gone.
    TransactionTestCase flushes without post_migrate when it has
    ``available_apps`` or ``serialized_rollback``."""
    Product.objects.create(name="before")
    call_command("flush", "--no-input", verbosity=0, inhibit_post_migrate=not post_migrate)
    if not post_migrate:
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()  # as the runner's next setUp has it
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.create(name="after")
    assert len(hash_selects(ctx)) == 1
    assert Event.objects.get().prev_hash == ""
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_emptying_the_table_while_the_application_runs_is_detected():
    Product.objects.create(name="before")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(EVENTS)}")
    Product.objects.create(name="after")
    with pytest.raises(CommandError, match="tampered"):
        call_verify()


# -- QuerySet.update() with UPDATE ... RETURNING -------------------------------------


@pytest.mark.django_db
def test_an_expression_update_records_the_values_written():
    products = Product.objects.bulk_create(
        [Product(name=f"p{i}", stock=i, price=decimal.Decimal("1.10")) for i in range(4)]
    )
    count = Product.objects.filter(stock__gte=1).update(
        stock=F("stock") * 10, price=F("price") + decimal.Decimal("0.05")
    )
    assert count == 3
    updates = {e.object_pk: e.changes for e in Event.objects.filter(action="update")}
    assert updates == {
        str(p.pk): {"stock": [p.stock, p.stock * 10], "price": ["1.10", "1.15"]}
        for p in products[1:]
    }


@pytest.mark.django_db
def test_an_expression_update_of_a_parents_field_is_recorded():
    """A multi-table child's update also writes its parent's table, which
    UPDATE ... RETURNING can't do: Django's own update, then a SELECT."""
    restaurant = Restaurant.objects.create(name="Luigi", serves_pizza=False)
    count = Restaurant.objects.filter(pk=restaurant.pk).update(name=F("name"), serves_pizza=True)
    assert count == 1
    event = Event.objects.for_object(restaurant).get(action="update")
    assert event.changes == {"serves_pizza": [False, True]}
    assert Place.objects.get(pk=restaurant.pk).name == "Luigi"


@pytest.mark.django_db
def test_an_update_after_distinct_on_fields_is_refused_as_django_does():
    """Django raises TypeError for ``distinct(*fields).update()``; the tracked
    path must not update (and record) the rows instead."""
    if not connection.features.can_distinct_on_fields:
        pytest.skip("DISTINCT ON is PostgreSQL's")
    Product.objects.create(name="a", stock=1)
    with pytest.raises(TypeError, match="distinct"):
        Product.objects.distinct("name").update(stock=2)
    assert Product.objects.get().stock == 1
    assert not Event.objects.filter(action="update").exists()


# -- object_repr's copy ------------------------------------------------------------


@pytest.mark.django_db
def test_object_repr_runs_str_on_a_copy_like_copy_copy(monkeypatch):
    category = Category.objects.create(name="Tools")
    product = Product.objects.select_related("category").get(
        pk=Product.objects.create(name="Saw", category=category).pk
    )

    def remembering_str(self):
        self.rendered = True  # a __str__ with a side effect on its instance
        return f"{self.name} ({self.category.name})"

    monkeypatch.setattr(Product, "__str__", remembering_str)
    assert reprs.object_repr(product) == "Saw (Tools)"
    assert "rendered" not in product.__dict__

    ours, theirs = reprs._copy(product), copy.copy(product)
    theirs_dict = {k: v for k, v in theirs.__dict__.items() if k != "_django_version"}
    assert ours.__dict__.keys() == theirs_dict.keys()
    assert {k: v for k, v in ours.__dict__.items() if k != "_state"} == {
        k: v for k, v in theirs_dict.items() if k != "_state"
    }
    assert ours._state.__dict__ == theirs._state.__dict__
    assert ours._state.fields_cache is not product._state.fields_cache
    assert ours._state is not product._state


# -- the COMMIT sent with the event of an autocommit save (PostgreSQL) ----------------


def _event_inserts(ctx):
    return [q["sql"] for q in ctx.captured_queries if f'INTO "{EVENTS}"' in q["sql"]]


def _seen_from_another_connection(model, **lookup):
    found = []

    def look():
        try:
            found.append(model.objects.filter(**lookup).exists())
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return found[0]


@pytest.mark.django_db(transaction=True)
def test_an_autocommit_save_commits_with_its_event_in_one_statement():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: other drivers take one statement per execute()")
    with CaptureQueriesContext(connection) as ctx:
        product = Product.objects.create(name="committed with its event")
    [insert] = _event_inserts(ctx)
    assert insert.rstrip().endswith("; COMMIT")
    assert not connection.in_atomic_block
    assert _seen_from_another_connection(Product, pk=product.pk)
    assert _seen_from_another_connection(Event, object_pk=str(product.pk), action="create")
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_a_save_inside_a_transaction_leaves_the_commit_to_it():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's test database locks the table for other connections")
    with transaction.atomic(), CaptureQueriesContext(connection) as ctx:
        product = Product.objects.create(name="inside")
        assert not _seen_from_another_connection(Product, pk=product.pk)
    assert not any("COMMIT" in sql for sql in _event_inserts(ctx))
    assert _seen_from_another_connection(Product, pk=product.pk)


@pytest.mark.django_db(transaction=True)
def test_a_deferred_constraint_failing_at_commit_keeps_neither_row_nor_event():
    """PostgreSQL checks Django's foreign keys at COMMIT: that is when the
    statement carrying the COMMIT fails, and nothing of the save remains."""
    before = Event.objects.count()
    with pytest.raises(IntegrityError):
        Product.objects.create(name="orphan", category_id=987654321)
    assert not Product.objects.filter(name="orphan").exists()
    assert Event.objects.count() == before
    Product.objects.create(name="the connection still works")
    assert Event.objects.count() == before + 1
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_a_server_side_binding_cursor_keeps_the_commit_apart():
    """With a cursor that binds on the server (the ``server_side_binding``
    option, or a ``cursor_factory`` of the project's), one execute() can't
    hold two statements: the save must still work, COMMIT sent apart."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = connection.connection
    before = raw.cursor_factory
    raw.cursor_factory = ServerBindingCursor
    try:
        with CaptureQueriesContext(connection) as ctx:
            product = Product.objects.create(name="bound on the server")
    finally:
        raw.cursor_factory = before
    [insert] = _event_inserts(ctx)
    assert "COMMIT" not in insert
    assert _seen_from_another_connection(Product, pk=product.pk)
    assert _seen_from_another_connection(Event, object_pk=str(product.pk), action="create")
    assert "intact" in call_verify()


@pytest.mark.django_db
@pytest.mark.parametrize("mode", [None, "peers"])
def test_bulk_reprs_leave_the_instances_as_they_were(mode):
    """The bulk paths run __str__ on the instance itself, fetch mode set to
    raise and put back: nothing is loaded into it, and a __str__ that needs a
    query gives Django's default text."""
    from django.db.models import FETCH_PEERS

    category = Category.objects.create(name="Tools")
    objs = [Product(name="a", category_id=category.pk), Product(name="b", category=category)]
    if mode:
        for obj in objs:
            obj._state.fetch_mode = FETCH_PEERS
    Product.objects.bulk_create(objs)
    created = list(Event.objects.for_model(Product).filter(action="create").order_by("id"))
    assert [e.object_repr for e in created] == [f"Product object ({objs[0].pk})", "b (Tools)"]
    assert "category" not in objs[0]._state.fields_cache
    for obj in objs:
        if mode:
            assert obj._state.fetch_mode is FETCH_PEERS
        else:
            assert "fetch_mode" not in obj._state.__dict__


# -- COPY for many events (PostgreSQL, psycopg 3) --------------------------------------

ODD_TEXTS = ["tab\there", "new\nline", "back\\slash", 'quote "q"', "ü ✓ 😀", "\\N", "", "a\rb"]


@pytest.mark.django_db
def test_many_events_are_copied_and_store_what_the_insert_stores(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL with psycopg 3")
    from signaltrail import inserts

    texts = ODD_TEXTS * (inserts.COPY_FROM // len(ODD_TEXTS) + 1)

    def batch(tag):
        return [
            Product(
                name=f"{tag} {text}",
                description=text,
                data={"text": text, "n": i, "nested": [text, None, 1.5]},
            )
            for i, text in enumerate(texts)
        ]

    with signaltrail.context(actor="cron", reason="tab\tand\nnewline"):
        with CaptureQueriesContext(connection) as copied:
            Product.objects.bulk_create(batch("copy"))
        monkeypatch.setattr(inserts, "COPY_FROM", 10**9)
        with CaptureQueriesContext(connection) as inserted:
            Product.objects.bulk_create(batch("insert"))
    # (and a connection's first event SELECTs the newest hash)
    writes = [q["sql"][:4] for q in copied.captured_queries if EVENTS in q["sql"]]
    assert writes[-1:] == ["COPY"] and "INSE" not in writes
    assert not any(q["sql"].startswith("COPY") for q in inserted.captured_queries)
    events = list(Event.objects.filter(action="create").order_by("id"))
    half = len(events) // 2
    columns = "object_repr, changes::text, context::text, actor_label, content_type_id"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {EVENTS} WHERE action = 'create' ORDER BY id")
        stored = cursor.fetchall()
    for copy_row, insert_row in zip(stored[:half], stored[half:], strict=True):
        assert copy_row[0].replace("copy ", "insert ", 1) == insert_row[0]
        assert copy_row[2:] == insert_row[2:]
    assert events[0].changes["description"] == [None, ODD_TEXTS[0]]
    assert events[0].context["reason"] == "tab\tand\nnewline"
    assert [e.object_pk for e in events[:3]] == [
        str(p.pk) for p in Product.objects.order_by("id")[:3]
    ]
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_a_failing_copy_raises_a_django_error_and_leaves_nothing():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL with psycopg 3")
    from django.db import DatabaseError

    from signaltrail import inserts
    from tests.test_held import refusing_events

    with refusing_events(), pytest.raises(DatabaseError, match="trail down"):
        Product.objects.bulk_create([Product(name=f"p{i}") for i in range(inserts.COPY_FROM)])
    assert not Product.objects.exists()
    assert not Event.objects.exists()


def _pg_copy_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL with psycopg 3")


@pytest.mark.django_db
def test_a_streamed_update_stores_what_a_listed_one_stores(monkeypatch):
    """update()'s events are built while COPY sends them; with COPY off they
    go into one INSERT. Both store the same rows, rows left as they were
    record nothing, and the chain holds."""
    _pg_copy_only()
    from django.db.models import Case, When

    from signaltrail import inserts

    n = inserts.COPY_FROM + 20
    Product.objects.bulk_create([Product(name=f"p{i}", stock=i * 10) for i in range(n)])
    first = Product.objects.order_by("pk").first()
    # Every row but the first changes.
    bump = Case(When(pk=first.pk, then=F("stock")), default=F("stock") + 1)
    with CaptureQueriesContext(connection) as streamed:
        assert Product.objects.update(stock=bump) == n
    monkeypatch.setattr(inserts, "COPY_FROM", 10**9)
    with CaptureQueriesContext(connection) as listed:
        assert Product.objects.update(stock=bump) == n
    copies = [q["sql"] for q in streamed.captured_queries if q["sql"].startswith("COPY")]
    assert copies == [f"{inserts.statements(connection)['copy']} -- {n - 1} rows"]
    assert not any(q["sql"].startswith("COPY") for q in listed.captured_queries)
    updates = list(Event.objects.filter(action="update").order_by("id"))
    assert len(updates) == 2 * (n - 1)
    history = {}
    for event in updates:
        history.setdefault(event.object_pk, []).append(event.changes)
    assert str(first.pk) not in history
    for product in Product.objects.exclude(pk=first.pk):
        i = int(product.name[1:])
        assert history[str(product.pk)] == [
            {"stock": [i * 10, i * 10 + 1]},
            {"stock": [i * 10 + 1, i * 10 + 2]},
        ]
    assert {e.object_repr for e in updates} == {f"Product object ({e.object_pk})" for e in updates}
    assert "intact" in call_verify()


@pytest.mark.django_db(transaction=True)
def test_an_error_while_streaming_raises_itself_and_leaves_nothing(monkeypatch):
    """An exception raised while the events are built, the COPY half sent,
    comes out as itself; the update is rolled back with its events and the
    connection goes on working."""
    _pg_copy_only()
    from signaltrail import bulk, inserts

    n = inserts.COPY_FROM * 2
    Product.objects.bulk_create([Product(name=f"p{i}") for i in range(n)])
    events_before = Event.objects.count()
    diff = bulk._diff_values
    calls = itertools.count()

    def failing(*args):
        if next(calls) == n - 10:
            raise ZeroDivisionError("while diffing")
        return diff(*args)

    monkeypatch.setattr(bulk, "_diff_values", failing)
    with pytest.raises(ZeroDivisionError, match="while diffing"):
        Product.objects.update(stock=F("stock") + 1)
    assert not Product.objects.filter(stock__gt=0).exists()
    assert Event.objects.count() == events_before
    monkeypatch.setattr(bulk, "_diff_values", diff)
    assert Product.objects.update(stock=F("stock") + 1) == n
    assert Event.objects.count() == events_before + n
    assert "intact" in call_verify()


@pytest.mark.django_db
def test_copy_stores_a_timestamp_without_microseconds_as_it_is(monkeypatch):
    """COPY sends the time as ISO 8601 text, which leaves out ".000000" when
    the microseconds are 0: PostgreSQL must read the same instant."""
    _pg_copy_only()
    from signaltrail import inserts, writer

    at = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    monkeypatch.setattr(writer.timezone, "now", lambda: at)
    Product.objects.bulk_create([Product(name=f"p{i}") for i in range(inserts.COPY_FROM)])
    creates = Event.objects.filter(action="create")
    assert creates.count() == inserts.COPY_FROM
    assert set(creates.values_list("at", flat=True)) == {at}
    assert "intact" in call_verify()


@pytest.mark.django_db
def test_a_str_that_memoizes_keeps_its_own_value_after_a_bulk_path(monkeypatch):
    """The bulk paths run __str__ on a copy: what it stores on self while
    fetching is refused stays on the copy, not on the caller's objects."""
    category = Category.objects.create(name="Tools")

    def memoizing_str(self):
        if "_label" not in self.__dict__:
            try:
                self._label = f"{self.name} ({self.category.name})"
            except Exception:
                self._label = self.name
        return self._label

    monkeypatch.setattr(Product, "__str__", memoizing_str)
    objs = [Product(name="a", category_id=category.pk), Product(name="b", category_id=category.pk)]
    Product.objects.bulk_create(objs)
    assert [str(o) for o in objs] == ["a (Tools)", "b (Tools)"]
