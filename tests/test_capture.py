"""Capture: every create, update, delete and m2m change of a tracked model is one event.

What a user relies on: the ``changes`` format of DESIGN.md (``{"field": [old, new]}``,
old ``None`` on create, new ``None`` on delete, only changed fields on update), the
m2m formats, and invariant 1: the event commits exactly when the change commits.
"""

import contextlib
import json
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction

import signaltrail
from signaltrail.models import Event
from signaltrail.signals import event_recorded
from tests.test_held import verified
from tests.testapp.models import (
    Article,
    Category,
    Club,
    Code,
    DiscountedProduct,
    Member,
    Note,
    Place,
    Product,
    Restaurant,
    Tag,
    UUIDThing,
)


def events_of(obj, action=None):
    """The object's events, oldest first (ids grow with time)."""
    qs = Event.objects.for_object(obj).order_by("id")
    if action is not None:
        qs = qs.filter(action=action)
    return list(qs)


def only_event(obj, action):
    found = events_of(obj, action)
    assert len(found) == 1, f"expected one {action} event, got {found}"
    return found[0]


# -- create, update, delete ---------------------------------------------------


@pytest.mark.django_db
def test_create_records_every_field_with_old_none():
    category = Category.objects.create(name="Tools")
    p = Product.objects.create(
        name="Hammer",
        price=Decimal("9.90"),
        stock=3,
        category=category,
        api_key="secret",
        data={"colour": "red"},
    )

    event = only_event(p, "create")
    assert event.content_type == ContentType.objects.get_for_model(Product)
    assert event.object_pk == str(p.pk)
    assert event.object_repr == "Hammer (Tools)"
    # updated_at is excluded, api_key masked, the FK recorded as its pk.
    assert event.changes == {
        "id": [None, p.pk],
        "name": [None, "Hammer"],
        "price": [None, "9.90"],
        "stock": [None, 3],
        "description": [None, ""],
        "api_key": [None, "***"],
        "category": [None, category.pk],
        "data": [None, {"colour": "red"}],
        "image": [None, None],
    }


@pytest.mark.django_db
def test_update_records_only_the_changed_fields():
    p = Product.objects.create(name="Hammer", price=Decimal("9.90"), stock=3)
    p = Product.objects.get(pk=p.pk)
    p.name = "Big hammer"
    p.price = Decimal("12.50")
    p.save()

    event = only_event(p, "update")
    assert event.changes == {"name": ["Hammer", "Big hammer"], "price": ["9.90", "12.50"]}
    assert event.object_repr == "Big hammer"


@pytest.mark.django_db
def test_successive_updates_chain_their_old_values():
    """After a save the written values are the new baseline, without reloading."""
    p = Product.objects.create(name="a")
    for name in ("b", "c"):
        p.name = name
        p.save()

    assert [e.changes for e in events_of(p, "update")] == [
        {"name": ["a", "b"]},
        {"name": ["b", "c"]},
    ]


@pytest.mark.django_db
def test_a_save_that_changes_nothing_records_nothing():
    p = Product.objects.create(name="Hammer", price=Decimal("9.90"))
    p.save()
    loaded = Product.objects.get(pk=p.pk)
    loaded.save()
    loaded.price = Decimal("9.9")  # equal as a number: not a change
    loaded.save()

    assert [e.action for e in events_of(p)] == ["create"]


@pytest.mark.django_db
def test_values_of_another_type_are_compared_as_the_field_stores_them():
    p = Product.objects.create(name="Hammer", price=Decimal("5.00"), stock=3)
    p = Product.objects.get(pk=p.pk)
    p.price = "5.00"  # a form or an API gives text
    p.stock = "3"
    p.save()
    assert events_of(p, "update") == []

    p.price = 6
    p.save()
    assert only_event(p, "update").changes == {"price": ["5.00", "6"]}


@pytest.mark.django_db
def test_update_fields_only_considers_the_named_fields():
    p = Product.objects.create(name="Hammer", stock=3)
    p.name = "not saved yet"
    p.stock = 4
    p.save(update_fields=["stock"])

    assert only_event(p, "update").changes == {"stock": [3, 4]}
    # The name was not written: it is still a pending change from "Hammer".
    p.save()
    assert events_of(p, "update")[-1].changes == {"name": ["Hammer", "not saved yet"]}


