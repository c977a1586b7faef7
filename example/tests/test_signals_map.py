"""The shop's signals, as `manage.py trail signals` and `trace()` show them."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from tasks.models import Task

import signaltrail

pytestmark = pytest.mark.django_db


def signals_json(*args):
    out = StringIO()
    call_command("trail", "signals", "--json", *args, stdout=out)
    return {entry["signal"]: entry for entry in json.loads(out.getvalue())}


def receivers(entry):
    return {(r["receiver"], r["sender"]) for r in entry["receivers"]}


def test_the_map_lists_the_shops_receivers_with_their_senders():
    data = signals_json()
    pre_save = receivers(data["django.db.models.signals.pre_save"])
    assert ("catalog.receivers.remember_price_drop", "catalog.Product") in pre_save
    assert ("tasks.receivers.fill_slug", "tasks.Task") in pre_save
    pre_delete = receivers(data["django.db.models.signals.pre_delete"])
    assert ("tasks.receivers.refuse_deleting_in_progress", "tasks.Task") in pre_delete
    custom = [name for name in data if name.endswith(".product_viewed")]
    assert custom == ["catalog.signals.product_viewed"]
    assert ("catalog.receivers.count_view", "any") in receivers(data[custom[0]])


def test_the_map_can_be_narrowed_to_one_signal():
    assert list(signals_json("--signal", "task_completed")) == ["tasks.signals.task_completed"]


def test_tracing_a_price_drop_shows_every_receiver_it_ran(make_product):
    product = make_product()
    with signaltrail.trace() as t:
        product.price = product.price - Decimal("1.00")
        product.save()
    ran = [(r.signal.rsplit(".", 1)[-1], r.receiver) for r in t]
    assert ("pre_save", "catalog.receivers.remember_price_drop") in ran
    assert ("post_save", "catalog.receivers.send_price_dropped") in ran
    assert all(r.exception is None for r in t)


def test_tracing_a_task_save_shows_the_slug_receiver(make_user):
    boss = make_user("boss")
    with signaltrail.trace() as t:
        Task.objects.create(title="Count the rakes", created_by=boss)
    assert "tasks.receivers.fill_slug" in {r.receiver for r in t}
