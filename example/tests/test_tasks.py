"""The task board: slugs, completion time, guarded deletes, assignees, services."""

import pytest
from django.core import mail
from django.db import transaction
from django.urls import reverse
from tasks import services
from tasks.exceptions import TaskInProgressError
from tasks.models import Task, TaskStats
from tasks.signals import task_assigned, task_completed

import signaltrail
from signaltrail.models import Event

pytestmark = pytest.mark.django_db

ASSIGNED = "You were assigned"
COMPLETED = "Task completed"


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def received():
    """What task_completed and task_assigned were sent with, in order."""
    calls = []

    def listener(signal, sender, **kwargs):
        calls.append((signal, kwargs))

    task_completed.connect(listener)
    task_assigned.connect(listener)
    yield calls
    task_completed.disconnect(listener)
    task_assigned.disconnect(listener)


def subjects():
    return sorted((m.to[0], m.subject) for m in mail.outbox)


# --- slug -------------------------------------------------------------------------


def test_slug_is_filled_from_the_title_and_made_unique():
    first = Task.objects.create(title="Write the README")
    second = Task.objects.create(title="Write the README!")
    third = Task.objects.create(title="write the readme")
    assert [first.slug, second.slug, third.slug] == [
        "write-the-readme",
        "write-the-readme-2",
        "write-the-readme-3",
    ]


def test_a_given_slug_is_kept_and_a_new_title_does_not_change_it():
    task = Task.objects.create(title="Write the README", slug="readme")
    task.title = "Write the docs"
    task.save()
    task.refresh_from_db()
    assert task.slug == "readme"


def test_a_title_without_letters_still_gets_a_slug():
    assert Task.objects.create(title="!!!").slug == "task"


# --- completed_at ---------------------------------------------------------------------


def test_completed_at_is_set_on_done_kept_while_done_and_cleared_when_leaving():
    task = Task.objects.create(title="T")
    assert task.completed_at is None

    task.status = Task.Status.DONE
    task.save()
    done_at = task.completed_at
    assert done_at is not None

    task.title = "T, renamed"
    task.save()
    assert task.completed_at == done_at

    task.status = Task.Status.IN_PROGRESS
    task.save()
    task.refresh_from_db()
    assert task.completed_at is None


def test_a_task_created_done_has_its_completion_time():
    assert Task.objects.create(title="T", status=Task.Status.DONE).completed_at is not None


# --- deletion refused while in progress ---------------------------------------------


def test_deleting_a_task_in_progress_raises_and_deletes_nothing():
    task = Task.objects.create(title="T", status=Task.Status.IN_PROGRESS)
    with pytest.raises(TaskInProgressError, match="is in progress and cannot be deleted"):
        services.delete_task(task)
    assert Task.objects.filter(pk=task.pk).exists()


def test_a_queryset_delete_with_one_task_in_progress_deletes_none():
    Task.objects.create(title="A")
    Task.objects.create(title="B", status=Task.Status.IN_PROGRESS)
    with pytest.raises(TaskInProgressError), transaction.atomic():
        Task.objects.all().delete()
    assert Task.objects.count() == 2


def test_the_board_refuses_with_a_message_and_keeps_the_task(client, alice):
    task = Task.objects.create(title="Busy", status=Task.Status.IN_PROGRESS)
    client.force_login(alice)

    response = client.post(reverse("tasks:delete", args=[task.slug]), follow=True)

    assert response.status_code == 200
    assert "“Busy” is in progress and cannot be deleted." in response.content.decode()
    assert Task.objects.filter(pk=task.pk).exists()


def test_the_board_deletes_a_task_not_in_progress(client, alice):
    task = Task.objects.create(title="Idle")
    client.force_login(alice)
    response = client.post(reverse("tasks:delete", args=[task.slug]))
    assert response.url == reverse("tasks:board")
    assert not Task.objects.filter(pk=task.pk).exists()


def test_the_admin_refuses_to_delete_a_task_in_progress(client, make_user):
    task = Task.objects.create(title="Busy", status=Task.Status.IN_PROGRESS)
    client.force_login(make_user("boss", staff=True))
    url = reverse("admin:tasks_task_delete", args=[task.pk])

    page = client.get(url)
    posted = client.post(url, {"post": "yes"})

    assert page.status_code == 200
    assert "“Busy” is in progress and cannot be deleted." in page.content.decode()
    assert "Yes, I\u2019m sure" not in page.content.decode()  # the admin's confirm button
    assert posted.status_code == 200  # the refusal again, not a 500
    assert Task.objects.filter(pk=task.pk).exists()