@pytest.mark.django_db
def test_update_fields_with_an_unchanged_field_records_nothing():
    p = Product.objects.create(name="Hammer", stock=3)
    p.name = "changed but not saved"
    p.save(update_fields=["stock"])
    assert events_of(p, "update") == []


@pytest.mark.django_db
def test_update_fields_accepts_the_attname_of_a_foreign_key():
    old, new = Category.objects.create(name="old"), Category.objects.create(name="new")
    p = Product.objects.create(name="Hammer", category=old)
    p.category_id = new.pk
    p.save(update_fields=["category_id"])
    assert only_event(p, "update").changes == {"category": [old.pk, new.pk]}


@pytest.mark.django_db
def test_delete_records_every_field_with_new_none():
    category = Category.objects.create(name="Tools")
    p = Product.objects.create(name="Hammer", stock=2, category=category, api_key="k")
    pk = p.pk
    p = Product.objects.get(pk=pk)
    result = p.delete()

    assert result == (1, {"testapp.Product": 1})
    event = Event.objects.get(action="delete", object_pk=str(pk))
    assert event.content_type == ContentType.objects.get_for_model(Product)
    assert event.object_repr == "Hammer (Tools)"
    assert event.changes == {
        "id": [pk, None],
        "name": ["Hammer", None],
        "price": ["0.00", None],
        "stock": [2, None],
        "description": ["", None],
        "api_key": ["***", None],
        "category": [category.pk, None],
        "data": [{}, None],
        "image": [None, None],
    }


def _stored_changes(model, pk, action=None):
    """The ``changes`` column's stored texts of one object's events, oldest first."""
    sql = (
        f"SELECT changes FROM {Event._meta.db_table} WHERE content_type_id = %s AND object_pk = %s"
    )
    params = [ContentType.objects.get_for_model(model).pk, str(pk)]
    if action is not None:
        sql += " AND action = %s"
        params.append(action)
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY id", params)
        return [row[0] for row in cursor.fetchall()]


def _assert_as_json_dumps(stored, expected):
    if connection.vendor == "postgresql":  # jsonb: keys reordered
        assert [json.loads(text) for text in stored] == expected
    else:  # the text itself
        assert stored == [json.dumps(changes) for changes in expected]


@pytest.mark.django_db
def test_a_delete_stores_its_changes_as_json_dumps_writes_them_and_verifies():
    """A deletion's changes of plain values (str, int, bool) are written from
    a template per model; JSON values take the dict. Both store what
    ``json.dumps`` writes, and the chain verifies."""
    article = Article.objects.create(title='50% "off" ü', active=False)
    pk = article.pk
    article.delete()
    p = Product.objects.create(name="Jar", data={"b": [1, True], "a": None})
    p.delete()
    expected = {"id": [pk, None], "title": ['50% "off" ü', None], "active": [False, None]}
    _assert_as_json_dumps(_stored_changes(Article, pk, "delete"), [expected])
    product_changes = Event.objects.filter(action="delete").order_by("id")[1].changes
    assert product_changes["data"] == [{"b": [1, True], "a": None}, None]
    assert verified()


@pytest.mark.django_db
def test_saves_store_their_changes_as_json_dumps_writes_them_and_verify():
    """A save's changes of plain values are written from a template per set
    of fields (creates: every field; updates: the changed ones, in field
    order); JSON values take the dict. Both store what ``json.dumps``
    writes, and the chain verifies."""
    article = Article.objects.create(title='50% "off" ü', active=False)
    article.title, article.active = "100%", True
    article.save()
    article.save()  # nothing changed: nothing recorded
    p = Product.objects.create(name="Jar", data={"b": [1, True], "a": None})
    p.data = {"a": 2}
    p.save()
    expected = [
        {"id": [None, article.pk], "title": [None, '50% "off" ü'], "active": [None, False]},
        {"title": ['50% "off" ü', "100%"], "active": [False, True]},
    ]
    _assert_as_json_dumps(_stored_changes(Article, article.pk), expected)
    created, updated = Event.objects.filter(
        content_type=ContentType.objects.get_for_model(Product), object_pk=str(p.pk)
    ).order_by("id")
    assert created.changes["data"] == [None, {"b": [1, True], "a": None}]
    assert created.changes["name"] == [None, "Jar"]
    assert updated.changes == {"data": [{"b": [1, True], "a": None}, {"a": 2}]}
    assert verified()


