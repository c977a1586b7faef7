"""signaltrail.trace(): one record per receiver call in the block, and only there."""

import asyncio
import json
import logging
import threading

import pytest
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal
from django.http import HttpResponse

import signaltrail
from signaltrail.middleware import TrailMiddleware
from signaltrail.toolkit.tracing import TraceMiddleware, TraceRecord
from tests.testapp.models import Product

ping = Signal()

PING = f"{__name__}.ping"


def on_ping(sender, **kwargs):
    return "pong"


async def on_ping_async(sender, **kwargs):
    return "async pong"


def failing(sender, **kwargs):
    raise ValueError("boom")


async def failing_async(sender, **kwargs):
    raise ValueError("async boom")


def name(func):
    return f"{func.__module__}.{func.__qualname__}"


def test_records_each_receiver_call(connect):
    connect(ping, on_ping)
    with signaltrail.trace() as t:
        responses = ping.send(sender="shop")
    records = list(t)
    assert len(records) == 1
    record = records[0]
    assert isinstance(record, TraceRecord)
    assert record.signal == PING
    assert record.sender == "'shop'"
    assert record.receiver == name(on_ping)
    assert isinstance(record.duration_ms, float)
    assert record.duration_ms >= 0
    assert record.exception is None
    # send()'s answer is unchanged: the user's receiver and its response.
    assert responses == [(on_ping, "pong")]


@pytest.mark.django_db
def test_records_a_model_save_with_every_receiver(connect):
    def before(sender, **kwargs):
        pass

    def after(sender, **kwargs):
        pass

    connect(pre_save, before, sender=Product)
    connect(post_save, after, sender=Product)
    with signaltrail.trace() as t:
        product = Product.objects.create(name="traced")
        product.delete()
    calls = [(r.signal, r.sender, r.receiver) for r in t]
    assert ("django.db.models.signals.pre_save", "testapp.Product", name(before)) in calls
    assert ("django.db.models.signals.post_save", "testapp.Product", name(after)) in calls
    assert (
        "django.db.models.signals.pre_delete",
        "testapp.Product",
        "signaltrail.capture.on_pre_delete",
    ) in calls
    assert (
        "django.db.models.signals.post_delete",
        "testapp.Product",
        "signaltrail.capture.on_post_delete",
    ) in calls
    assert all(r.exception is None for r in t)


def test_send_robust_exceptions_are_recorded(connect):
    connect(ping, failing)
    connect(ping, on_ping)
    with signaltrail.trace() as t:
        responses = ping.send_robust(sender="shop")
    assert [(r.receiver, r.exception) for r in t] == [
        (name(failing), "ValueError('boom')"),
        (name(on_ping), None),
    ]
    assert responses[0][0] == failing
    assert isinstance(responses[0][1], ValueError)


def test_send_exceptions_are_recorded_and_propagate(connect):
    connect(ping, failing)
    with signaltrail.trace() as t, pytest.raises(ValueError, match="boom"):
        ping.send(sender="shop")
    assert [r.exception for r in t] == ["ValueError('boom')"]


def test_async_receivers_under_send_are_recorded(connect):
    connect(ping, on_ping_async)
    with signaltrail.trace() as t:
        responses = ping.send(sender="shop")
    assert [r.receiver for r in t] == [name(on_ping_async)]
    assert responses == [(on_ping_async, "async pong")]


async def test_asend_records_sync_and_async_receivers(connect):
    connect(ping, on_ping)
    connect(ping, on_ping_async)
    with signaltrail.trace() as t:
        responses = await ping.asend(sender="shop")
    assert sorted(r.receiver for r in t) == sorted([name(on_ping), name(on_ping_async)])
    assert all(r.signal == PING and r.exception is None for r in t)
    assert sorted(responses, key=repr) == sorted(
        [(on_ping, "pong"), (on_ping_async, "async pong")], key=repr
    )


async def test_asend_robust_records_exceptions(connect):
    connect(ping, failing)
    connect(ping, failing_async)
    with signaltrail.trace() as t:
        await ping.asend_robust(sender="shop")
    assert sorted((r.receiver, r.exception) for r in t) == sorted(
        [(name(failing), "ValueError('boom')"), (name(failing_async), "ValueError('async boom')")]
    )


