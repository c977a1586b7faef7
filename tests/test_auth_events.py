"""Logins, logouts and failed logins in the trail, from django.contrib.auth's signals.

A failed login records the attempted username - what an investigator needs to spot
password guessing - and never the password that was tried.
"""

import json

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from signaltrail.models import Event

SECRET = "hunter2-Sup3r-S3cret-pw"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="right-password")


def whole_row(event) -> str:
    """Every column of the event as stored, as one text."""
    return json.dumps(Event.objects.filter(pk=event.pk).values().get(), default=str)


@pytest.mark.django_db
def test_login_is_recorded_with_the_user_as_actor_and_object(client, alice):
    assert client.login(username="alice", password="right-password")

    event = Event.objects.get(action="login")
    assert event.actor == alice
    assert event.actor_label == "alice"
    assert event.content_type.model_class() is type(alice)
    assert event.object_pk == str(alice.pk)
    assert "right-password" not in whole_row(event)


@pytest.mark.django_db
def test_logout_is_recorded(client, alice):
    client.force_login(alice)
    client.logout()

    event = Event.objects.get(action="logout")
    assert event.actor == alice
    assert event.actor_label == "alice"
    assert event.object_pk == str(alice.pk)


@pytest.mark.django_db
def test_a_failed_authenticate_records_the_username_and_never_the_password():
    request = RequestFactory().post("/login/", headers={"User-Agent": "curl/8"})

    assert authenticate(request, username="mallory", password=SECRET) is None

    event = Event.objects.get(action="login_failed")
    assert event.context["username"] == "mallory"
    assert event.context["user_agent"] == "curl/8"
    assert event.actor is None
    assert SECRET not in whole_row(event)


@pytest.mark.django_db
def test_a_wrong_password_for_a_real_user_is_a_failed_login(alice):
    assert authenticate(None, username="alice", password=SECRET) is None

    event = Event.objects.get(action="login_failed")
    assert event.context["username"] == "alice"
    assert event.actor is None  # nobody logged in
    assert SECRET not in whole_row(event)


@pytest.mark.django_db
def test_other_credentials_are_not_recorded_either():
    assert authenticate(None, username="mallory", password=SECRET, otp="918273645") is None

    row = whole_row(Event.objects.get(action="login_failed"))
    assert SECRET not in row
    assert "918273645" not in row


@pytest.mark.django_db
def test_a_failed_admin_login_is_recorded_with_the_request_metadata(client):
    response = client.post(
        "/admin/login/",
        {"username": "mallory", "password": SECRET, "next": "/admin/"},
        headers={"X-Request-ID": "login-attempt-1"},
    )

    assert response.status_code == 200  # the form, with its error
    event = Event.objects.get(action="login_failed")
    assert event.context["username"] == "mallory"
    assert event.context["path"] == "/admin/login/"
    assert event.context["method"] == "POST"
    assert event.context["request_id"] == "login-attempt-1"
    assert SECRET not in whole_row(event)


@pytest.mark.django_db
def test_a_successful_admin_login_is_recorded(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password=SECRET)

    response = client.post("/admin/login/", {"username": "root", "password": SECRET})

    assert response.status_code == 302
    event = Event.objects.get(action="login")
    assert event.actor == admin
    assert event.context["path"] == "/admin/login/"
    assert SECRET not in whole_row(event)


@pytest.mark.django_db
def test_auth_events_can_be_switched_off(client, alice, settings):
    settings.SIGNALTRAIL = {"AUTH_EVENTS": False}

    client.login(username="alice", password="right-password")
    client.logout()
    authenticate(None, username="alice", password=SECRET)

    assert not Event.objects.filter(action__in=["login", "logout", "login_failed"]).exists()


@pytest.mark.django_db
def test_a_huge_attempted_username_is_truncated():
    authenticate(None, username="x" * 100_000, password=SECRET)

    event = Event.objects.get(action="login_failed")
    assert 0 < len(event.context["username"]) <= 200


@pytest.mark.django_db
def test_logout_through_djangos_logout_view_is_recorded(client, django_user_model):
    """LogoutView passes request.user, a lazy object, not the user itself."""
    admin = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    response = client.post("/admin/logout/")
    assert response.status_code == 200
    event = Event.objects.get(action="logout")
    assert event.actor == admin
    assert event.object_pk == str(admin.pk)
