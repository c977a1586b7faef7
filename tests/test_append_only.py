"""Events are append-only through the ORM and the admin.

The single exception is the database's own bookkeeping when a user is deleted:
their events' actor becomes NULL (``actor_label`` keeps who it was).
"""

import datetime

import pytest
from django.urls import reverse

import signaltrail
from signaltrail.exceptions import AppendOnlyError
from signaltrail.models import Event
from tests.testapp.models import Category, Product


@pytest.fixture
def event():
    product = Product.objects.create(name="Lamp", price="10.00")
    product.price = "12.50"
    product.save()
    return signaltrail.history(product).first()


@pytest.fixture
def frozen(event):
    """The event as stored before the test tries to change it."""
    row = Event.objects.filter(pk=event.pk).values().get()
    yield event
    assert Event.objects.filter(pk=event.pk).values().get() == row


@pytest.mark.django_db
def test_saving_an_existing_event_is_refused(frozen):
    frozen.object_repr = "forged"
    with pytest.raises(AppendOnlyError, match="append-only"):
        frozen.save()


@pytest.mark.django_db
def test_creating_an_event_by_hand_is_refused(frozen):
    with pytest.raises(AppendOnlyError, match=r"signaltrail\.record"):
        Event.objects.create(action="forged", hash="0" * 64)
    with pytest.raises(AppendOnlyError):
        Event(action="forged", hash="0" * 64).save()
    assert not Event.objects.filter(action="forged").exists()


@pytest.mark.django_db
def test_deleting_an_event_is_refused(frozen):
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        frozen.delete()


@pytest.mark.django_db
def test_queryset_delete_is_refused(frozen):
    count = Event.objects.count()
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        Event.objects.filter(pk=frozen.pk).delete()
    with pytest.raises(AppendOnlyError):
        Event.objects.all().delete()
    assert Event.objects.count() == count


@pytest.mark.django_db
def test_queryset_update_is_refused(frozen):
    with pytest.raises(AppendOnlyError, match="cannot be updated"):
        Event.objects.filter(pk=frozen.pk).update(object_repr="forged")
    with pytest.raises(AppendOnlyError):
        Event.objects.all().update(actor_label="someone else")
    with pytest.raises(AppendOnlyError):
        # Not the allowed exception either: NULL plus another column.
        Event.objects.filter(pk=frozen.pk).update(actor=None, actor_label="")


@pytest.mark.django_db
def test_setting_the_actor_to_null_is_the_one_update_allowed(event, django_user_model):
    """What deleting a user does (on_delete=SET_NULL); actor_label keeps who it was."""
    user = django_user_model.objects.create_user("alice")
    with signaltrail.context(actor=user):
        signaltrail.record("exported")
    mine = Event.objects.by_actor(user)

    assert mine.update(actor=None) == 1
    assert Event.objects.get(action="exported").actor_label == "alice"


@pytest.mark.django_db
def test_bulk_update_is_refused(frozen):
    frozen.object_repr = "forged"
    with pytest.raises(AppendOnlyError):
        Event.objects.bulk_update([frozen], ["object_repr"])


@pytest.mark.django_db
def test_an_object_with_events_keeps_them_when_deleted(event):
    """Deleting the audited object leaves its history (the trail is not a cascade)."""
    product = Product.objects.get(pk=event.object_pk)
    product.delete()

    assert Event.objects.filter(pk=event.pk).exists()
    assert list(
        Event.objects.filter(object_pk=event.object_pk).values_list("action", flat=True)
    ) == [
        "delete",
        "update",
        "create",
    ]


# -- the admin -----------------------------------------------------------------


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    return client


@pytest.mark.django_db
def test_admin_changelist_loads_and_offers_no_add_or_delete(admin_client, event):
    Category.objects.create(name="Lights")
    signaltrail.record("exported")

    response = admin_client.get(reverse("admin:signaltrail_event_changelist"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Lamp" in html
    assert "exported" in html
    assert reverse("admin:signaltrail_event_add") not in html
    assert "delete_selected" not in html


@pytest.mark.django_db
def test_admin_changelist_filters_and_search_load(admin_client, event):
    url = reverse("admin:signaltrail_event_changelist")
    day = datetime.timedelta(days=1)
    for query in (
        {"action__exact": "update"},
        {"q": "Lamp"},
        {"at__gte": str(event.at - day), "at__lt": str(event.at + day)},  # the "at" filter
        {"content_type__id__exact": str(event.content_type_id)},
    ):
        response = admin_client.get(url, query)
        assert response.status_code == 200, query
        assert "Lamp" in response.content.decode(), query


@pytest.mark.django_db
def test_admin_changelist_loads_in_a_time_zone_other_than_the_databases(
    admin_client, event, settings
):
    """Date truncation in a non-UTC zone needs MySQL's time zone tables, which many
    servers lack: the event list must not depend on them."""
    settings.TIME_ZONE = "Europe/Paris"

    response = admin_client.get(reverse("admin:signaltrail_event_changelist"))

    assert response.status_code == 200
    assert "Lamp" in response.content.decode()


@pytest.mark.django_db
def test_admin_detail_is_read_only_and_shows_the_changes_table(admin_client, event):
    url = reverse("admin:signaltrail_event_change", args=[event.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    # View-only: the submit row has only the "Close" link, no save button.
    submit_row = html[html.index('<div class="submit-row">') :]
    submit_row = submit_row[: submit_row.index("</div>")]
    assert "closelink" in submit_row
    assert "submit" not in submit_row.replace("submit-row", "")
    for name in ("_save", "_continue", "_addanother"):
        assert f'name="{name}"' not in html
    assert reverse("admin:signaltrail_event_delete", args=[event.pk]) not in html
    # The changes table: field, old value, new value.
    assert "<table><thead><tr><th>field</th><th>old value</th><th>new value</th>" in html
    assert "<tr><td>price</td><td>10.00</td><td>12.50</td></tr>" in html
    assert event.hash in html


@pytest.mark.django_db
def test_admin_detail_escapes_recorded_values(admin_client):
    product = Product.objects.create(name="<script>alert(1)</script>")
    event = signaltrail.history(product).get()

    html = admin_client.get(reverse("admin:signaltrail_event_change", args=[event.pk])).content
    assert b"<script>alert(1)</script>" not in html
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_admin_refuses_to_add_change_or_delete(admin_client, frozen):
    change = reverse("admin:signaltrail_event_change", args=[frozen.pk])
    delete = reverse("admin:signaltrail_event_delete", args=[frozen.pk])
    changelist = reverse("admin:signaltrail_event_changelist")

    assert admin_client.get(reverse("admin:signaltrail_event_add")).status_code == 403
    assert admin_client.post(change, {"object_repr": "forged"}).status_code == 403
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [frozen.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)  # "no action selected", nothing deleted
    assert Event.objects.filter(pk=frozen.pk).exists()


@pytest.mark.django_db
def test_admin_is_closed_to_staff_without_permission(client, django_user_model, event):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)

    assert client.get(reverse("admin:signaltrail_event_changelist")).status_code == 403
    assert client.get(reverse("admin:signaltrail_event_change", args=[event.pk])).status_code == 403
