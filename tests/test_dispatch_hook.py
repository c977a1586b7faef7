"""Outside muted()/trace() blocks, signals dispatch through Django's own code.

The toolkit hooks ``Signal._live_receivers`` only while some block's scope is
reachable. These tests pin the lifetime of that hook: gone after the last
block (even one left by an exception), present while another thread is inside
a block, and kept for an asyncio task that inherited a block's scope and
outlives it, so that task's muting does not depend on what other code does.
"""

import asyncio
import gc
import threading

import pytest
from django.dispatch import Signal

import signaltrail
from signaltrail.toolkit import _dispatch

ping = Signal()


def djangos_own() -> bool:
    method = Signal.__dict__["_live_receivers"]
    return (
        "_signaltrail_original" not in vars(method)
        and method.__module__ == "django.dispatch.dispatcher"
    )


@pytest.fixture
def calls(connect):
    seen = []
    connect(ping, lambda sender, **kwargs: seen.append(sender))
    return seen


@pytest.fixture(autouse=True)
def no_scope_left():
    gc.collect()
    assert djangos_own(), "a block from an earlier test is still reachable"
    yield
    gc.collect()
    assert djangos_own()


def test_django_method_is_back_after_each_kind_of_block(calls):
    with signaltrail.muted(ping):
        assert _dispatch.installed()
        ping.send(sender="muted")
    assert djangos_own()
    with signaltrail.trace() as t:
        ping.send(sender="traced")
    assert djangos_own()
    with signaltrail.muted(ping), signaltrail.trace():
        ping.send(sender="both")
    assert djangos_own()
    ping.send(sender="plain")
    assert calls == ["traced", "plain"]
    assert len(list(t)) == 1


def test_django_method_is_back_after_an_exception(calls):
    with pytest.raises(ZeroDivisionError), signaltrail.muted(ping):
        ping.send(sender="inside")
        raise ZeroDivisionError
    assert djangos_own()
    ping.send(sender="after")
    assert calls == ["after"]


def test_decorated_function_leaves_nothing_behind(calls):
    @signaltrail.muted(ping)
    def work():
        ping.send(sender="inside")

    work()
    work()
    assert djangos_own()
    assert calls == []


def test_hook_stays_while_another_thread_is_in_a_block(calls):
    inside = threading.Event()
    leave = threading.Event()

    def muted_thread():
        with signaltrail.muted(ping):
            inside.set()
            leave.wait(10)
            ping.send(sender="muted thread")

    thread = threading.Thread(target=muted_thread)
    thread.start()
    try:
        assert inside.wait(10)
        assert _dispatch.installed()  # the other thread still needs it
        ping.send(sender="main")  # ... and this thread is not muted by it
    finally:
        leave.set()
        thread.join(20)
    assert djangos_own()
    assert calls == ["main"]


def test_many_threads_entering_and_leaving_blocks(calls):
    barrier = threading.Barrier(8, timeout=20)

    def worker(n):
        barrier.wait()
        for i in range(200):
            with signaltrail.muted(ping):
                ping.send(sender=("muted", n, i))
            if i % 50 == 0:
                ping.send(sender=("open", n, i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert djangos_own()
    assert sorted(calls) == sorted(("open", n, i) for n in range(8) for i in (0, 50, 100, 150))


async def test_task_started_in_a_block_stays_muted_after_the_block(calls):
    go_on = asyncio.Event()

    async def child():
        await go_on.wait()
        ping.send(sender="child, block already closed")
        await asyncio.sleep(0)

    with signaltrail.muted(ping):
        task = asyncio.create_task(child())
    assert _dispatch.installed()  # the task still holds the block's scope
    ping.send(sender="parent, after the block")
    go_on.set()
    await asyncio.wait_for(task, timeout=10)
    del task
    for _ in range(3):
        await asyncio.sleep(0)  # let the loop drop the finished task's callbacks
    gc.collect()
    assert djangos_own()
    assert calls == ["parent, after the block"]


async def test_decorated_coroutine_leaves_nothing_behind(calls):
    @signaltrail.muted(ping)
    async def work():
        await ping.asend(sender="inside")

    await asyncio.gather(work(), work())
    gc.collect()
    assert djangos_own()
    await ping.asend(sender="after")
    assert calls == ["after"]