@pytest.mark.django_db
def test_queryset_delete_and_cascades_record_one_event_per_row():
    category = Category.objects.create(name="Tools")
    hammer = Product.objects.create(name="Hammer", category=category)
    saw = Product.objects.create(name="Saw", category=category)
    Product.objects.create(name="Glue")  # not deleted

    Category.objects.filter(pk=category.pk).delete()

    assert only_event(category, "delete").object_repr == "Tools"
    # Product.__str__ follows the category, deleted by the same call: the text
    # is taken before any row goes. (A multi-row deletion may settle for the
    # default text rather than one query per row; it is never wrong.)
    for p, text in ((hammer, "Hammer (Tools)"), (saw, "Saw (Tools)")):
        assert only_event(p, "delete").object_repr in (text, f"Product object ({p.pk})")
    assert only_event(hammer, "delete").changes["category"] == [category.pk, None]
    assert only_event(saw, "delete").changes["name"] == ["Saw", None]


@pytest.mark.django_db
def test_untracked_model_records_nothing():
    note = Note.objects.create(text="x")
    note.text = "y"
    note.save()
    note.delete()
    assert not Event.objects.exists()


# -- many-to-many -------------------------------------------------------------


@pytest.fixture
def tags():
    return [Tag.objects.create(name=n) for n in ("red", "green", "blue")]


@pytest.mark.django_db
def test_m2m_add_and_remove_from_the_tracked_side(tags):
    red, _, blue = tags
    p = Product.objects.create(name="Hammer")

    p.tags.add(blue, red)
    p.tags.add(red)  # already there: Django adds nothing, nothing is recorded
    p.tags.remove(blue)

    recorded = [(e.action, e.changes) for e in events_of(p) if e.action != "create"]
    assert recorded == [
        ("m2m_add", {"tags": {"add": sorted([blue.pk, red.pk])}}),
        ("m2m_remove", {"tags": {"remove": [blue.pk]}}),
    ]
    assert only_event(p, "m2m_add").object_repr == "Hammer"


@pytest.mark.django_db
def test_m2m_keys_are_sorted_as_numbers_not_as_text():
    many = [Tag.objects.create(name=f"t{i}") for i in range(11)]
    p = Product.objects.create(name="Hammer")
    p.tags.add(*many)
    keys = only_event(p, "m2m_add").changes["tags"]["add"]
    assert keys == sorted(t.pk for t in many)


@pytest.mark.django_db
def test_m2m_set_records_what_it_adds_and_removes(tags):
    red, green, blue = tags
    p = Product.objects.create(name="Hammer")
    p.tags.set([red, green])
    p.tags.set([green, blue])

    recorded = [(e.action, e.changes) for e in events_of(p) if e.action != "create"]
    assert recorded == [
        ("m2m_add", {"tags": {"add": sorted([red.pk, green.pk])}}),
        ("m2m_remove", {"tags": {"remove": [red.pk]}}),
        ("m2m_add", {"tags": {"add": [blue.pk]}}),
    ]


@pytest.mark.django_db
def test_m2m_clear_from_the_tracked_side(tags):
    p = Product.objects.create(name="Hammer")
    p.tags.add(*tags)
    p.tags.clear()
    assert only_event(p, "m2m_clear").changes == {"tags": {"clear": True}}
    assert p.tags.count() == 0


@pytest.mark.django_db
def test_m2m_add_and_remove_from_the_other_side(tags):
    red = tags[0]
    hammer = Product.objects.create(name="Hammer")
    saw = Product.objects.create(name="Saw")

    red.products.add(hammer, saw)
    red.products.remove(saw)

    assert only_event(hammer, "m2m_add").changes == {"tags": {"add": [red.pk]}}
    assert only_event(saw, "m2m_add").changes == {"tags": {"add": [red.pk]}}
    assert only_event(saw, "m2m_remove").changes == {"tags": {"remove": [red.pk]}}
    assert events_of(hammer, "m2m_remove") == []
    assert list(hammer.tags.all()) == [red]


