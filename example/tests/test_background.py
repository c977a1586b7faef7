"""Background work with a real worker process on the database backend (django-tasks-db).

Here the @in_background receivers' calls go through signaltrail's outbox to
the database task backend, as in `make demo`, and `manage.py db_worker
--batch` (a separate process, on the test database) runs them and sends the
mail to a real SMTP server.
"""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from signaltrail.models import PendingCall

from .conftest import manage, shop_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def database_tasks(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def run_worker(smtp):
    result = manage(
        "db_worker",
        "--batch",
        "--no-reload",
        "--no-startup-delay",
        env=shop_env(SHOP_SMTP_PORT=smtp.port),
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_worker_sends_what_committed_changes_enqueued(
    database_tasks, smtp, make_user, make_product
):
    make_user("alice")
    product = make_product(name="Rake", price="18.00")
    product.price = Decimal("15.00")
    product.save()

    # The calls, each written to signaltrail's outbox with its change, then
    # handed to the database task backend after the commit: the welcome, the
    # product's two saves (created, then changed) and the price drop.
    calls = sorted(PendingCall.objects.values_list("receiver", flat=True))
    assert calls == [
        "accounts.emails.send_welcome",
        "catalog.emails.announce_new_product",
        "catalog.emails.announce_new_product",
        "catalog.emails.announce_price_drop",
    ]
    assert set(DBTaskResult.objects.values_list("task_path", "status")) == {
        ("signaltrail.toolkit.background.tasks.run_call", "READY")
    }
    assert DBTaskResult.objects.count() == 4
    assert smtp.messages == []  # nothing is sent by the web process itself

    run_worker(smtp)

    assert sorted(m.subject for m in smtp.messages) == [
        "New in the shop: Rake",
        "Price drop: Rake",
        "Welcome to the Signaltrail Shop",
    ]
    assert {tuple(m.to) for m in smtp.messages} == {("alice@example.com",)}
    [drop] = smtp.with_subject("Price drop")
    assert "dropped from 18.00 to 15.00" in drop.body
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert not PendingCall.objects.exists()  # done calls leave the outbox


def test_a_rolled_back_change_enqueues_nothing(database_tasks, smtp, make_product):
    with pytest.raises(RuntimeError), transaction.atomic():
        get_user_model().objects.create_user("alice", "alice@example.com", "pw")
        make_product(name="Rake")
        raise RuntimeError("rolled back")

    assert not DBTaskResult.objects.exists()
    assert not PendingCall.objects.exists()
    run_worker(smtp)
    assert smtp.messages == []


def test_the_worker_reads_the_subscribers_when_it_runs(
    database_tasks, smtp, make_user, make_product
):
    alice = make_user("alice")
    make_product(name="Rake")
    alice.profile.newsletter = False  # unsubscribed before the worker got to it
    alice.profile.save()

    run_worker(smtp)

    assert smtp.with_subject("New in the shop") == []
    assert len(smtp.with_subject("Welcome")) == 1
