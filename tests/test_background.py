"""@signaltrail.in_background, in one process: the outbox, the worker logic, the relay.

The task backend here is django.tasks' ImmediateBackend (runs the task as soon
as it is enqueued, like a worker that is always free) or its DummyBackend
(keeps the task, like a queue no worker reads). Real worker processes (the
database backend, RQ, Celery) are in tests/test_background_workers.py.

Receivers are module-level functions, as in_background requires, connected by
the `connect` fixture and disconnected after each test.
"""

import contextlib
import datetime
import decimal
import logging
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal
from django.tasks import task_backends
from django.urls import reverse
from django.utils import timezone

import signaltrail
from signaltrail.models import CallStatus, PendingCall
from signaltrail.toolkit.background import disconnect, relay
from signaltrail.toolkit.background.calls import call_for
from signaltrail.toolkit.background.worker import execute
from tests.testapp.models import Note, Product, Tag

real_commits = pytest.mark.django_db(transaction=True)

CALLS: list[dict] = []  # what the receivers below saw, in order
FAIL = {"times": 0}  # how many more calls of `flaky` raise

order_placed = Signal()  # a custom signal


class Rollback(Exception):
    pass


def record(sender, instance, changes, idempotency_key, **kwargs):
    CALLS.append(
        {
            "sender": sender,
            "instance": instance,
            "changes": changes,
            "idempotency_key": idempotency_key,
            **kwargs,
        }
    )


def flaky(sender, instance, changes, idempotency_key, **kwargs):
    CALLS.append({"idempotency_key": idempotency_key})
    if FAIL["times"] > 0:
        FAIL["times"] -= 1
        raise RuntimeError("boom: the mail server is down")


async def record_async(sender, instance, changes, idempotency_key, **kwargs):
    CALLS.append({"async": True, "instance": instance, "idempotency_key": idempotency_key})


def record_order(sender, instance, changes, idempotency_key, **kwargs):
    CALLS.append({"sender": sender, "instance": instance, **kwargs})


@pytest.fixture(autouse=True)
def _clean():
    CALLS.clear()
    FAIL["times"] = 0
    yield
    CALLS.clear()


@pytest.fixture
def connect():
    """``connect(func, signal, sender=...)``: @in_background for this test only."""
    connected = []

    def _connect(func, signal=post_save, sender=Product):
        returned = signaltrail.in_background(signal, sender=sender)(func)
        assert returned is func
        connected.append((signal, func, sender))
        return func

    yield _connect
    for signal, func, sender in connected:
        assert disconnect(signal, func, sender=sender)


@pytest.fixture
def queue(settings):
    """Send calls to a DummyBackend: they wait there, as in a queue nobody reads yet."""
    settings.TASKS = {
        "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
        "queue": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
    }
    settings.SIGNALTRAIL = {"TASK_BACKEND": "queue"}
    backend = task_backends["queue"]
    backend.clear()
    return backend


def waiting_calls(backend):
    return [result.args[0] for result in backend.results]


# -- what the receiver gets ----------------------------------------------------


@real_commits
def test_receiver_runs_after_commit_with_a_fresh_instance_and_the_changes(connect):
    connect(record)
    product = Product.objects.create(
        name="Lamp", price=decimal.Decimal("9.90"), api_key="secret", stock=3
    )

    assert len(CALLS) == 1
    call = CALLS[0]
    assert call["sender"] is Product
    assert call["signal"] is post_save
    # Loaded again from the database by the worker, not the object that was saved.
    assert call["instance"] is not product
    assert call["instance"].pk == product.pk and call["instance"].name == "Lamp"
    # The values as the trail records them: masked api_key, no excluded updated_at.
    assert call["changes"]["name"] == "Lamp"
    assert call["changes"]["price"] == "9.90"
    assert call["changes"]["stock"] == 3
    assert call["changes"]["api_key"] == "***"
    assert "updated_at" not in call["changes"]
    assert call["created"] is True
    assert call["update_fields"] is None
    assert call["raw"] is False
    assert call["using"] == "default"
    assert uuid.UUID(call["idempotency_key"])
    # Done: nothing is left in the outbox.
    assert not PendingCall.objects.exists()