@pytest.mark.django_db
def test_m2m_clear_from_the_other_side_records_a_remove_on_each_product(tags):
    red, green, _ = tags
    hammer = Product.objects.create(name="Hammer")
    saw = Product.objects.create(name="Saw")
    glue = Product.objects.create(name="Glue")
    hammer.tags.add(red, green)
    saw.tags.add(red)
    glue.tags.add(green)

    red.products.clear()

    assert only_event(hammer, "m2m_remove").changes == {"tags": {"remove": [red.pk]}}
    assert only_event(saw, "m2m_remove").changes == {"tags": {"remove": [red.pk]}}
    assert events_of(glue, "m2m_remove") == []
    assert list(hammer.tags.all()) == [green]


@pytest.mark.django_db
def test_m2m_through_a_to_field_relation_from_both_sides():
    """Club.members goes through Membership, whose FK targets Member.handle.

    The keys recorded are the values stored in the through table (the handles),
    the same from both sides, so that revert() can feed them back to add/remove.
    """
    club = Club.objects.create(name="Chess")
    alice = Member.objects.create(handle="alice")
    bob = Member.objects.create(handle="bob")

    club.members.add(alice)
    bob.clubs.add(club)
    club.members.remove(alice)
    bob.clubs.clear()

    recorded = [(e.action, e.changes) for e in events_of(club) if e.action != "create"]
    assert recorded == [
        ("m2m_add", {"members": {"add": ["alice"]}}),
        ("m2m_add", {"members": {"add": ["bob"]}}),
        ("m2m_remove", {"members": {"remove": ["alice"]}}),
        ("m2m_remove", {"members": {"remove": ["bob"]}}),
    ]
    club.members.add(alice)
    club.members.clear()
    assert only_event(club, "m2m_clear").changes == {"members": {"clear": True}}


@pytest.mark.django_db
def test_the_untracked_side_of_an_m2m_gets_no_events():
    """Tag is not tracked: changing Product.tags from either side records on the
    product only."""
    p = Product.objects.create(name="Hammer")
    t = Tag.objects.create(name="x")
    t.products.add(p)
    p.tags.remove(t)
    assert [e.action for e in events_of(p)] == ["create", "m2m_add", "m2m_remove"]
    assert not Event.objects.for_model(Tag).exists()


# -- models with a twist ------------------------------------------------------


@pytest.mark.django_db
def test_multi_table_inheritance_records_the_child_with_its_parent_fields():
    r = Restaurant.objects.create(name="Luigi", address="Main St", serves_pizza=True)
    event = only_event(r, "create")
    assert event.content_type == ContentType.objects.get_for_model(Restaurant)
    assert event.changes["name"] == [None, "Luigi"]
    assert event.changes["serves_pizza"] == [None, True]

    r = Restaurant.objects.get(pk=r.pk)
    r.address = "High St"
    r.serves_pizza = False
    r.save()
    assert only_event(r, "update").changes == {
        "address": ["Main St", "High St"],
        "serves_pizza": [True, False],
    }


@pytest.mark.django_db
def test_deleting_a_child_records_one_delete_like_the_create():
    """Creating a Restaurant records one event (Django saves the Place row
    without signals); deleting it must not add a second, parent-only delete
    event that has no create before it."""
    r = Restaurant.objects.create(name="Luigi", address="Main St")
    pk = r.pk
    Restaurant.objects.get(pk=pk).delete()

    assert not Place.objects.filter(pk=pk).exists()
    deletes = Event.objects.filter(action="delete", object_pk=str(pk))
    assert [e.content_type.model_class() for e in deletes] == [Restaurant]
    assert deletes[0].changes["name"] == ["Luigi", None]


@pytest.mark.django_db
def test_a_plain_place_is_recorded_as_a_place():
    place = Place.objects.create(name="Park")
    place.delete()
    assert [e.action for e in Event.objects.for_model(Place).order_by("id")] == [
        "create",
        "delete",
    ]


