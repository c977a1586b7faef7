"""Multiple databases: an event lives on the database alias of the change it records.

Two aliases of the same engine, "default" and "other" (tests/settings.py).
An event on the other alias than its change could neither commit nor roll
back with it (DESIGN invariant 1), and ``history(obj)`` would not find it.
Each test also checks that the alias it doesn't use stays untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

import signaltrail
from signaltrail.models import Event
from tests.testapp.models import Category, Note, Product, Tag

BOTH = ["default", "other"]


def trail(using: str, obj: Any = None) -> list[tuple[str, Any]]:
    """(action, changes) of the events on ``using``, oldest first."""
    events = Event.objects.using(using).order_by("id")
    if obj is not None:
        events = events.for_object(obj)
    return list(events.values_list("action", "changes"))


class CategoryRouter:
    """Sends testapp.Category, reads and writes, to "other"."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "other" if model is Category else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "other" if model is Category else None


@pytest.mark.django_db(databases=BOTH)
def test_save_and_delete_using_other_write_events_on_other() -> None:
    category = Category(name="Tools")
    category.save(using="other")
    category.name = "Garden"
    category.save()  # the instance now belongs to "other"
    pk = category.pk
    category.delete()

    assert [action for action, _ in trail("other")] == ["create", "update", "delete"]
    assert trail("other")[1] == ("update", {"name": ["Tools", "Garden"]})
    assert Event.objects.using("other").filter(object_pk=str(pk)).count() == 3
    assert trail("default") == []
    assert not Category.objects.using("default").exists()


@pytest.mark.django_db(databases=BOTH)
def test_queryset_paths_using_other_write_events_on_other() -> None:
    Category.objects.using("other").create(name="a")
    Category.objects.using("other").bulk_create([Category(name="b")])
    Category.objects.using("other").filter(name="b").update(name="c")
    Category.objects.using("other").filter(name__in=["a", "c"]).delete()

    assert sorted(action for action, _ in trail("other")) == [
        "create",
        "create",
        "delete",
        "delete",
        "update",
    ]
    assert trail("default") == []


@pytest.mark.django_db(databases=BOTH)
def test_m2m_changes_using_other_write_events_on_other() -> None:
    product = Product.objects.using("other").create(name="Spade")
    tag = Tag.objects.using("other").create(name="garden")

    product.tags.add(tag)
    product.tags.remove(tag)
    tag.products.add(product)  # the reverse side records on the product too
    product.tags.clear()

    actions = [(a, c) for a, c in trail("other", product) if a.startswith("m2m")]
    assert actions == [
        ("m2m_add", {"tags": {"add": [tag.pk]}}),
        ("m2m_remove", {"tags": {"remove": [tag.pk]}}),
        ("m2m_add", {"tags": {"add": [tag.pk]}}),
        ("m2m_clear", {"tags": {"clear": True}}),
    ]
    assert trail("default") == []


@pytest.mark.django_db(databases=BOTH)
def test_history_reads_from_the_objects_alias() -> None:
    """The same pk on both aliases: two objects, two separate histories."""
    here = Category(pk=4242, name="on default")
    there = Category(pk=4242, name="on other")
    here.save(using="default")
    there.save(using="other")
    signaltrail.record("inspected", obj=there, by="test")

    assert [e.action for e in signaltrail.history(here)] == ["create"]
    assert signaltrail.history(here).first().changes["name"] == [None, "on default"]
    assert [e.action for e in signaltrail.history(there)] == ["inspected", "create"]
    assert signaltrail.history(there).last().changes["name"] == [None, "on other"]
    loaded = Category.objects.using("other").get(pk=4242)
    assert [e.pk for e in signaltrail.history(loaded)] == [e.pk for e in signaltrail.history(there)]


@pytest.mark.django_db(databases=BOTH)
def test_router_sends_the_model_and_its_events_to_other() -> None:
    with override_settings(DATABASE_ROUTERS=[CategoryRouter()]):
        category = Category.objects.create(name="Routed")
        category.name = "Routed again"
        category.save()
        assert category._state.db == "other"
        assert [e.action for e in signaltrail.history(category)] == ["update", "create"]
        # The queryset paths follow the router too.
        Category.objects.bulk_create([Category(name="Bulk")])
        assert Category.objects.filter(name="Bulk").update(name="Bulk 2") == 1
        assert Category.objects.filter(name="Bulk 2").delete()[0] == 1
        # A model the router leaves alone still goes to default.
        Product.objects.create(name="Unrouted")

    assert list(Category.objects.using("other").values_list("name", flat=True)) == ["Routed again"]
    assert not Category.objects.using("default").exists()
    assert [a for a, _ in trail("other")] == ["create", "update", "create", "update", "delete"]
    assert [a for a, _ in trail("default")] == ["create"]
    assert trail("default")[0][1]["name"] == [None, "Unrouted"]


@pytest.mark.django_db(databases=BOTH, transaction=True)
def test_rollback_on_other_leaves_no_event_on_other() -> None:
    """Real transactions: each alias commits or rolls back its own changes
    with their events, whatever happens on the other alias."""
    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        Category.objects.using("other").create(name="lost")
        raise RuntimeError("roll back other")
    assert not Category.objects.using("other").exists()
    assert trail("other") == []

    # A rollback on default doesn't undo an autocommit save on other,
    # nor its event; and the reverse.
    with pytest.raises(RuntimeError), transaction.atomic(using="default"):
        kept = Category.objects.using("other").create(name="kept")
        Category.objects.using("default").create(name="lost on default")
        raise RuntimeError("roll back default")
    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        Category.objects.using("default").create(name="kept on default")
        Category.objects.using("other").create(name="lost on other")
        raise RuntimeError("roll back other")

    assert list(Category.objects.using("other").values_list("name", flat=True)) == ["kept"]
    assert trail("other") == [("create", {"id": [None, kept.pk], "name": [None, "kept"]})]
    assert list(Category.objects.using("default").values_list("name", flat=True)) == [
        "kept on default"
    ]
    assert [c["name"][1] for _, c in trail("default")] == ["kept on default"]


@pytest.mark.django_db(databases=BOTH)
def test_untracked_model_on_other_records_nothing() -> None:
    Note.objects.using("other").create(text="not tracked")
    assert trail("other") == []
    assert trail("default") == []
