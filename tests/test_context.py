"""Who acted and why: ``signaltrail.context`` as seen in the recorded events.

The actor and metadata must follow the code that runs - nested blocks, decorated
functions, threads and asyncio tasks - and never leak from one to another: an
audit trail that names the wrong person is worse than none.
"""

import asyncio
import contextlib
import threading
from io import StringIO

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.management import call_command
from django.db import connection, connections

import signaltrail
from signaltrail.context import current
from signaltrail.models import Event
from tests.testapp.models import Product


def created_event(obj):
    return Event.objects.for_object(obj).get(action="create")


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw")


# -- context manager -----------------------------------------------------------


@pytest.mark.django_db
def test_context_manager_sets_actor_and_metadata(alice):
    with signaltrail.context(actor=alice, reason="nightly import", source="command", batch=7):
        product = Product.objects.create(name="Lamp")

    event = created_event(product)
    assert event.actor == alice
    assert event.actor_label == "alice"
    assert event.context["reason"] == "nightly import"
    assert event.context["source"] == "command"
    assert event.context["batch"] == 7


@pytest.mark.django_db
def test_outside_any_context_there_is_no_actor():
    product = Product.objects.create(name="Lamp")

    event = created_event(product)
    assert event.actor is None
    assert event.actor_label == ""
    assert event.context == {}


@pytest.mark.django_db
def test_a_string_actor_names_a_non_user_actor():
    with signaltrail.context(actor="payment-webhook"):
        product = Product.objects.create(name="Lamp")

    event = created_event(product)
    assert event.actor is None
    assert event.actor_label == "payment-webhook"


@pytest.mark.django_db
def test_the_context_ends_with_the_block(alice):
    with signaltrail.context(actor=alice, reason="inside"):
        pass
    product = Product.objects.create(name="Lamp")

    event = created_event(product)
    assert event.actor is None
    assert "reason" not in event.context


@pytest.mark.django_db
def test_inner_context_overrides_and_outer_is_restored(alice, bob):
    with signaltrail.context(actor=alice, reason="outer", source="command"):
        before = Product.objects.create(name="before")
        with signaltrail.context(actor=bob, reason="inner"):
            inner = Product.objects.create(name="inner")
        after = Product.objects.create(name="after")

    for product in (before, after):
        event = created_event(product)
        assert (event.actor, event.context["reason"]) == (alice, "outer")
    event = created_event(inner)
    assert event.actor == bob
    assert event.context["reason"] == "inner"
    # Keys the inner block doesn't set are inherited from the outer one.
    assert event.context["source"] == "command"


@pytest.mark.django_db
def test_outer_context_is_restored_after_an_exception(alice, bob):
    with signaltrail.context(actor=alice, reason="outer"):
        with pytest.raises(RuntimeError), signaltrail.context(actor=bob, reason="inner"):
            raise RuntimeError("boom")
        product = Product.objects.create(name="after the error")

    event = created_event(product)
    assert event.actor == alice
    assert event.context["reason"] == "outer"


@pytest.mark.django_db
def test_an_inner_actor_none_means_nobody(alice):
    with signaltrail.context(actor=alice), signaltrail.context(actor=None, reason="system"):
        product = Product.objects.create(name="Lamp")

    event = created_event(product)
    assert event.actor is None
    assert event.actor_label == ""
    assert event.context["reason"] == "system"


# -- decorator -----------------------------------------------------------------


@pytest.mark.django_db
def test_decorator_on_a_sync_function(alice):
    @signaltrail.context(actor=alice, reason="decorated")
    def make(name):
        return Product.objects.create(name=name)

    product = make("Lamp")
    outside = Product.objects.create(name="outside")

    event = created_event(product)
    assert (event.actor, event.context["reason"]) == (alice, "decorated")
    assert created_event(outside).actor is None
    assert make.__name__ == "make"  # functools.wraps: the function keeps its identity


@pytest.mark.django_db
def test_decorator_on_an_async_function(alice):
    @signaltrail.context(actor=alice, reason="async job")
    async def make(name):
        return await Product.objects.acreate(name=name)

    assert asyncio.iscoroutinefunction(make)
    product = async_to_sync(make)("Lamp")

    event = created_event(product)
    assert (event.actor, event.context["reason"]) == (alice, "async job")


@pytest.mark.django_db
def test_a_decorated_function_nested_in_itself_restores_each_level(alice, bob):
    @signaltrail.context(reason="recursive")
    def make(depth):
        if depth:
            with signaltrail.context(actor=bob):
                make(depth - 1)
        return Product.objects.create(name=f"depth {depth}")

    with signaltrail.context(actor=alice):
        outer = make(1)

    event = created_event(outer)
    assert (event.actor, event.context["reason"]) == (alice, "recursive")
    inner = Product.objects.get(name="depth 0")
    assert created_event(inner).actor == bob


def test_decorating_a_generator_function_is_refused():
    """Its body would run after the decorator's block ended: refused, not silently
    recorded without the context."""

    def rows():
        yield Product.objects.create(name="Lamp")

    async def arows():
        yield 1

    for func in (rows, arows):
        with pytest.raises(TypeError, match="cannot decorate a generator function"):
            signaltrail.context(reason="export")(func)