@pytest.mark.django_db
def test_deleting_a_child_but_keeping_its_parent():
    r = Restaurant.objects.create(name="Luigi")
    pk = r.pk
    r.delete(keep_parents=True)
    assert Place.objects.filter(pk=pk).exists()
    assert [e.content_type.model_class() for e in Event.objects.filter(action="delete")] == [
        Restaurant
    ]


@pytest.mark.django_db
def test_proxy_model_events_are_under_the_concrete_model():
    d = DiscountedProduct.objects.create(name="Cheap")
    d.name = "Cheaper"
    d.save()
    pk = d.pk
    d.delete()

    product_ct = ContentType.objects.get_for_model(Product)
    recorded = Event.objects.filter(object_pk=str(pk)).order_by("id")
    assert [e.action for e in recorded] == ["create", "update", "delete"]
    assert {e.content_type for e in recorded} == {product_ct}
    proxy = DiscountedProduct(pk=pk)
    assert [e.action for e in signaltrail.history(proxy)] == ["delete", "update", "create"]
    assert list(signaltrail.history(proxy)) == list(signaltrail.history(Product(pk=pk)))


@pytest.mark.django_db
def test_proxy_instance_m2m_changes_are_recorded(tags):
    d = DiscountedProduct.objects.create(name="Cheap")
    d.tags.add(tags[0])
    tags[1].products.add(d)
    adds = [e.changes for e in signaltrail.history(d).filter(action="m2m_add").order_by("id")]
    assert adds == [{"tags": {"add": [tags[0].pk]}}, {"tags": {"add": [tags[1].pk]}}]


@pytest.mark.django_db
def test_uuid_primary_key():
    thing = UUIDThing.objects.create(label="a")
    thing.label = "b"
    thing.save()

    event = only_event(thing, "update")
    assert event.object_pk == str(thing.pk)
    assert event.changes == {"label": ["a", "b"]}
    assert only_event(thing, "create").changes["id"] == [None, str(thing.pk)]
    assert [e.action for e in signaltrail.history(thing)] == ["update", "create"]


@pytest.mark.django_db
def test_string_primary_key():
    code = Code.objects.create(code="ABC-1", label="first")
    code = Code.objects.get(pk="ABC-1")
    code.label = "second"
    code.save()
    code.delete()

    assert [(e.action, e.changes) for e in events_of(Code(pk="ABC-1"))] == [
        ("create", {"code": [None, "ABC-1"], "label": [None, "first"]}),
        ("update", {"label": ["first", "second"]}),
        ("delete", {"code": ["ABC-1", None], "label": ["second", None]}),
    ]


@pytest.mark.django_db
def test_changing_a_string_pk_saves_a_new_row_and_records_a_create():
    """Django inserts a new row when the pk of a loaded instance changes."""
    Code.objects.create(code="A", label="x")
    code = Code.objects.get(pk="A")
    code.code = "B"
    code.save()
    assert Code.objects.filter(pk="A").exists()
    assert only_event(Code(pk="B"), "create").changes == {
        "code": [None, "B"],
        "label": [None, "x"],
    }


@pytest.mark.django_db
def test_moving_a_loaded_instance_onto_another_existing_pk_records_that_rows_old_values():
    """The snapshot belongs to the row it was loaded from, not to whatever pk
    the instance has at save time."""
    Code.objects.create(code="A", label="from A")
    Code.objects.create(code="B", label="from B")
    code = Code.objects.get(pk="A")
    code.code = "B"
    code.label = "new"
    code.save()
    assert only_event(Code(pk="B"), "update").changes == {"label": ["from B", "new"]}
    assert events_of(Code(pk="A"), "update") == []


@pytest.mark.django_db
def test_rows_hidden_by_the_default_manager_are_still_recorded():
    """Article.objects hides inactive rows; the trail must look them up anyway."""
    article = Article.objects.create(title="Draft", active=False)
    assert not Article.objects.filter(pk=article.pk).exists()

    # Built by hand: the old values come from the base manager.
    Article(pk=article.pk, title="Draft 2", active=False).save()
    assert only_event(article, "update").changes == {"title": ["Draft", "Draft 2"]}

    loaded = Article.everything.get(pk=article.pk)
    loaded.title = "Draft 3"
    loaded.save()
    assert events_of(article, "update")[-1].changes == {"title": ["Draft 2", "Draft 3"]}

    Article(pk=article.pk).delete()
    assert only_event(article, "delete").changes == {
        "id": [article.pk, None],
        "title": ["Draft 3", None],
        "active": [False, None],
    }


