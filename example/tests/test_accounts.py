"""Accounts: profile and welcome email on user creation; logins in the trail."""

import pytest
from accounts.models import Profile
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.urls import reverse

from signaltrail.models import Event

pytestmark = pytest.mark.django_db

User = get_user_model()
WELCOME = "Welcome to the Signaltrail Shop"


def test_a_new_user_gets_a_profile_whatever_creates_it(client, make_user):
    scripted = User.objects.create_user("script", "s@example.com", "pw")
    client.force_login(make_user("boss", staff=True))
    client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "fromadmin",
            "password1": "pw-123456",
            "password2": "pw-123456",
            "usable_password": "true",
        },
    )

    assert Profile.objects.get(user=scripted).newsletter is True
    assert Profile.objects.filter(user__username="fromadmin").exists()


def test_saving_a_user_again_does_not_create_a_second_profile(make_user):
    user = make_user("alice")
    user.first_name = "Alice"
    user.save()
    assert Profile.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_welcome_email_is_sent_after_commit_through_smtp(smtp):
    with transaction.atomic():
        User.objects.create_user("alice", "alice@example.com", "pw")
        assert smtp.messages == []

    [message] = smtp.messages
    assert (message.to, message.subject) == (["alice@example.com"], WELCOME)
    assert "Hello alice," in message.body


@pytest.mark.django_db(transaction=True)
def test_rolled_back_user_gets_neither_profile_nor_email(smtp):
    with pytest.raises(RuntimeError), transaction.atomic():
        User.objects.create_user("alice", "alice@example.com", "pw")
        raise RuntimeError("rolled back")

    assert not User.objects.exists()
    assert not Profile.objects.exists()
    assert smtp.messages == []


def test_no_welcome_email_without_an_address(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        User.objects.create_user("alice", "", "pw")
    assert mail.outbox == []


def test_signup_creates_the_user_profile_in_the_page_language_and_welcomes_them(
    client, django_capture_on_commit_callbacks
):
    client.cookies["django_language"] = "id"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("accounts:signup"),
            {
                "username": "budi",
                "email": "budi@example.com",
                "password1": "pw-123456",
                "password2": "pw-123456",
            },
        )

    assert response.status_code == 302
    user = User.objects.get(username="budi")
    assert user.profile.language == "id"
    assert [m.subject for m in mail.outbox] == ["Selamat datang di Toko Signaltrail"]
    assert int(client.session["_auth_user_id"]) == user.pk


def test_profile_page_changes_the_subscription_and_is_recorded(client, make_user):
    user = make_user("alice")
    client.force_login(user)
    response = client.post(reverse("accounts:profile"), {"language": "id"})  # newsletter off
    assert response.status_code == 302
    user.profile.refresh_from_db()
    assert user.profile.newsletter is False
    event = Event.objects.for_object(user.profile).newest_first().first()
    assert event.changes["newsletter"] == [True, False]
    assert event.actor == user


# --- logins in the trail ------------------------------------------------------


def test_login_and_failed_login_are_in_the_trail_and_on_the_activity_page(client, make_user):
    make_user("alice")
    boss = make_user("boss", staff=True)

    client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    client.post(reverse("login"), {"username": "alice", "password": "pw"})

    failed, login = Event.objects.filter(action__in=["login_failed", "login"]).order_by("id")
    assert (failed.action, failed.context["username"]) == ("login_failed", "alice")
    assert "wrong" not in str(failed.context)
    assert (login.action, login.actor_label) == ("login", "alice")
    assert login.context["path"] == reverse("login")

    client.force_login(boss)
    page = client.get(reverse("activity:activity"), {"actor": "alice"}).content.decode()
    assert page.count('<td class="action">logged in</td>') == 1
    failures = client.get(reverse("activity:activity"), {"action": "login_failed"})
    assert "username: alice" in failures.content.decode()


def test_logout_through_the_logout_view_is_in_the_trail(client, make_user):
    client.force_login(make_user("alice"))
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    logout = Event.objects.get(action="logout")
    assert logout.actor_label == "alice"


def test_the_activity_page_is_for_staff_only(client, make_user):
    url = reverse("activity:activity")
    assert client.get(url).url.startswith(reverse("login"))
    client.force_login(make_user("alice"))
    assert client.get(url).status_code == 403
