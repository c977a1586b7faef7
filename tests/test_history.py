"""Reading the trail back: ``record``, ``event_recorded``, ``history``, the manager's
queries, ``as_of`` and ``revert``, and the indexes those queries rely on.
"""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

import signaltrail
from signaltrail.exceptions import RevertError
from signaltrail.models import Event
from signaltrail.signals import event_recorded
from tests.testapp.models import Category, Code, DiscountedProduct, Product, Tag, UUIDThing


def T(minute: int, second: int = 0) -> datetime.datetime:
    return datetime.datetime(2030, 1, 1, 12, minute, second, tzinfo=datetime.UTC)


@pytest.fixture
def clock(monkeypatch):
    """A clock the test sets: events get the timestamps the test chooses."""

    class Clock:
        now = T(0)

        def __call__(self):
            return self.now

    fake = Clock()
    monkeypatch.setattr(timezone, "now", fake)
    return fake


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


# -- record() ------------------------------------------------------------------


@pytest.mark.django_db
def test_record_about_an_object_merges_details_over_the_context(alice):
    product = Product.objects.create(name="Lamp")

    with signaltrail.context(actor=alice, reason="audit", source="command"):
        event = signaltrail.record("exported", product, format="csv", source="export", n=3)

    assert event.pk is not None
    stored = Event.objects.get(pk=event.pk)
    assert stored.action == "exported"
    assert stored.actor == alice
    assert stored.content_type.model_class() is Product
    assert stored.object_pk == str(product.pk)
    assert stored.object_repr == "Lamp"
    assert stored.changes == {}
    assert stored.context == {"reason": "audit", "source": "export", "format": "csv", "n": 3}


@pytest.mark.django_db
def test_record_without_an_object():
    event = signaltrail.record("nightly_report_sent", recipients=2, total=Decimal("1.50"))

    stored = Event.objects.get(pk=event.pk)
    assert stored.content_type is None
    assert stored.object_pk == ""
    assert stored.object_repr == ""
    assert stored.context == {"recipients": 2, "total": "1.50"}


@pytest.mark.django_db
def test_record_accepts_an_action_of_64_characters():
    assert signaltrail.record("a" * 64).action == "a" * 64


@pytest.mark.parametrize("action", ["", "   ", None, 42, b"bytes", "a" * 65])
@pytest.mark.django_db
def test_record_refuses_a_bad_action(action):
    with pytest.raises(ValueError, match="action must be a non-empty text of at most 64"):
        signaltrail.record(action)
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_record_refuses_something_that_is_not_a_model_instance():
    with pytest.raises(TypeError, match="model instance"):
        signaltrail.record("exported", "not a model")
    assert not Event.objects.exists()


# -- event_recorded ------------------------------------------------------------


@pytest.fixture
def received():
    """Events passed to event_recorded receivers, with what the database held then."""
    seen = []

    def receiver(sender, event, **kwargs):
        stored = Event.objects.filter(pk=event.pk).values_list("hash", flat=True).first()
        seen.append((sender, event, stored))

    event_recorded.connect(receiver, dispatch_uid="test_history.received")
    yield seen
    event_recorded.disconnect(dispatch_uid="test_history.received")


@pytest.mark.django_db
def test_event_recorded_is_sent_for_every_event_once_written(received):
    tag = Tag.objects.create(name="red")
    product = Product.objects.create(name="Lamp")
    product.price = 5
    product.save()
    product.tags.add(tag)
    signaltrail.record("exported", product)
    signaltrail.record("no_object")
    product.delete()

    actions = [event.action for _, event, _ in received]
    assert actions == ["create", "update", "m2m_add", "exported", "no_object", "delete"]
    for sender, event, stored_hash in received:
        assert sender is Event
        assert event.pk is not None
        assert stored_hash == event.hash  # the row was in the database already
    assert len({event.pk for _, event, _ in received}) == len(received)


# -- history() and the manager ---------------------------------------------------


@pytest.mark.django_db
def test_history_is_newest_first(clock):
    clock.now = T(1)
    product = Product.objects.create(name="Lamp")
    for minute in (2, 3, 4):
        clock.now = T(minute)
        product.stock = minute
        product.save()
    Product.objects.create(name="someone else")

    events = list(signaltrail.history(product))
    assert [e.at for e in events] == [T(4), T(3), T(2), T(1)]
    assert [e.action for e in events] == ["update", "update", "update", "create"]
    assert [e.changes.get("stock", [None, None])[1] for e in events] == [4, 3, 2, 0]


