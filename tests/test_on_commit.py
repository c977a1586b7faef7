"""@signaltrail.on_commit: a receiver runs after commit, never on rollback.

These tests need real commits and rollbacks (transaction=True): a test run
inside one big transaction would never commit anything.
"""

import contextlib
import logging

import pytest
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import Signal

import signaltrail
from signaltrail.models import Event
from signaltrail.toolkit.receivers import disconnect
from tests.testapp.models import Note, Product

ping = Signal()

real_commits = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hook():
    """``hook(signal, sender=..., **options)`` -> the list the receiver appends to.

    Each call is a dict of what the receiver saw; the receiver is disconnected
    after the test.
    """
    connected = []

    def _hook(signal, sender=None, **options):
        seen = []

        def receiver(sender, signal, instance=None, **kwargs):
            seen.append(
                {
                    "sender": sender,
                    "signal": signal,
                    "instance": instance,
                    "values": dict(vars(instance)) if instance is not None else None,
                    "event_exists": (
                        instance is not None and Event.objects.for_object(instance).exists()
                        if sender is Product
                        else None
                    ),
                    **kwargs,
                }
            )

        returned = signaltrail.on_commit(signal, sender=sender, **options)(receiver)
        assert returned is receiver
        connected.append((signal, receiver, sender))
        return seen

    yield _hook
    for signal, receiver, sender in connected:
        assert disconnect(signal, receiver, sender=sender)


@real_commits
def test_runs_after_the_transaction_commits(hook):
    seen = hook(post_save, sender=Note)
    with transaction.atomic():
        Note.objects.create(text="a")
        assert seen == []
    assert [call["instance"].text for call in seen] == ["a"]
    assert seen[0]["created"] is True
    assert seen[0]["signal"] is post_save


@real_commits
def test_never_runs_on_rollback(hook):
    seen = hook(post_save, sender=Note)
    with pytest.raises(RuntimeError), transaction.atomic():
        Note.objects.create(text="rolled back")
        raise RuntimeError("abort")
    assert seen == []
    assert not Note.objects.exists()


@real_commits
def test_rolled_back_savepoint_in_a_committed_transaction(hook):
    seen = hook(post_save, sender=Note)
    with transaction.atomic():
        Note.objects.create(text="kept")
        with contextlib.suppress(RuntimeError), transaction.atomic():
            Note.objects.create(text="dropped")
            raise RuntimeError("roll back the savepoint")
        Note.objects.create(text="also kept")
    assert [call["instance"].text for call in seen] == ["kept", "also kept"]


@real_commits
def test_runs_immediately_in_autocommit(hook):
    seen_notes = hook(post_save, sender=Note)
    seen_products = hook(post_save, sender=Product)
    Note.objects.create(text="a")
    assert [call["instance"].text for call in seen_notes] == ["a"]
    product = Product.objects.create(name="p")
    # Tracked models save inside atomic(): the receiver runs once that commits,
    # before create() returns, and the trail's event is already there.
    assert [call["instance"].pk for call in seen_products] == [product.pk]
    assert seen_products[0]["event_exists"] is True


@real_commits
def test_receiver_sees_the_state_as_of_the_signal(hook):
    seen = hook(post_save, sender=Product)
    with transaction.atomic():
        product = Product.objects.create(name="v1", stock=1)
        product.name = "v2"
        product.save(update_fields=["name"])
        product.name = "v3"  # changed after the last signal, never saved
        product.stock = 99
    assert [call["values"]["name"] for call in seen] == ["v1", "v2"]
    assert [call["values"]["stock"] for call in seen] == [1, 1]
    assert [call["created"] for call in seen] == [True, False]
    assert seen[1]["update_fields"] == frozenset({"name"})
    assert all(call["instance"] is not product for call in seen)
    assert seen[0]["instance"] is not seen[1]["instance"]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_waits_for_the_database_the_signal_was_sent_on(hook):
    seen = hook(post_save, sender=Note)
    with transaction.atomic(using="other"):
        Note.objects.using("other").create(text="on other")
        assert seen == []
    assert [call["instance"].text for call in seen] == ["on other"]
    assert seen[0]["using"] == "other"

    with (
        transaction.atomic(using="default"),
        pytest.raises(RuntimeError),
        transaction.atomic(using="other"),
    ):
        Note.objects.using("default").create(text="committed on default")
        Note.objects.using("other").create(text="rolled back on other")
        raise RuntimeError("abort other")
    # The change committed on "default" runs its receiver; the one rolled back
    # on "other" doesn't, although "default" committed after it.
    assert [call["instance"].text for call in seen] == ["on other", "committed on default"]


@real_commits
def test_signals_without_using_wait_for_the_default_database(hook):
    seen = hook(ping)
    with transaction.atomic():
        ping.send(sender="shop", order=7)
        assert seen == []
    assert [(call["sender"], call["order"]) for call in seen] == [("shop", 7)]


@real_commits
def test_muted_receiver_is_not_scheduled(hook):
    seen = hook(post_save, sender=Note)
    with signaltrail.muted(post_save, sender=Note):
        Note.objects.create(text="muted")
    Note.objects.create(text="heard")
    assert [call["instance"].text for call in seen] == ["heard"]


@real_commits
def test_a_failing_receiver_propagates_by_default():
    def failing(sender, **kwargs):
        raise ValueError("receiver failed")

    signaltrail.on_commit(post_save, sender=Note)(failing)
    try:
        with pytest.raises(ValueError, match="receiver failed"), transaction.atomic():
            Note.objects.create(text="committed anyway")
    finally:
        disconnect(post_save, failing, sender=Note)
    assert Note.objects.filter(text="committed anyway").exists()


@real_commits
def test_robust_receiver_logs_and_lets_other_callbacks_run(hook, caplog):
    def failing(sender, **kwargs):
        raise ValueError("receiver failed")

    signaltrail.on_commit(post_save, sender=Note, robust=True)(failing)
    seen = hook(post_save, sender=Note)
    try:
        with caplog.at_level(logging.ERROR, logger="signaltrail"), transaction.atomic():
            Note.objects.create(text="a")
    finally:
        disconnect(post_save, failing, sender=Note)
    assert len(seen) == 1
    errors = [r for r in caplog.records if r.name == "signaltrail"]
    assert len(errors) == 1
    assert "failing" in errors[0].getMessage()
    assert errors[0].exc_info[0] is ValueError


def test_connects_once_per_function_and_can_be_called_directly():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(sender)

    decorate = signaltrail.on_commit(ping)
    assert decorate(receiver) is receiver
    assert decorate(receiver) is receiver  # same function again: still one connection
    try:
        assert len([r for r in ping.receivers if "on_commit" in str(r[0][0])]) == 1
        receiver(sender="direct")
        assert calls == ["direct"]
    finally:
        assert disconnect(ping, receiver)
    assert not disconnect(ping, receiver)
    assert not ping.has_listeners()


def test_bad_arguments_are_refused():
    async def coroutine_receiver(sender, **kwargs):
        pass

    with pytest.raises(TypeError, match="coroutine"):
        signaltrail.on_commit(ping)(coroutine_receiver)
    with pytest.raises(TypeError, match="strongly"):
        signaltrail.on_commit(ping, weak=True)
    with pytest.raises(TypeError, match="Signal"):
        signaltrail.on_commit("post_save")
    assert not ping.has_listeners()