def test_nothing_is_recorded_outside_the_block(connect):
    connect(ping, on_ping)
    ping.send(sender="before")
    with signaltrail.trace() as t:
        ping.send(sender="inside")
    ping.send(sender="after")
    assert [r.sender for r in t] == ["'inside'"]


def test_traces_nest(connect):
    connect(ping, on_ping)
    with signaltrail.trace() as outer:
        ping.send(sender="outer")
        with signaltrail.trace() as inner:
            ping.send(sender="inner")
        ping.send(sender="outer again")
    assert [r.sender for r in inner] == ["'inner'"]
    assert [r.sender for r in outer] == ["'outer'", "'inner'", "'outer again'"]


def test_other_threads_are_not_traced(connect):
    connect(ping, on_ping)
    other = threading.Thread(target=lambda: ping.send(sender="other thread"))
    with signaltrail.trace() as t:
        other.start()
        other.join(10)
        ping.send(sender="this thread")
    assert [r.sender for r in t] == ["'this thread'"]


async def test_other_tasks_are_not_traced(connect):
    connect(ping, on_ping_async)
    inside = asyncio.Event()
    other_sent = asyncio.Event()

    async def traced():
        with signaltrail.trace() as t:
            inside.set()
            await other_sent.wait()
            await ping.asend(sender="traced task")
        return t

    async def other():
        await inside.wait()
        await ping.asend(sender="other task")
        other_sent.set()

    t, _ = await asyncio.wait_for(asyncio.gather(traced(), other()), timeout=20)
    assert [r.sender for r in t] == ["'traced task'"]


def test_muted_receivers_are_not_recorded(connect):
    connect(ping, on_ping)
    with signaltrail.trace() as t, signaltrail.muted(ping):
        ping.send(sender="muted")
    assert list(t) == []


def test_signal_not_bound_to_a_module_name_still_gets_a_label(connect):
    local = Signal()
    connect(local, on_ping)
    with signaltrail.trace() as t:
        local.send(sender=None)
    assert [r.signal.startswith("<unnamed Signal at 0x") for r in t] == [True]
    assert [r.sender for r in t] == ["None"]


# -- TraceMiddleware --------------------------------------------------------------


def sync_view(request):
    ping.send(sender="view")
    return HttpResponse("ok")


async def async_view(request):
    await ping.asend(sender="view")
    return HttpResponse("ok")


def trace_lines(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "signaltrail.trace"]


def test_middleware_logs_one_line_per_request(connect, settings, caplog, rf):
    connect(ping, on_ping)
    settings.SIGNALTRAIL = {"TRACE_REQUESTS": True}
    handler = TrailMiddleware(TraceMiddleware(sync_view))
    with caplog.at_level(logging.INFO, logger="signaltrail.trace"):
        response = handler(rf.get("/shop/cart/", headers={"X-Request-ID": "req-123"}))
    assert response.status_code == 200
    [line] = trace_lines(caplog)
    assert line["request_id"] == "req-123"
    assert line["path"] == "/shop/cart/"
    assert line["method"] == "GET"
    assert line["count"] == 1
    assert line["total_ms"] >= 0
    assert [(s["signal"], s["receiver"]) for s in line["slowest"]] == [(PING, name(on_ping))]


async def test_middleware_in_an_async_stack(connect, settings, caplog, async_rf):
    connect(ping, on_ping_async)
    settings.SIGNALTRAIL = {"TRACE_REQUESTS": True}
    # Outside TrailMiddleware: the request id comes from the response header.
    handler = TraceMiddleware(TrailMiddleware(async_view))
    with caplog.at_level(logging.INFO, logger="signaltrail.trace"):
        response = await handler(async_rf.get("/async/", headers={"X-Request-ID": "req-async"}))
    assert response.status_code == 200
    [line] = trace_lines(caplog)
    assert line["request_id"] == "req-async"
    assert line["count"] == 1
    assert line["slowest"][0]["receiver"] == name(on_ping_async)


def test_middleware_is_silent_when_the_setting_is_off(connect, settings, caplog, rf):
    connect(ping, on_ping)
    handler = TraceMiddleware(sync_view)
    with caplog.at_level(logging.INFO, logger="signaltrail.trace"):
        settings.SIGNALTRAIL = {}
        handler(rf.get("/"))
        settings.SIGNALTRAIL = {"TRACE_REQUESTS": True}  # read per request
        handler(rf.get("/"))
    assert len(trace_lines(caplog)) == 1