@pytest.mark.django_db
def test_history_orders_events_of_the_same_moment_by_id_descending(clock):
    """Events of one transaction share a timestamp on PostgreSQL; the id breaks ties."""
    clock.now = T(1)
    product = Product.objects.create(name="Lamp")
    for stock in range(1, 6):
        product.stock = stock
        product.save()

    events = list(signaltrail.history(product))
    assert len(events) == 6
    assert {e.at for e in events} == {T(1)}
    # Ties may come back in id order by luck of the query plan; the declared
    # ordering is what guarantees it on every database and plan.
    assert tuple(signaltrail.history(product).query.order_by) == ("-at", "-id")
    for listing in (
        Event.objects.all(),
        Event.objects.for_object(product),
        Event.objects.for_model(Product),
        Event.objects.by_actor(None),
    ):
        assert tuple(listing.query.order_by or Event._meta.ordering) == ("-at", "-id")
    ids = [e.pk for e in events]
    assert ids == sorted(ids, reverse=True)
    assert events[0].changes["stock"] == [4, 5]
    assert events[-1].action == "create"


@pytest.mark.django_db
def test_history_orders_by_time_before_id(clock):
    """An event written later (higher id) with an earlier timestamp - a transaction that
    started before another but committed after it - is listed by its timestamp."""
    clock.now = T(5)
    product = Product.objects.create(name="Lamp")
    clock.now = T(3)
    product.stock = 1
    product.save()

    events = list(signaltrail.history(product))
    assert [e.action for e in events] == ["create", "update"]
    assert [e.at for e in events] == [T(5), T(3)]


@pytest.mark.django_db
def test_for_object_works_for_integer_uuid_and_text_keys_and_proxies():
    product = Product.objects.create(name="Lamp")
    thing = UUIDThing.objects.create(label="x")
    code = Code.objects.create(code="ABC-1", label="x")
    other = Code.objects.create(code="ABC-10", label="y")

    for obj in (product, thing, code, other):
        events = list(Event.objects.for_object(obj))
        assert [e.action for e in events] == ["create"], obj
        assert events[0].object_pk == str(obj.pk)
    # A proxy instance finds the events of its concrete model's object.
    proxy = DiscountedProduct.objects.get(pk=product.pk)
    assert list(Event.objects.for_object(proxy)) == list(Event.objects.for_object(product))
    # No match across models that happen to share a pk value.
    category = Category.objects.create(name="c")
    assert Event.objects.for_object(category).count() == 1


@pytest.mark.django_db
def test_for_model_and_by_actor(alice, bob):
    with signaltrail.context(actor=alice):
        lamp = Product.objects.create(name="Lamp")
        Category.objects.create(name="Lights")
    with signaltrail.context(actor=bob):
        lamp.stock = 3
        lamp.save()
        UUIDThing.objects.create(label="x")

    assert {(e.action, e.object_pk) for e in Event.objects.for_model(Product)} == {
        ("create", str(lamp.pk)),
        ("update", str(lamp.pk)),
    }
    assert Event.objects.for_model(lamp).count() == 2  # an instance names its model too
    assert Event.objects.for_model(DiscountedProduct).count() == 2
    assert sorted(e.content_type.model for e in Event.objects.by_actor(alice)) == [
        "category",
        "product",
    ]
    assert sorted(e.content_type.model for e in Event.objects.by_actor(bob)) == [
        "product",
        "uuidthing",
    ]
    # Chained, newest first.
    chained = list(Event.objects.for_model(Product).by_actor(bob))
    assert [e.action for e in chained] == ["update"]


@pytest.mark.django_db(databases=["default", "other"])
def test_history_reads_the_database_of_the_object():
    here = Product.objects.create(name="default")
    there = Product.objects.using("other").create(name="other")

    assert [e.object_repr for e in signaltrail.history(here)] == ["default"]
    assert [e.object_repr for e in signaltrail.history(there)] == ["other"]
    assert signaltrail.history(there).db == "other"


# -- as_of() -------------------------------------------------------------------