@real_commits
def test_a_lazy_model_label_works_as_sender(connect):
    connect(record, sender="testapp.Product")
    product = Product.objects.create(name="Lamp")

    (call,) = CALLS
    assert call["sender"] is Product and call["instance"] == product


@real_commits
def test_an_update_sends_only_the_fields_that_changed(connect):
    product = Product.objects.create(name="Lamp", price=decimal.Decimal("9.90"), stock=3)
    connect(record)

    product = Product.objects.get(pk=product.pk)
    product.price = decimal.Decimal("5.00")
    product.save()
    product.stock = 4
    product.name = "Desk lamp"
    product.save(update_fields=["stock"])

    assert [c["changes"] for c in CALLS] == [{"price": "5.00"}, {"stock": 4}]
    assert [c["created"] for c in CALLS] == [False, False]
    assert CALLS[1]["update_fields"] == ["stock"]
    # The instance is what the database holds when the worker runs.
    assert CALLS[0]["instance"].name == "Lamp"
    assert CALLS[0]["idempotency_key"] != CALLS[1]["idempotency_key"]


@real_commits
def test_the_receiver_sees_the_row_as_it_is_when_it_runs_and_none_once_deleted(connect, queue):
    connect(record)
    product = Product.objects.create(name="Lamp")
    product.name = "Desk lamp"
    product.save()
    (created, renamed) = waiting_calls(queue)

    execute(created)
    product.delete()
    execute(renamed)

    assert CALLS[0]["instance"].name == "Desk lamp"  # now, not as of the signal
    assert CALLS[0]["changes"]["name"] == "Lamp"  # as of the signal
    assert CALLS[1]["instance"] is None
    assert CALLS[1]["changes"] == {"name": "Desk lamp"}


@real_commits
def test_a_deletion_sends_every_value_and_no_instance(connect):
    product = Product.objects.create(name="Lamp", stock=2)
    connect(record, signal=post_delete)
    pk = product.pk

    product.delete()

    (call,) = CALLS
    assert call["instance"] is None
    assert call["changes"]["id"] == pk
    assert call["changes"]["name"] == "Lamp"
    assert call["changes"]["stock"] == 2
    assert call["signal"] is post_delete
    assert call["origin"] is None  # the deleted instance, by reference: gone


@real_commits
def test_an_m2m_change_sends_its_arguments(connect):
    lamp = Product.objects.create(name="Lamp")
    tag = Tag.objects.create(name="light")
    connect(record, signal=m2m_changed, sender=Product.tags.through)

    lamp.tags.add(tag)

    pre, post = CALLS
    assert (pre["action"], post["action"]) == ("pre_add", "post_add")
    assert post["instance"] == lamp and post["model"] is Tag and post["pk_set"] == [tag.pk]
    assert post["reverse"] is False and post["changes"] == {}


@real_commits
def test_an_untracked_model_sends_every_field_it_writes(connect):
    connect(record, sender=Note)
    note = Note.objects.create(text="hello")
    note.text = "bye"
    note.save()

    assert CALLS[0]["changes"] == {"id": note.pk, "text": "hello"}
    # signaltrail keeps no loaded values for untracked models: every field.
    assert CALLS[1]["changes"] == {"id": note.pk, "text": "bye"}


@real_commits
def test_other_arguments_travel_by_reference_or_as_json(connect, django_user_model):
    connect(record_order, signal=order_placed, sender=None)
    user = django_user_model.objects.create_user("ann")

    order_placed.send(
        sender=Product,
        user=user,
        model=Note,
        tags={"b", "a"},
        total=12.5,
        request=object(),  # cannot cross to a worker: left out
    )

    (call,) = CALLS
    assert call["sender"] is Product
    assert call["user"] == user and call["user"] is not user
    assert call["model"] is Note
    assert call["tags"] == ["a", "b"]
    assert call["total"] == 12.5
    assert "request" not in call
    assert call["instance"] is None


