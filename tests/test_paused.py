"""paused(): nothing recorded inside, and one trail_paused event says so."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import signaltrail
from signaltrail.models import Event
from tests.testapp.models import Category, Product, Tag

pytestmark = pytest.mark.django_db


def paused_events():
    return list(Event.objects.filter(action="trail_paused").order_by("id"))


def test_nothing_is_recorded_and_one_event_counts_the_skipped_writes(django_user_model):
    user = django_user_model.objects.create(username="ops")
    with signaltrail.context(actor=user), signaltrail.paused(reason="fixture load"):
        category = Category.objects.create(name="Tools")
        product = Product.objects.create(name="Hammer", category=category)
        product.name = "Claw hammer"
        product.save()
        product.tags.add(Tag.objects.create(name="sale"))
    assert (
        not Event.objects.exclude(action="trail_paused")
        .filter(action__in=["create", "update", "m2m_add"])
        .exists()
    )
    (event,) = paused_events()
    assert event.changes == {"skipped": {"testapp.Category": 1, "testapp.Product": 3}}
    assert event.context["reason"] == "fixture load"
    assert event.actor == user


def test_a_pause_that_skipped_nothing_is_still_recorded():
    with signaltrail.paused(reason="maintenance"):
        pass
    (event,) = paused_events()
    assert event.changes == {"skipped": {}}


def test_recording_resumes_after_the_block_also_after_an_exception():
    with pytest.raises(RuntimeError), signaltrail.paused(reason="import"):
        Category.objects.create(name="skipped")
        raise RuntimeError("import failed")
    Category.objects.create(name="recorded")
    assert [e.changes["name"][1] for e in Event.objects.filter(action="create")] == ["recorded"]
    (event,) = paused_events()
    assert event.changes == {"skipped": {"testapp.Category": 1}}


def test_blocks_nest_and_each_counts_its_own_writes():
    with signaltrail.paused(reason="outer"):
        Category.objects.create(name="a")
        with signaltrail.paused(reason="inner"):
            Category.objects.create(name="b")
            Category.objects.create(name="c")
        Category.objects.create(name="d")
    inner, outer = paused_events()
    assert (inner.context["reason"], inner.changes) == (
        "inner",
        {"skipped": {"testapp.Category": 2}},
    )
    assert (outer.context["reason"], outer.changes) == (
        "outer",
        {"skipped": {"testapp.Category": 2}},
    )
    assert not Event.objects.filter(action="create").exists()


def test_decorator():
    @signaltrail.paused(reason="nightly")
    def load():
        Category.objects.create(name="x")
        return "done"

    assert load() == "done"
    (event,) = paused_events()
    assert event.changes == {"skipped": {"testapp.Category": 1}}
    Category.objects.create(name="y")
    assert Event.objects.filter(action="create").count() == 1


def test_generator_functions_are_refused():
    with pytest.raises(TypeError):

        @signaltrail.paused(reason="x")
        def rows():
            yield 1


@pytest.mark.django_db(transaction=True)
def test_other_threads_keep_recording_while_one_is_paused():
    inside = threading.Event()
    done = threading.Event()

    def paused_worker():
        with signaltrail.paused(reason="thread"):
            Category.objects.create(name="paused")
            inside.set()
            done.wait(10)

    thread = threading.Thread(target=paused_worker)
    thread.start()
    assert inside.wait(10)
    Category.objects.create(name="recorded")
    done.set()
    thread.join(10)
    assert [e.changes["name"][1] for e in Event.objects.filter(action="create")] == ["recorded"]
    assert paused_events()[0].changes == {"skipped": {"testapp.Category": 1}}


@pytest.mark.django_db(transaction=True)
async def test_one_paused_object_shared_by_two_tasks():
    shared = signaltrail.paused(reason="shared")
    both_inside = asyncio.Barrier(2)

    async def worker(name):
        async with shared:
            await sync_to_async(Category.objects.create)(name=name)
            await both_inside.wait()

    await asyncio.gather(worker("a"), worker("b"))
    events = await sync_to_async(paused_events)()
    await sync_to_async(connections.close_all)()  # the worker thread's connection
    assert [e.changes for e in events] == [{"skipped": {"testapp.Category": 1}}] * 2
    assert not await Event.objects.filter(action="create").aexists()


@pytest.mark.django_db(transaction=True)
async def test_async_decorator():
    @signaltrail.paused(reason="async job")
    async def job():
        await Category.objects.acreate(name="x")

    await job()
    events = await sync_to_async(paused_events)()
    await sync_to_async(connections.close_all)()  # the worker thread's connection
    assert [e.changes for e in events] == [{"skipped": {"testapp.Category": 1}}]