@pytest.mark.django_db
def test_as_of_gives_the_values_at_each_moment(clock):
    category = Category.objects.create(name="Lights")
    clock.now = T(10)
    product = Product.objects.create(name="Lamp", price="10.00", stock=1, api_key="key-one")
    clock.now = T(20)
    product.price = Decimal("12.00")
    product.api_key = "key-two"
    product.save()
    clock.now = T(30)
    product.name = "Lamp XL"
    product.category = category
    product.save()

    assert signaltrail.as_of(product, T(5)) is None
    assert signaltrail.as_of(product, T(10) - datetime.timedelta(microseconds=1)) is None

    at_creation = signaltrail.as_of(product, T(10))
    assert at_creation["name"] == "Lamp"
    assert at_creation["price"] == Decimal("10.00")
    assert at_creation["stock"] == 1
    assert at_creation["category"] is None
    assert signaltrail.as_of(product, T(15)) == at_creation

    between = signaltrail.as_of(product, T(25))
    assert (between["name"], between["price"]) == ("Lamp", Decimal("12.00"))

    now = signaltrail.as_of(product, T(35))
    assert (now["name"], now["price"], now["category"]) == (
        "Lamp XL",
        Decimal("12.00"),
        category.pk,
    )
    assert now["id"] == product.pk


@pytest.mark.django_db
def test_as_of_never_reveals_a_masked_value(clock):
    clock.now = T(10)
    product = Product.objects.create(name="Lamp", api_key="key-one")
    clock.now = T(20)
    product.api_key = "key-two"
    product.save()

    for when in (T(10), T(15), T(20), T(25)):
        values = signaltrail.as_of(product, when)
        assert values["api_key"] == "***", when
        assert "key-" not in str(values)


@pytest.mark.django_db
def test_as_of_leaves_out_fields_the_trail_does_not_record(clock):
    """``updated_at`` is excluded from tracking: the trail can't know its past values,
    so as_of must not present today's value as the value of back then."""
    clock.now = T(10)
    product = Product.objects.create(name="Lamp")
    clock.now = T(20)
    product.stock = 3
    product.save()

    assert "updated_at" not in signaltrail.as_of(product, T(15))


@pytest.mark.django_db
def test_as_of_after_delete(clock):
    clock.now = T(10)
    product = Product.objects.create(name="Lamp", price="10.00", api_key="key-one")
    clock.now = T(20)
    product.price = Decimal("12.00")
    product.save()
    clock.now = T(30)
    pk = product.pk
    product.delete()
    gone = Product(pk=pk)  # delete() sets the instance's pk to None

    assert signaltrail.as_of(gone, T(30)) is None
    assert signaltrail.as_of(gone, T(40)) is None
    before_delete = signaltrail.as_of(gone, T(25))
    assert (before_delete["name"], before_delete["price"]) == ("Lamp", Decimal("12.00"))
    assert before_delete["api_key"] == "***"
    assert signaltrail.as_of(gone, T(15))["price"] == Decimal("10.00")
    assert signaltrail.as_of(gone, T(5)) is None


@pytest.mark.django_db
def test_as_of_accepts_a_naive_datetime_in_the_current_time_zone(clock):
    clock.now = T(10)
    product = Product.objects.create(name="Lamp")

    assert signaltrail.as_of(product, T(5).replace(tzinfo=None)) is None
    assert signaltrail.as_of(product, T(15).replace(tzinfo=None))["name"] == "Lamp"


# -- revert() ------------------------------------------------------------------


def newest(obj):
    return signaltrail.history(obj).first()


@pytest.mark.django_db
def test_revert_an_update(alice):
    old_category = Category.objects.create(name="Old")
    new_category = Category.objects.create(name="New")
    product = Product.objects.create(
        name="Lamp", price="10.00", stock=1, api_key="key-one", category=old_category
    )
    product.price = Decimal("12.00")
    product.stock = 2
    product.api_key = "key-two"
    product.category = new_category
    product.save()
    update = newest(product)

    with signaltrail.context(actor=alice, reason="undo"):
        signaltrail.revert(update)

    product.refresh_from_db()
    assert (product.price, product.stock, product.category) == (
        Decimal("10.00"),
        1,
        old_category,
    )
    assert product.api_key == "key-two"  # masked: the trail never had the old value
    revert_event = newest(product)
    assert revert_event.pk != update.pk
    assert revert_event.action == "update"
    assert revert_event.actor == alice
    assert revert_event.context["reverted_event"] == update.pk
    assert revert_event.context["reason"] == "undo"
    assert revert_event.changes == {
        "price": ["12.00", "10.00"],
        "stock": [2, 1],
        "category": [new_category.pk, old_category.pk],
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: UUIDThing.objects.create(label="a"),
        lambda: Code.objects.create(code="K-1", label="a"),
    ],
)
@pytest.mark.django_db
def test_revert_an_update_of_an_object_with_a_uuid_or_text_key(make):
    obj = make()
    obj.label = "b"
    obj.save()

    signaltrail.revert(newest(obj))

    obj.refresh_from_db()
    assert obj.label == "a"
    assert newest(obj).context["reverted_event"] is not None


