"""signaltrail.muted(): receivers stop in this thread / task only, and come back.

Muting must never leak into other threads or asyncio tasks (it is not a
disconnect), must be undone on exit even after an exception, must honour the
sender, and must never silence the audit trail's own receivers.
"""

import asyncio
import threading

import pytest
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import Signal

import signaltrail
from signaltrail.models import Event
from signaltrail.toolkit.muting import is_muted
from tests.testapp.models import Note, Product

ping = Signal()
pong = Signal()


@pytest.fixture
def calls(connect):
    """Senders seen by a sync receiver of ``ping`` and one of ``pong``."""
    seen = []
    connect(ping, lambda sender, **kwargs: seen.append(("ping", sender)))
    connect(pong, lambda sender, **kwargs: seen.append(("pong", sender)))
    return seen


def send_all(sender):
    ping.send(sender=sender)
    pong.send(sender=sender)


@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_muted_signal_runs_no_receiver_and_others_still_run(calls, method):
    with signaltrail.muted(ping):
        getattr(ping, method)(sender="a")
        getattr(pong, method)(sender="a")
    assert calls == [("pong", "a")]


@pytest.mark.parametrize("method", ["asend", "asend_robust"])
async def test_muted_covers_async_sends_and_async_receivers(connect, calls, method):
    async def async_receiver(sender, **kwargs):
        calls.append(("ping-async", sender))

    connect(ping, async_receiver)
    with signaltrail.muted(ping):
        await getattr(ping, method)(sender="inside")
    await getattr(ping, method)(sender="outside")
    assert sorted(calls) == [("ping", "outside"), ("ping-async", "outside")]


def test_receivers_run_again_after_the_block(calls):
    with signaltrail.muted(ping):
        ping.send(sender="inside")
    ping.send(sender="after")
    assert calls == [("ping", "after")]


def test_restored_after_an_exception(calls):
    with pytest.raises(RuntimeError), signaltrail.muted(ping):
        raise RuntimeError("boom")
    assert not is_muted(ping)
    ping.send(sender="after")
    assert calls == [("ping", "after")]


def test_blocks_nest(calls):
    with signaltrail.muted(ping):
        with signaltrail.muted(pong):
            send_all("both muted")
        send_all("ping muted")
    send_all("none muted")
    assert calls == [
        ("pong", "ping muted"),
        ("ping", "none muted"),
        ("pong", "none muted"),
    ]


def test_sender_filter_mutes_only_that_sender(connect, calls):
    filtered = []
    connect(ping, lambda sender, **kwargs: filtered.append(sender), sender="a")
    with signaltrail.muted(ping, sender="a"):
        ping.send(sender="a")
        ping.send(sender="b")
    assert calls == [("ping", "b")]
    assert filtered == []
    ping.send(sender="a")
    assert filtered == ["a"]


def test_signal_receivers_are_never_touched(calls):
    before = ping.receivers
    snapshot = list(before)
    with signaltrail.muted(ping):
        assert ping.receivers is before
        assert ping.receivers == snapshot
    assert ping.receivers is before


def test_has_listeners_answers_as_if_muted_receivers_were_gone(calls):
    assert ping.has_listeners("a")
    with signaltrail.muted(ping, sender="a"):
        assert not ping.has_listeners("a")
        assert ping.has_listeners("b")
    assert ping.has_listeners("a")


def test_decorator_on_a_sync_function(calls):
    @signaltrail.muted(ping)
    def quiet(sender):
        """Docstring kept."""
        ping.send(sender=sender)
        return "result"

    assert quiet("inside") == "result"
    assert quiet.__name__ == "quiet"
    assert quiet.__doc__ == "Docstring kept."
    ping.send(sender="outside")
    assert calls == [("ping", "outside")]


async def test_decorator_on_an_async_function(calls):
    @signaltrail.muted(ping)
    async def quiet(sender):
        await ping.asend(sender=sender)
        return "result"

    assert await quiet("inside") == "result"
    await ping.asend(sender="outside")
    assert calls == [("ping", "outside")]


def test_decorator_restores_after_an_exception(calls):
    @signaltrail.muted(ping)
    def failing():
        raise ValueError("boom")

    with pytest.raises(ValueError):
        failing()
    ping.send(sender="after")
    assert calls == [("ping", "after")]


def test_other_threads_are_not_muted(calls):
    inside = threading.Event()
    other_sent = threading.Event()
    waited = []

    def muted_thread():
        with signaltrail.muted(ping):
            inside.set()
            waited.append(other_sent.wait(10))
            ping.send(sender="muted thread")

    def other_thread():
        waited.append(inside.wait(10))
        ping.send(sender="other thread")
        other_sent.set()

    threads = [threading.Thread(target=muted_thread), threading.Thread(target=other_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert waited == [True, True]
    assert calls == [("ping", "other thread")]


def test_one_muted_object_can_be_shared_by_threads(calls):
    shared = signaltrail.muted(ping)
    barrier = threading.Barrier(2, timeout=10)

    def worker(name):
        with shared:
            barrier.wait()  # both threads inside the same muted object at once
            ping.send(sender=f"{name} inside")
            barrier.wait()
        ping.send(sender=f"{name} after")

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(calls) == [("ping", "t1 after"), ("ping", "t2 after")]


async def test_other_asyncio_tasks_are_not_muted(connect, calls):
    async def async_receiver(sender, **kwargs):
        calls.append(("ping-async", sender))

    connect(ping, async_receiver)
    inside = asyncio.Event()
    other_sent = asyncio.Event()

    async def muted_task():
        with signaltrail.muted(ping):
            inside.set()
            await other_sent.wait()
            await ping.asend(sender="muted task")

    async def other_task():
        await inside.wait()
        await ping.asend(sender="other task")
        other_sent.set()

    await asyncio.wait_for(
        asyncio.gather(asyncio.create_task(muted_task()), asyncio.create_task(other_task())),
        timeout=20,
    )
    assert sorted(calls) == [("ping", "other task"), ("ping-async", "other task")]


def test_only_signals_are_accepted():
    with pytest.raises(TypeError, match="Signal"):
        signaltrail.muted("post_save")
    with pytest.raises(TypeError, match="at least one signal"):
        signaltrail.muted()


# -- model signals and the audit trail ------------------------------------------


@pytest.mark.django_db
def test_model_sender_filter(connect):
    saved = []
    connect(post_save, lambda sender, instance, **kwargs: saved.append(sender))
    with signaltrail.muted(post_save, sender=Note):
        Note.objects.create(text="muted")
        Product.objects.create(name="not muted")
    assert saved == [Product]


@pytest.mark.django_db
def test_trail_still_records_under_muted_post_save(connect):
    user_calls = []
    connect(post_save, lambda sender, **kwargs: user_calls.append(sender), sender=Product)
    connect(post_delete, lambda sender, **kwargs: user_calls.append(sender), sender=Product)
    with signaltrail.muted(pre_save, post_save, post_delete):
        assert post_delete.has_listeners(Product)  # the trail's receiver is still there
        product = Product.objects.create(name="before")
        product.name = "after"
        product.save()
        pk = product.pk
        product.delete()
    assert user_calls == []
    events = Event.objects.for_model(Product).filter(object_pk=str(pk)).order_by("id")
    assert [e.action for e in events] == ["create", "update", "delete"]
    assert events[1].changes["name"] == ["before", "after"]
