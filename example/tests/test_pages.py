"""The pages: Activity with its filters, the mailbox, the admin, languages."""

import datetime

import pytest
from catalog.models import Category, Product
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import timezone
from inbox.models import Message
from tasks.models import Task

import signaltrail

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(client, make_user):
    user = make_user("boss", staff=True)
    client.force_login(user)
    return user


def rows(response):
    """The Activity page's rows as (actor, action, object)."""
    html = response.content.decode()
    found = []
    for row in html.split('<tr class="event">')[1:]:
        actor = row.split('<td class="actor">')[1].split("</td>")[0]
        action = row.split('<td class="action">')[1].split("</td>")[0]
        found.append((actor, action))
    return found


@pytest.fixture
def trail(make_user, make_product):
    alice, bob = make_user("alice"), make_user("bob")
    with signaltrail.context(actor=alice):
        product = make_product(name="Rake", price="18.00")
    with signaltrail.context(actor=bob):
        product.price = "17.00"
        product.save()
        task = Task.objects.create(title="Photos")
    return {"alice": alice, "bob": bob, "product": product, "task": task}


def test_activity_lists_the_whole_trail_newest_first(client, boss, trail):
    response = client.get(reverse("activity:activity"))
    assert response.status_code == 200
    found = rows(response)
    assert found[:3] == [("bob", "created"), ("bob", "changed"), ("alice", "created")]


def test_activity_filters_by_actor_model_action_and_date(client, boss, trail):
    url = reverse("activity:activity")
    product_ct = Product._meta.app_label, Product._meta.model_name
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_by_natural_key(*product_ct)

    assert set(rows(client.get(url, {"actor": "ALICE"}))) == {("alice", "created")}
    assert rows(client.get(url, {"model": ct.pk})) == [("bob", "changed"), ("alice", "created")]
    assert rows(client.get(url, {"model": ct.pk, "action": "update"})) == [("bob", "changed")]
    today = timezone.localdate()
    assert len(rows(client.get(url, {"since": today, "until": today, "actor": "bob"}))) == 2
    tomorrow = today + datetime.timedelta(days=1)
    assert rows(client.get(url, {"since": tomorrow})) == []


def test_activity_rejects_bad_filters_with_a_message_not_an_error(client, boss, trail):
    url = reverse("activity:activity")
    bad_date = client.get(url, {"since": "yesterday-ish"})
    reversed_range = client.get(url, {"since": "2026-02-02", "until": "2026-01-01"})
    unknown_model = client.get(url, {"model": "999999", "action": "nonsense"})
    for response in (bad_date, reversed_range, unknown_model):
        assert response.status_code == 200
        assert rows(response) == []
        assert 'class="errorlist' in response.content.decode()


def test_activity_shows_readable_diffs(client, boss, trail):
    html = client.get(reverse("activity:activity"), {"actor": "bob"}).content.decode()
    assert '<span class="old">18.00</span> → <span class="new">17.00</span>' in html
    # A new object's values, with a choice's label rather than its stored value.
    assert '<span class="field">status</span>: To do' in " ".join(html.split())


def test_product_list_and_filters(client, make_product):
    make_product(name="Hammer")
    make_product(name="Rake", category=Category.objects.create(name="Garden"))
    garden = Category.objects.get(name="Garden")
    html = client.get(reverse("catalog:list")).content.decode()
    assert "Hammer" in html and "Rake" in html
    html = client.get(reverse("catalog:list"), {"category": garden.pk}).content.decode()
    assert "Rake" in html and "Hammer" not in html


def test_unknown_pages_are_404(client, boss):
    assert client.get(reverse("catalog:detail", args=[999])).status_code == 404
    assert client.get(reverse("tasks:detail", args=["nope"])).status_code == 404


def test_the_mailbox_shows_staff_everything_and_users_their_own(client, make_user, boss):
    alice = make_user("alice")
    for name in ("alice", "bob"):
        Message.objects.create(
            from_email="shop@example.com",
            to=f"{name}@example.com",
            subject=f"For {name}",
            body="Hi",
        )

    staff_page = client.get(reverse("inbox:mailbox")).content.decode()
    client.force_login(alice)
    own_page = client.get(reverse("inbox:mailbox")).content.decode()

    assert "For alice" in staff_page and "For bob" in staff_page
    assert "For alice" in own_page and "For bob" not in own_page


def test_the_inbox_backend_keeps_one_message_per_recipient(settings):
    settings.MAILERS = {"default": {"BACKEND": "inbox.backends.InboxBackend"}}
    EmailMessage("Hello", "Body", to=["a@example.com", "b@example.com"]).send()
    assert sorted(Message.objects.values_list("to", "subject")) == [
        ("a@example.com", "Hello"),
        ("b@example.com", "Hello"),
    ]


def test_the_inbox_keeps_a_message_delivered_twice_once(settings):
    """Background calls run at least once: the same Message-ID is kept once."""
    settings.MAILERS = {"default": {"BACKEND": "inbox.backends.InboxBackend"}}
    for _ in range(2):
        EmailMessage(
            "Hello", "Body", to=["a@example.com"], headers={"Message-ID": "<k.1@x>"}
        ).send()
    EmailMessage("Hello", "Body", to=["a@example.com"]).send()  # no Message-ID: kept
    assert Message.objects.count() == 2


def test_every_admin_page_opens(client, boss, trail, make_product):
    from django.contrib import admin

    own_apps = {"inbox", "accounts", "catalog", "tasks", "auth"}  # signaltrail tests its own
    for model in [m for m in admin.site._registry if m._meta.app_label in own_apps]:
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        assert client.get(reverse(f"admin:{info}_changelist")).status_code == 200, info
        obj = model._default_manager.first()
        if obj is not None:
            url = reverse(f"admin:{info}_change", args=[obj.pk])
            assert client.get(url).status_code == 200, info


def test_the_admin_shows_a_products_history(client, boss, trail):
    url = reverse("admin:catalog_product_change", args=[trail["product"].pk])
    html = client.get(url).content.decode()
    assert '<span class="old">18.00</span> → <span class="new">17.00</span>' in html


# --- languages ----------------------------------------------------------------------


def test_pages_are_in_indonesian_when_chosen(client, make_product):
    make_product()
    client.cookies["django_language"] = "id"
    html = client.get(reverse("catalog:list")).content.decode()
    assert '<html lang="id">' in html
    assert ">Produk</h1>" in html
    assert "Masuk" in html  # "Log in"


def test_the_language_switcher_sets_the_cookie_and_the_users_email_language(client, make_user):
    user = make_user("alice")
    client.force_login(user)
    response = client.post(reverse("set_language"), {"language": "id", "next": "/tasks/"})
    assert response.status_code == 302 and response.url == "/tasks/"
    assert response.cookies["django_language"].value == "id"
    user.profile.refresh_from_db()
    assert user.profile.language == "id"
    assert "Papan tugas" in client.get(reverse("tasks:board")).content.decode()


def test_the_language_switcher_refuses_get(client):
    assert client.get(reverse("set_language")).status_code == 405


def test_user_model_is_tracked_without_last_login(make_user):
    user = make_user("alice")
    user.last_login = timezone.now()
    user.save()
    user.first_name = "Alice"
    user.save()
    events = list(signaltrail.history(user).values_list("action", "changes"))
    assert events[0] == ("update", {"first_name": ["", "Alice"]})
    assert not [changes for _, changes in events if "last_login" in changes]
    assert get_user_model().objects.count() == 1