@pytest.mark.django_db
def test_revert_a_create_deletes_the_object():
    product = Product.objects.create(name="Lamp")
    create = newest(product)
    pk = product.pk

    signaltrail.revert(create)

    assert not Product.objects.filter(pk=pk).exists()
    deletion = newest(Product(pk=pk))
    assert deletion.action == "delete"
    assert deletion.context["reverted_event"] == create.pk


@pytest.mark.django_db
def test_revert_a_delete_recreates_the_object_with_its_pk():
    category = Category.objects.create(name="Lights")
    product = Product.objects.create(
        name="Lamp", price="10.00", stock=4, category=category, api_key="key-one"
    )
    pk = product.pk
    product.delete()
    deletion = newest(Product(pk=pk))

    restored = signaltrail.revert(deletion)

    assert restored.pk == pk
    product = Product.objects.get(pk=pk)
    assert (product.name, product.price, product.stock, product.category) == (
        "Lamp",
        Decimal("10.00"),
        4,
        category,
    )
    assert product.api_key == ""  # masked: not restorable
    creation = newest(product)
    assert creation.action == "create"
    assert creation.context["reverted_event"] == deletion.pk


@pytest.mark.django_db
def test_revert_a_delete_of_an_object_that_exists_again_changes_nothing():
    product = Product.objects.create(name="Lamp")
    pk = product.pk
    product.delete()
    deletion = newest(Product(pk=pk))
    signaltrail.revert(deletion)
    count = Event.objects.count()

    with pytest.raises(RevertError, match="exists again"):
        signaltrail.revert(deletion)
    assert Event.objects.count() == count


@pytest.mark.django_db
def test_revert_m2m_add_and_remove():
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    product = Product.objects.create(name="Lamp")
    product.tags.add(red, blue)
    added = newest(product)
    product.tags.remove(red)
    removed = newest(product)
    assert (added.action, removed.action) == ("m2m_add", "m2m_remove")

    signaltrail.revert(removed)
    assert set(product.tags.all()) == {red, blue}
    event = newest(product)
    assert event.action == "m2m_add"
    assert event.changes == {"tags": {"add": [red.pk]}}
    assert event.context["reverted_event"] == removed.pk

    signaltrail.revert(added)
    assert set(product.tags.all()) == set()
    event = newest(product)
    assert event.action == "m2m_remove"
    assert event.changes == {"tags": {"remove": sorted([red.pk, blue.pk])}}
    assert event.context["reverted_event"] == added.pk


@pytest.mark.django_db
def test_revert_refuses_m2m_clear_and_changes_nothing():
    red = Tag.objects.create(name="red")
    product = Product.objects.create(name="Lamp")
    product.tags.add(red)
    product.tags.clear()
    clear = newest(product)
    assert clear.action == "m2m_clear"
    product.tags.add(red)
    count = Event.objects.count()

    with pytest.raises(RevertError, match="m2m_clear cannot be reverted"):
        signaltrail.revert(clear)
    assert list(product.tags.all()) == [red]
    assert Event.objects.count() == count


@pytest.mark.django_db
def test_revert_refuses_when_the_object_is_gone():
    product = Product.objects.create(name="Lamp")
    product.stock = 2
    product.save()
    update = newest(product)
    product.delete()
    count = Event.objects.count()

    with pytest.raises(RevertError, match=f"object of event {update.pk} no longer exists"):
        signaltrail.revert(update)
    assert Event.objects.count() == count


@pytest.mark.django_db
def test_revert_refuses_events_that_are_not_changes(client, django_user_model):
    django_user_model.objects.create_user("alice", password="pw")
    client.login(username="alice", password="pw")
    product = Product.objects.create(name="Lamp")
    custom = signaltrail.record("exported", product)
    loose = signaltrail.record("report_sent")
    login = Event.objects.get(action="login")
    count = Event.objects.count()

    for event in (custom, loose, login):
        with pytest.raises(RevertError, match=f"{event.action} cannot be reverted"):
            signaltrail.revert(event)
    assert Event.objects.count() == count


# -- indexes -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_indexes_of_event_meta_exist_in_the_database():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Event._meta.db_table)

    assert Event._meta.indexes
    for index in Event._meta.indexes:
        assert index.name in constraints, index.name
        found = constraints[index.name]
        assert found["index"]
        assert found["columns"] == [Event._meta.get_field(f).column for f in index.fields]
    # `at` alone (db_index=True): the global feed, newest first.
    assert any(c["index"] and c["columns"] == ["at"] for c in constraints.values())
