"""Events name their model by a content type that exists, whatever happened to it.

The writer keeps content type ids of its own (signaltrail/content_types.py)
so as to build no ContentType instance. These tests change content types the
ways code does - through the ORM, or behind its back followed by
``ContentType.objects.clear_cache()`` - and check that the next event points
at the row that exists then, and that the user's save goes through.
"""

from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import post_init

from signaltrail.models import Event
from tests.testapp.models import Category, Code


@pytest.fixture
def fresh_ids():
    """Leave no id of a row this test's rollback removes behind for later tests."""
    yield
    ContentType.objects.clear_cache()


def created_event_content_type_id(obj: Any) -> int:
    # Not history(obj): it asks Django's content type cache, which keeps a
    # deleted row until clear_cache().
    events = Event.objects.filter(action="create", object_pk=str(obj.pk))
    return events.values_list("content_type_id", flat=True).get()


@pytest.mark.django_db
def test_a_content_type_recreated_through_the_orm_is_used(fresh_ids):
    Category.objects.create(name="a")  # the ids are read, Code's among them
    old = ContentType.objects.get_for_model(Code)
    old.delete()  # allowed: no event of Code points at it (on_delete=PROTECT)
    new = ContentType.objects.create(app_label="testapp", model="code")
    assert new.pk != old.pk

    code = Code.objects.create(code="b")

    assert created_event_content_type_id(code) == new.pk


@pytest.mark.django_db
def test_a_content_type_replaced_behind_the_orms_back_is_used_after_clear_cache(fresh_ids):
    Category.objects.create(name="a")
    old = ContentType.objects.get_for_model(Code)
    # QuerySet.update() sends no signal: only clear_cache() tells the caches.
    ContentType.objects.filter(pk=old.pk).update(model="code_renamed")
    ContentType.objects.clear_cache()

    code = Code.objects.create(code="b")

    new = ContentType.objects.get(app_label="testapp", model="code")
    assert new.pk != old.pk
    assert created_event_content_type_id(code) == new.pk


@pytest.mark.django_db
def test_a_cold_cache_loads_no_content_type_instance(fresh_ids):
    ContentType.objects.clear_cache()
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(sender._meta.label)

    post_init.connect(receiver, weak=False, dispatch_uid="test:content_type_ids")
    try:
        code = Code.objects.create(code="a")
    finally:
        post_init.disconnect(dispatch_uid="test:content_type_ids")
    assert seen == ["testapp.Code"]
    assert created_event_content_type_id(code) == ContentType.objects.get_for_model(Code).pk


@pytest.mark.django_db
def test_a_content_type_with_events_cannot_be_deleted_through_the_orm(fresh_ids):
    from django.db.models import ProtectedError

    Code.objects.create(code="a")
    with pytest.raises(ProtectedError):
        ContentType.objects.get_for_model(Code).delete()
    assert Event.objects.filter(content_type=ContentType.objects.get_for_model(Code)).exists()


@pytest.mark.django_db
def test_the_event_table_has_no_foreign_key_constraints():
    """Inserting an event locks no row of another table and checks none at commit."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Event._meta.db_table)
    assert [name for name, c in constraints.items() if c["foreign_key"]] == []


@pytest.mark.django_db(transaction=True)
def test_a_content_type_created_in_a_rolled_back_transaction_is_not_used_after_it():
    """Neither the ids read in that transaction nor Django's cache outlive it."""
    from django.db import transaction

    Category.objects.create(name="a")  # the ids are read, Code's among them
    ContentType.objects.filter(app_label="testapp", model="code").delete()
    ContentType.objects.clear_cache()
    with pytest.raises(RuntimeError), transaction.atomic():
        Code.objects.create(code="a")  # creates Code's content type
        Category.objects.create(name="b")  # reads the ids again, Code's new one too
        raise RuntimeError("rolled back")
    assert not ContentType.objects.filter(app_label="testapp", model="code").exists()

    code = Code.objects.create(code="b")

    new = ContentType.objects.get(pk=created_event_content_type_id(code))
    assert (new.app_label, new.model) == ("testapp", "code")
    assert Event.objects.for_model(Code).filter(object_pk=str(code.pk)).exists()