def test_the_admin_bulk_delete_refuses_when_one_task_is_in_progress(client, make_user):
    idle = Task.objects.create(title="Idle")
    busy = Task.objects.create(title="Busy", status=Task.Status.IN_PROGRESS)
    client.force_login(make_user("boss", staff=True))

    response = client.post(
        reverse("admin:tasks_task_changelist"),
        {"action": "delete_selected", "_selected_action": [idle.pk, busy.pk], "post": "yes"},
    )

    assert response.status_code == 200
    assert "“Busy” is in progress and cannot be deleted." in response.content.decode()
    assert Task.objects.count() == 2


# --- assignees ------------------------------------------------------------------------------


def test_each_new_assignee_is_notified_once(
    alice, bob, make_user, django_capture_on_commit_callbacks
):
    carol = make_user("carol")
    task = Task.objects.create(title="Photos")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        task.assignees.add(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        task.assignees.add(alice, carol)  # alice is assigned already
    with django_capture_on_commit_callbacks(execute=True):
        carol.assigned_tasks.add(Task.objects.create(title="Prices"))  # from the user's side

    assert subjects() == [
        ("alice@example.com", f"{ASSIGNED}: Photos"),
        ("bob@example.com", f"{ASSIGNED}: Photos"),
        ("carol@example.com", f"{ASSIGNED}: Photos"),
        ("carol@example.com", f"{ASSIGNED}: Prices"),
    ]


@pytest.mark.django_db(transaction=True)
def test_assignee_notification_goes_through_smtp_after_commit(smtp, alice):
    task = Task.objects.create(title="Photos")
    with transaction.atomic():
        task.assignees.add(alice)
        assert smtp.with_subject(ASSIGNED) == []
    [message] = smtp.with_subject(ASSIGNED)
    assert message.to == ["alice@example.com"]
    assert task.get_absolute_url() in message.body


def test_a_removed_assignee_is_recorded_in_the_trail(
    alice, bob, django_capture_on_commit_callbacks
):
    task = Task.objects.create(title="Photos")
    task.assignees.add(alice, bob)
    mail.outbox.clear()

    with signaltrail.context(actor=bob), django_capture_on_commit_callbacks(execute=True):
        services.unassign_task(task, alice, by=bob)

    event = signaltrail.history(task).first()
    assert (event.action, event.changes, event.actor) == (
        "m2m_remove",
        {"assignees": {"remove": [alice.pk]}},
        bob,
    )
    assert mail.outbox == []


# --- services and their signals --------------------------------------------------------


def test_assign_task_sends_task_assigned_and_one_email(
    alice, bob, received, django_capture_on_commit_callbacks
):
    task = services.create_task(title="Photos", created_by=alice)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.assign_task(task, bob, by=alice) is True

    assert received == [
        (task_assigned, {"task": task, "assignee": bob, "assigned_by": alice, "using": "default"})
    ]
    [message] = mail.outbox  # not two: the m2m receiver is muted in assign_task
    assert message.to == ["bob@example.com"]
    assert "alice assigned you to the task “Photos”." in message.body
    # The trail is never muted.
    assert signaltrail.history(task).first().changes == {"assignees": {"add": [bob.pk]}}


def test_assigning_again_does_nothing(alice, bob, received, django_capture_on_commit_callbacks):
    task = services.create_task(title="Photos", created_by=alice, assignees=[bob])
    received.clear()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.assign_task(task, bob, by=alice) is False

    assert received == []
    assert mail.outbox == []


def test_assigning_oneself_sends_no_email(alice, django_capture_on_commit_callbacks):
    task = services.create_task(title="Photos", created_by=alice)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.assign_task(task, alice, by=alice)
    assert mail.outbox == []
    assert list(task.assignees.all()) == [alice]


def test_complete_task_notifies_the_creator_and_counts_for_the_user(
    alice, bob, received, django_capture_on_commit_callbacks
):
    first = services.create_task(title="Photos", created_by=alice)
    second = services.create_task(title="Prices", created_by=alice)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        done = services.complete_task(first, by=bob)
    assert done.status == Task.Status.DONE and done.completed_at is not None
    assert [signal for signal, _ in received] == [task_completed]
    assert received[0][1]["completed_by"] == bob
    assert subjects() == [("alice@example.com", f"{COMPLETED}: Photos")]
    assert "bob completed the task “Photos” that you created." in mail.outbox[0].body
    stats = TaskStats.objects.get(user=bob)
    assert (stats.completed, stats.last_completed_at) == (1, done.completed_at)

    with django_capture_on_commit_callbacks(execute=True):
        services.complete_task(second, by=bob)
    assert TaskStats.objects.get(user=bob).completed == 2


def test_completing_a_done_task_again_sends_nothing(
    alice, bob, received, django_capture_on_commit_callbacks
):
    task = services.create_task(title="Photos", created_by=alice)
    services.complete_task(task, by=bob)
    received.clear()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.complete_task(task, by=bob)

    assert received == []
    assert mail.outbox == []
    assert TaskStats.objects.get(user=bob).completed == 1


def test_the_creator_completing_their_own_task_gets_no_email(
    alice, django_capture_on_commit_callbacks
):
    task = services.create_task(title="Photos", created_by=alice)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.complete_task(task, by=alice)
    assert mail.outbox == []
    assert TaskStats.objects.get(user=alice).completed == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_completion_sends_nothing_and_counts_nothing(smtp, alice, bob):
    task = services.create_task(title="Photos", created_by=alice)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.complete_task(task, by=bob)
        raise RuntimeError("rolled back")

    task.refresh_from_db()
    assert task.status == Task.Status.TODO
    assert not TaskStats.objects.filter(user=bob, completed__gt=0).exists()
    assert smtp.with_subject(COMPLETED) == []


# --- the board ------------------------------------------------------------------------------


def test_the_board_creates_moves_and_assigns_tasks(
    client, alice, bob, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    response = client.post(reverse("tasks:board"), {"title": "Write the README", "description": ""})
    assert response.status_code == 302
    task = Task.objects.get()
    assert (task.slug, task.created_by) == ("write-the-readme", alice)

    client.post(reverse("tasks:status", args=[task.slug, "start"]))
    task.refresh_from_db()
    assert task.status == Task.Status.IN_PROGRESS

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("tasks:assign", args=[task.slug]), {"user": bob.pk})
        client.post(reverse("tasks:status", args=[task.slug, "complete"]))
    task.refresh_from_db()
    assert task.status == Task.Status.DONE
    assert list(task.assignees.all()) == [bob]
    assert subjects() == [("bob@example.com", f"{ASSIGNED}: Write the README")]

    board = client.get(reverse("tasks:board")).content.decode()
    assert "Write the README" in board.split('id="column-done"')[1]
    actions = list(
        Event.objects.for_object(task).order_by("id").values_list("action", "actor_label")
    )
    assert actions == [
        ("create", "alice"),
        ("update", "alice"),
        ("m2m_add", "alice"),
        ("update", "alice"),
    ]


def test_status_buttons_return_to_the_page_they_came_from_on_this_site_only(client, alice):
    task = Task.objects.create(title="T")
    client.force_login(alice)
    url = reverse("tasks:status", args=[task.slug, "start"])
    assert client.post(url, {"next": task.get_absolute_url()}).url == task.get_absolute_url()
    assert client.post(url, {"next": "https://evil.example/"}).url == reverse("tasks:board")


def test_an_unknown_status_action_is_refused_with_a_message(client, alice):
    task = Task.objects.create(title="T")
    client.force_login(alice)
    response = client.post(reverse("tasks:status", args=[task.slug, "explode"]), follow=True)
    assert response.status_code == 200
    assert "Unknown action." in response.content.decode()


def test_the_task_page_shows_its_history(client, alice, bob):
    task = services.create_task(title="Photos", created_by=alice)
    with signaltrail.context(actor=alice):
        services.assign_task(task, bob, by=alice)
    client.force_login(alice)
    page = client.get(task.get_absolute_url()).content.decode()
    assert '+ <span class="new">bob</span>' in page