# -- lazy actor ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_callable_actor_is_resolved_only_when_an_event_is_written(alice):
    calls = []

    def who():
        calls.append(1)
        return alice

    with signaltrail.context(actor=who):
        Product.objects.filter(name="nothing").exists()
        assert calls == []
        product = Product.objects.create(name="Lamp")
    assert calls  # resolved for the write

    assert created_event(product).actor == alice


# -- isolation -----------------------------------------------------------------

ROUNDS = 3


@pytest.mark.django_db(transaction=True)
def test_threads_never_record_each_others_actor(django_user_model):
    """Two threads, each in its own context, write in lock-step."""
    users = [django_user_model.objects.create_user(f"thread{i}") for i in range(2)]
    barrier = threading.Barrier(len(users), timeout=60)
    # In-memory SQLite is one shared-cache database: concurrent writers fail with
    # "table is locked" rather than wait, so writes take turns there. The
    # contexts are still both active at once, which is what is tested.
    serial = threading.Lock() if connection.vendor == "sqlite" else contextlib.nullcontext()
    created: dict[str, list[int]] = {u.username: [] for u in users}
    errors: list[BaseException] = []

    def work(user):
        try:
            with signaltrail.context(actor=user, reason=f"by {user.username}"):
                barrier.wait()  # both threads are inside their own context now
                for i in range(ROUNDS):
                    with serial:
                        product = Product.objects.create(name=f"{user.username} {i}")
                    created[user.username].append(product.pk)
                    barrier.wait()  # let the other thread write before going on
                    with serial:
                        product.stock = i + 1
                        product.save()
                    barrier.wait()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

    for user in users:
        pks = [str(pk) for pk in created[user.username]]
        assert len(pks) == ROUNDS
        events = list(Event.objects.filter(object_pk__in=pks, action__in=["create", "update"]))
        assert len(events) == 2 * ROUNDS
        for event in events:
            assert event.actor_id == user.pk, event.context
            assert event.actor_label == user.username
            assert event.context["reason"] == f"by {user.username}"


@pytest.mark.django_db
def test_asyncio_tasks_never_record_each_others_actor(alice, bob):
    """Two tasks on one event loop (and one thread), interleaved at every await."""

    async def work(user, barrier):
        with signaltrail.context(actor=user, reason=f"by {user.username}"):
            await barrier.wait()
            product = await sync_to_async(Product.objects.create)(name=user.username)
            await barrier.wait()
            product.stock = 5
            await product.asave()
            await barrier.wait()
            return product

    async def main():
        barrier = asyncio.Barrier(2)
        return await asyncio.gather(work(alice, barrier), work(bob, barrier))

    products = async_to_sync(main)()

    for user, product in zip((alice, bob), products, strict=True):
        events = list(Event.objects.for_object(product))
        assert {e.action for e in events} == {"create", "update"}
        for event in events:
            assert event.actor == user
            assert event.context["reason"] == f"by {user.username}"


def test_one_context_object_can_be_shared_by_threads():
    """A context object made once (say, at module level) and entered by two threads
    at the same time: each thread leaves its own block and gets its own context back."""
    shared = signaltrail.context(reason="shared")
    both_inside = threading.Barrier(2, timeout=10)
    first_left = threading.Event()
    seen: dict[str, tuple] = {}
    errors: list[BaseException] = []

    def work(name, leave_first):
        try:
            with signaltrail.context(actor=name):
                with shared:
                    both_inside.wait()
                    inside = current()
                    if not leave_first:
                        first_left.wait(10)
                if leave_first:
                    first_left.set()
                after = current()
            seen[name] = (inside.actor, inside.metadata, after.actor, after.metadata)
        except BaseException as exc:
            errors.append(exc)
            both_inside.abort()
            first_left.set()

    threads = [
        threading.Thread(target=work, args=("t1", True)),
        threading.Thread(target=work, args=("t2", False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

    for name in ("t1", "t2"):
        assert seen[name] == (name, {"reason": "shared"}, name, {})
    assert current().actor is None


def test_one_context_object_can_be_shared_by_asyncio_tasks():
    shared = signaltrail.context(reason="shared")

    async def work(name, barrier, first_left, leave_first):
        with signaltrail.context(actor=name):
            with shared:
                await barrier.wait()
                if not leave_first:
                    await first_left.wait()
            if leave_first:
                first_left.set()
            return current().actor, current().metadata

    async def main():
        barrier, first_left = asyncio.Barrier(2), asyncio.Event()
        return await asyncio.gather(
            work("t1", barrier, first_left, True), work("t2", barrier, first_left, False)
        )

    assert asyncio.run(main()) == [("t1", {}), ("t2", {})]


# -- the actor after the user is gone ------------------------------------------


@pytest.mark.django_db
def test_actor_label_survives_the_deletion_of_the_user(alice):
    with signaltrail.context(actor=alice):
        product = Product.objects.create(name="Lamp")
    event = created_event(product)
    before = Event.objects.filter(pk=event.pk).values().get()

    alice.delete()

    after = Event.objects.filter(pk=event.pk).values().get()
    assert before["actor_id"] is not None
    assert after["actor_id"] is None
    assert after["actor_label"] == "alice"
    assert {k: v for k, v in after.items() if k != "actor_id"} == {
        k: v for k, v in before.items() if k != "actor_id"
    }
    out = StringIO()
    call_command("trail", "verify", "--no-progress", stdout=out)
    assert "intact" in out.getvalue()