@real_commits
def test_an_async_receiver_runs_too(connect):
    connect(record_async)
    product = Product.objects.create(name="Lamp")

    (call,) = CALLS
    assert call["async"] is True and call["instance"] == product


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_the_call_lives_on_the_database_of_the_change(connect, queue):
    connect(record)
    product = Product.objects.using("other").create(name="Lamp")

    # Written on "other", in the transaction of the change; nothing on "default".
    assert PendingCall.objects.using("other").count() == 1
    assert not PendingCall.objects.using("default").exists()
    (call,) = waiting_calls(queue)
    assert call["db"] == "other"

    execute(call)
    assert CALLS[0]["instance"] == product and CALLS[0]["instance"]._state.db == "other"
    assert CALLS[0]["using"] == "other"
    assert not PendingCall.objects.using("other").exists()


# -- when nothing is sent ------------------------------------------------------


@real_commits
def test_a_rollback_sends_nothing(connect, queue):
    connect(record)

    with pytest.raises(Rollback), transaction.atomic():
        Product.objects.create(name="rolled back")
        raise Rollback
    with transaction.atomic():
        Product.objects.create(name="kept")
        with contextlib.suppress(Rollback), transaction.atomic():
            Product.objects.create(name="savepoint rolled back")
            raise Rollback

    assert [c["changes"]["name"] for c in waiting_calls(queue)] == ["kept"]
    assert list(PendingCall.objects.values_list("payload__changes__name", flat=True)) == ["kept"]


@real_commits
def test_muted_receivers_are_not_enqueued(connect, queue):
    connect(record)

    with signaltrail.muted(post_save, sender=Product):
        Product.objects.create(name="muted for Product")
    with signaltrail.muted(post_save):
        Product.objects.create(name="muted for all")
    with signaltrail.muted(post_save, sender=Note):
        Product.objects.create(name="not muted")

    assert [c["changes"]["name"] for c in waiting_calls(queue)] == ["not muted"]
    assert PendingCall.objects.count() == 1


@real_commits
def test_the_call_commits_with_the_change_in_autocommit_mode(connect):
    """A plain save commits before post_save; with in_background both commit together."""
    seen = {}

    def check(sender, instance, **kwargs):
        # Still inside the transaction of the save, after our receiver.
        seen["in_transaction"] = transaction.get_connection().in_atomic_block
        seen["call_written"] = PendingCall.objects.filter(object_pk=str(instance.pk)).exists()
        raise RuntimeError("a later receiver fails")

    connect(record)
    post_save.connect(check, sender=Product, weak=False, dispatch_uid="test-bg-check")
    try:
        with pytest.raises(RuntimeError):
            Product.objects.create(name="Lamp")
    finally:
        post_save.disconnect(sender=Product, dispatch_uid="test-bg-check")

    assert seen == {"in_transaction": True, "call_written": True}
    # Change and call rolled back together: no row without its call, nor the reverse.
    assert not Product.objects.exists()
    assert not PendingCall.objects.exists()
    assert CALLS == []


# -- failures, retries, dead letters, the admin ----------------------------------