# -- invariant 1: the event is in the transaction of the change ---------------


class TrailDown(Exception):
    """Stands for a failure to write the event."""


class BrokenTrail:
    """While on, writing an event fails after its INSERT, before the commit."""

    uid = "test_capture.explode"

    @staticmethod
    def explode(sender, event, **kwargs):
        raise TrailDown("cannot write the event")

    def __call__(self):
        event_recorded.connect(self.explode, sender=Event, dispatch_uid=self.uid)

    def repair(self):
        event_recorded.disconnect(sender=Event, dispatch_uid=self.uid)


@pytest.fixture
def break_the_trail():
    broken = BrokenTrail()
    yield broken
    broken.repair()


@pytest.mark.django_db(transaction=True)
def test_autocommit_save_commits_the_change_with_its_event():
    p = Product.objects.create(name="Hammer")
    p.name = "Saw"
    p.save()
    assert transaction.get_autocommit()
    assert [e.action for e in events_of(p)] == ["create", "update"]


@pytest.mark.django_db(transaction=True)
def test_autocommit_create_is_not_committed_when_its_event_fails(break_the_trail):
    break_the_trail()
    with pytest.raises(TrailDown):
        Product.objects.create(name="Hammer")
    assert not Product.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_autocommit_update_is_not_committed_when_its_event_fails(break_the_trail):
    p = Product.objects.create(name="Hammer")
    break_the_trail()
    p.name = "Saw"
    with pytest.raises(TrailDown):
        p.save()
    assert Product.objects.get(pk=p.pk).name == "Hammer"
    assert [e.action for e in events_of(p)] == ["create"]

    # Retrying once the trail works records the change: the failed save did
    # not make "Saw" the known stored value.
    break_the_trail.repair()
    p.save()
    assert only_event(p, "update").changes == {"name": ["Hammer", "Saw"]}


@pytest.mark.django_db(transaction=True)
def test_autocommit_delete_is_not_committed_when_its_event_fails(break_the_trail):
    p = Product.objects.create(name="Hammer")
    pk = p.pk
    break_the_trail()
    with pytest.raises(TrailDown):
        Product.objects.get(pk=pk).delete()
    assert Product.objects.filter(pk=pk).exists()
    assert [e.action for e in events_of(Product(pk=pk))] == ["create"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_delete_leaves_the_instance_pk_alone(break_the_trail):
    """Django only clears the pk of an instance once its delete succeeded."""
    category = Category.objects.create(name="Tools")
    Product.objects.create(name="Hammer", category=category)  # a cascade: batched
    pk = category.pk
    break_the_trail()
    with pytest.raises(TrailDown):
        category.delete()
    assert Category.objects.filter(pk=pk).exists()
    assert category.pk == pk


@pytest.mark.django_db(transaction=True)
def test_autocommit_m2m_add_is_not_committed_when_its_event_fails(break_the_trail):
    p = Product.objects.create(name="Hammer")
    tag = Tag.objects.create(name="red")
    break_the_trail()
    with pytest.raises(TrailDown):
        p.tags.add(tag)
    assert not p.tags.exists()
    with pytest.raises(TrailDown):
        tag.products.add(p)
    assert not p.tags.exists()


@pytest.mark.django_db(transaction=True)
def test_a_caught_event_failure_inside_atomic_does_not_commit_the_change(break_the_trail):
    """Even when the caller swallows the error, the change must not commit alone."""
    p = Product.objects.create(name="Hammer")
    break_the_trail()
    with transaction.atomic():
        p.name = "Saw"
        with contextlib.suppress(TrailDown):
            p.save()
    assert Product.objects.get(pk=p.pk).name == "Hammer"
    assert [e.action for e in events_of(p)] == ["create"]

    break_the_trail.repair()
    p.save()
    assert only_event(p, "update").changes == {"name": ["Hammer", "Saw"]}


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_after_the_trail_keeps_the_change_and_its_event():
    """In autocommit Django commits the row before post_save, so a receiver that
    fails (a mail server down) does not unsave it; its event is committed with it."""
    from django.db.models.signals import post_save

    def fail(sender, instance, **kwargs):
        raise RuntimeError("receiver failed")

    p = Product.objects.create(name="Hammer")
    post_save.connect(fail, sender=Product, dispatch_uid="test_capture.fail")
    try:
        p.name = "Saw"
        with pytest.raises(RuntimeError):
            p.save()
    finally:
        post_save.disconnect(sender=Product, dispatch_uid="test_capture.fail")
    assert Product.objects.get(pk=p.pk).name == "Saw"
    assert only_event(p, "update").changes == {"name": ["Hammer", "Saw"]}
    p.save()  # "Saw" is known to be stored: nothing more to record
    assert len(events_of(p, "update")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_save_nested_in_a_receiver_is_a_change_of_its_own(break_the_trail):
    """A pre_save receiver saving the same instance again, in autocommit, makes
    a complete save of its own (as without the trail): it commits with its
    event; the outer change, whose event fails, commits nothing."""
    from django.db.models.signals import pre_save

    p = Product.objects.create(name="Hammer")

    def resave(sender, instance, **kwargs):
        pre_save.disconnect(sender=Product, dispatch_uid="test_capture.resave")
        instance.stock = 1
        instance.save(update_fields=["stock"])
        break_the_trail()  # the outer save's event will fail

    pre_save.connect(resave, sender=Product, dispatch_uid="test_capture.resave")
    try:
        p.name = "Saw"
        with pytest.raises(TrailDown):
            p.save()
    finally:
        pre_save.disconnect(sender=Product, dispatch_uid="test_capture.resave")
    stored = Product.objects.get(pk=p.pk)
    assert (stored.name, stored.stock) == ("Hammer", 1)
    assert [(e.action, e.changes) for e in events_of(p)] == [
        ("create", events_of(p)[0].changes),
        ("update", {"stock": [0, 1]}),
    ]


@pytest.mark.django_db(transaction=True)
def test_post_save_receivers_run_after_the_commit_in_autocommit():
    """As without the trail: the change (and now its event) is committed when
    user receivers run, and their on_commit callbacks run at once."""
    from django.db import connection
    from django.db.models.signals import post_save

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(("in transaction", connection.in_atomic_block))
        seen.append(("event visible", Event.objects.for_object(instance).exists()))
        transaction.on_commit(lambda: seen.append("on_commit ran"))
        seen.append("receiver done")

    post_save.connect(receiver, sender=Product, dispatch_uid="test_capture.receiver")
    try:
        Product.objects.create(name="Hammer")
    finally:
        post_save.disconnect(sender=Product, dispatch_uid="test_capture.receiver")
    assert seen == [
        ("in transaction", False),
        ("event visible", True),
        "on_commit ran",
        "receiver done",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        p = Product.objects.create(name="Hammer")
        p.name = "Saw"
        p.save()
        p.tags.add(Tag.objects.create(name="red"))
        raise RuntimeError("abort")
    assert not Product.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_delete_leaves_no_event():
    p = Product.objects.create(name="Hammer")
    with pytest.raises(RuntimeError), transaction.atomic():
        p.delete()
        raise RuntimeError("abort")
    assert Product.objects.filter(name="Hammer").exists()
    assert [e.action for e in Event.objects.all()] == ["create"]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_keeps_only_the_outer_events():
    with transaction.atomic():
        outer = Product.objects.create(name="outer")
        try:
            with transaction.atomic():
                inner = Product.objects.create(name="inner")
                outer.name = "outer changed inside the savepoint"
                outer.save()
                raise RuntimeError("abort the savepoint")
        except RuntimeError:
            pass
    assert list(Product.objects.values_list("name", flat=True)) == ["outer"]
    assert [e.action for e in events_of(outer)] == ["create"]
    assert events_of(inner) == []
    assert Event.objects.count() == 1