@real_commits
def test_a_failing_receiver_is_retried_with_backoff_then_parked_in_the_admin(
    connect, settings, admin_client
):
    settings.SIGNALTRAIL = {"RELAY_MAX_ATTEMPTS": 3, "RELAY_BACKOFF": 10, "RELAY_BACKOFF_MAX": 15}
    connect(flaky)
    FAIL["times"] = 3

    before = timezone.now()
    Product.objects.create(name="Lamp")
    call = PendingCall.objects.get()
    assert (call.status, call.attempts) == (CallStatus.PENDING, 1)
    assert "boom: the mail server is down" in call.last_error
    # First retry after RELAY_BACKOFF seconds (plus up to 10% jitter).
    delay = (call.next_attempt_at - before).total_seconds()
    assert 10 <= delay <= 11 + 1

    # Not due yet: the relay leaves it alone.
    report, _ = relay.relay_pass("default", grace=0)
    assert report.sent == 0 and len(CALLS) == 1

    # Once due, the relay sends it again; the backoff doubles, capped at 15 s.
    failed_at = timezone.now()
    report, _ = relay.relay_pass("default", grace=0, now=call.next_attempt_at)
    call.refresh_from_db()
    assert report.sent == 1 and (call.status, call.attempts) == (CallStatus.PENDING, 2)
    assert 15 <= (call.next_attempt_at - failed_at).total_seconds() <= 16.5 + 1

    relay.relay_pass("default", grace=0, now=call.next_attempt_at)
    call.refresh_from_db()
    assert (call.status, call.attempts) == (CallStatus.DEAD, 3)
    # The same call each time.
    assert len({c["idempotency_key"] for c in CALLS}) == 1 and len(CALLS) == 3
    # A dead letter is never sent again by the relay.
    report, _ = relay.relay_pass(
        "default", grace=0, now=timezone.now() + datetime.timedelta(days=1)
    )
    assert report.sent == 0 and len(CALLS) == 3

    # Visible in the admin: the dead letters page, the filtered outbox, the call itself.
    page = admin_client.get(reverse("admin:signaltrail_deadletter_changelist"))
    assert page.status_code == 200
    assert "tests.test_background.flaky" in page.text and "the mail server is down" in page.text
    outbox = admin_client.get(
        reverse("admin:signaltrail_pendingcall_changelist"), {"status__exact": "dead"}
    )
    assert outbox.status_code == 200 and "tests.test_background.flaky" in outbox.text
    detail = admin_client.get(reverse("admin:signaltrail_deadletter_change", args=[call.pk]))
    assert detail.status_code == 200 and "RuntimeError" in detail.text

    # "Retry": the call runs again, succeeds, and leaves the outbox.
    response = admin_client.post(
        reverse("admin:signaltrail_deadletter_changelist"),
        {"action": "retry", "_selected_action": [call.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 call(s) will be sent again." in response.text
    assert len(CALLS) == 4
    assert not PendingCall.objects.exists()


@pytest.mark.django_db
def test_the_admin_pages_offer_no_add_or_edit(admin_client):
    outbox = admin_client.get(reverse("admin:signaltrail_pendingcall_changelist"))
    assert outbox.status_code == 200
    assert admin_client.get(reverse("admin:signaltrail_pendingcall_add")).status_code == 403


# -- the hand-over, the relay, duplicates ------------------------------------------


@real_commits
def test_a_backend_that_is_down_does_not_fail_the_save_and_the_relay_sends_later(
    connect, settings, caplog
):
    connect(record)
    settings.SIGNALTRAIL = {"TASK_BACKEND": "missing"}
    with caplog.at_level(logging.WARNING, logger="signaltrail.background"):
        product = Product.objects.create(name="Lamp")

    assert Product.objects.filter(pk=product.pk).exists()
    assert "trail relay" in caplog.text
    call = PendingCall.objects.get()
    assert call.status == CallStatus.PENDING and call.attempts == 0
    assert CALLS == []

    # Too fresh for the relay (RELAY_GRACE): left to the hand-over.
    settings.SIGNALTRAIL = {}
    relay_once = ["trail", "relay", "--once", "--database", "default"]
    call_command(*relay_once, stdout=(out := _Out()))
    assert "sent 0" in out.text and CALLS == []

    call_command(*relay_once, "--grace", "0", stdout=(out := _Out()))
    assert "Relay done: sent 1, to retry 0, dead 0." in out.text
    assert len(CALLS) == 1 and CALLS[0]["instance"] == product
    assert not PendingCall.objects.exists()


@real_commits
def test_a_call_lost_after_the_hand_over_is_sent_again(connect, queue, settings):
    connect(record)
    Product.objects.create(name="Lamp")
    (lost,) = waiting_calls(queue)  # in a queue no worker will ever read
    call = PendingCall.objects.get()
    assert call.status == CallStatus.ENQUEUED

    # Until RELAY_TIMEOUT has passed, the call is presumed on its way.
    assert relay.relay_pass("default", grace=0)[0].sent == 0
    later = call.next_attempt_at + datetime.timedelta(seconds=1)
    settings.SIGNALTRAIL = {"TASK_BACKEND": "default"}  # now a worker is there
    assert relay.relay_pass("default", grace=0, now=later)[0].sent == 1

    assert len(CALLS) == 1
    assert CALLS[0]["idempotency_key"] == lost["key"]
    assert not PendingCall.objects.exists()


@real_commits
def test_a_call_delivered_twice_runs_once(connect, queue):
    connect(record)
    Product.objects.create(name="Lamp")
    (call,) = waiting_calls(queue)

    assert execute(call)["outcome"] == "done"
    assert execute(call)["outcome"] == "skipped"
    assert len(CALLS) == 1


@real_commits
def test_a_worker_that_died_mid_call_is_replaced_then_the_call_is_parked(connect, queue, settings):
    settings.SIGNALTRAIL = {"TASK_BACKEND": "queue", "RELAY_MAX_ATTEMPTS": 2}
    connect(record)
    Product.objects.create(name="Lamp")
    # A worker claimed it and died: the row stays "running".
    PendingCall.objects.update(status=CallStatus.RUNNING, attempts=1)
    call = PendingCall.objects.get()
    later = call.next_attempt_at + datetime.timedelta(seconds=1)

    assert relay.relay_pass("default", grace=0, now=later)[0].sent == 1
    PendingCall.objects.update(status=CallStatus.RUNNING, attempts=2)  # died again
    call.refresh_from_db()
    later = call.next_attempt_at + datetime.timedelta(seconds=1)
    assert relay.relay_pass("default", grace=0, now=later)[0].dead == 1

    call.refresh_from_db()
    assert call.status == CallStatus.DEAD and "RELAY_TIMEOUT" in call.last_error


@real_commits
def test_a_call_naming_a_function_that_is_not_a_receiver_is_refused(queue):
    forged = PendingCall.objects.create(
        receiver="os.system",
        payload={"sender": None, "changes": {}, "kwargs": {"command": "touch /tmp/pwned"}},
        created_at=timezone.now(),
        next_attempt_at=timezone.now(),
    )

    assert execute(call_for(forged, "default"))["outcome"] == "retry"

    forged.refresh_from_db()
    assert "os.system is not an @in_background receiver" in forged.last_error


# -- the decorator and the command ---------------------------------------------------


def test_only_module_level_functions_can_run_in_the_background():
    def nested(**kwargs):
        pass

    with pytest.raises(TypeError, match="module level"):
        signaltrail.in_background(post_save, sender=Product)(nested)
    with pytest.raises(TypeError, match="module level"):
        signaltrail.in_background(post_save)(lambda **kwargs: None)
    with pytest.raises(TypeError, match="Signal"):
        signaltrail.in_background("post_save")


def test_in_background_is_part_of_the_public_api():
    assert signaltrail.in_background is signaltrail.toolkit.background.in_background
    assert "in_background" in signaltrail.__all__


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "--batch must be at least 1"),
        (["--interval", "-1"], "cannot be negative"),
        (["--database", "nope"], "Unknown database alias 'nope'"),
    ],
)
def test_the_relay_command_rejects_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("trail", "relay", "--once", *args)


def test_the_relay_command_explains_itself(capsys):
    with pytest.raises(SystemExit) as exited:
        call_command("trail", "relay", "--help")

    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for flag in ("--once", "--batch N", "--interval SECONDS", "--grace SECONDS", "--database"):
        assert flag in help_text
    assert "at least once" in help_text and "SIGTERM" in help_text


@pytest.mark.django_db
def test_the_relay_command_reports_what_waits(settings):
    now = timezone.now()
    PendingCall.objects.create(
        receiver="x.y", status=CallStatus.DEAD, created_at=now, next_attempt_at=now
    )

    call_command("trail", "relay", "--once", "--database", "default", stdout=(out := _Out()))

    assert "Relay done: sent 0" in out.text
    assert "Outbox of default: 1 dead." in out.text
    assert "1 dead letter(s) on default" in out.text


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass
