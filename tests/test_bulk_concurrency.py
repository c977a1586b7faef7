"""``QuerySet.update()`` while another transaction changes the same rows.

The old values come from the trail's SELECT of each batch, before Django's
UPDATE. Were that SELECT not to lock the rows, a transaction committing
between the two would make the event record as old a value the UPDATE did
not replace, and the object's history would stop adding up.
"""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.models import F

from signaltrail.models import Event
from signaltrail.signals import pre_bulk_update
from tests.test_held import verified
from tests.test_m2m_add import waiting_for_a_lock
from tests.testapp.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


def assert_history(thread, errors, product, stocks):
    """Once the other thread is done: ``product``'s update events changed
    stock as ``stocks`` says, the last one left what the row holds, and the
    trail verifies."""
    thread.join(10)
    assert not thread.is_alive() and not errors, errors
    updates = [
        e.changes["stock"]
        for e in Event.objects.for_object(product).filter(action="update").order_by("id")
    ]
    assert updates == stocks
    assert Product.objects.get(pk=product.pk).stock == stocks[-1][1]
    assert verified()


def test_a_row_changed_by_another_transaction_meanwhile_waits_for_the_update():
    if not connection.features.has_select_for_update:
        pytest.skip("needs row locks between two connections (PostgreSQL, MariaDB)")
    p = Product.objects.create(name="Hammer", stock=10)
    errors = []

    def other():
        try:
            Product.objects.filter(pk=p.pk).update(stock=20)
        except Exception as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)

    def between_select_and_update(sender, pks, **kwargs):
        if threading.current_thread() is thread:
            return  # the other update's own batch
        # The old values are read: another transaction now changes the row.
        thread.start()
        deadline = time.monotonic() + 10
        while not waiting_for_a_lock("SELECT%FOR UPDATE%"):
            assert thread.is_alive(), f"the other update did not wait: {errors}"
            assert time.monotonic() < deadline, "the other update neither waited nor ended"
            time.sleep(0.02)

    pre_bulk_update.connect(between_select_and_update, sender=Product)
    try:
        with transaction.atomic():
            assert Product.objects.filter(pk=p.pk).update(stock=F("stock") + 1) == 1
    finally:
        pre_bulk_update.disconnect(between_select_and_update, sender=Product)
    # Each event's old value is what the one before it left.
    assert_history(thread, errors, p, [[10, 11], [11, 20]])


def _update(p):
    assert Product.objects.filter(pk=p.pk).update(stock=F("stock") + 1) == 1
    return 21


def _bulk_update_not_loaded(p):
    Product.objects.bulk_update([Product(pk=p.pk, name="Hammer", stock=5)], ["stock"])
    return 5


def _upsert(p):
    target = ["id"] if connection.features.supports_update_conflicts_with_target else None
    Product.objects.bulk_create(
        [Product(pk=p.pk, name="Hammer", stock=5)],
        update_conflicts=True,
        update_fields=["stock"],
        unique_fields=target,
    )
    return 5


@pytest.mark.parametrize(
    "write", [_update, _bulk_update_not_loaded, _upsert], ids=["update", "bulk_update", "upsert"]
)
def test_a_write_waiting_for_another_transaction_records_the_value_it_replaced(write):
    """When another transaction holds the row, the bulk path's read of old
    values waits for it, and records as old the value that one committed.
    (update(): on PostgreSQL, without pre_bulk_update receivers, each batch is
    found, locked and updated in one statement.)"""
    if not connection.features.has_select_for_update:
        pytest.skip("needs row locks between two connections (PostgreSQL, MariaDB)")
    p = Product.objects.create(name="Hammer", stock=10)
    holding = threading.Event()
    errors = []

    def other():
        try:
            with transaction.atomic():
                Product.objects.filter(pk=p.pk).update(stock=20)
                holding.set()
                # Commit once the main thread's read waits for this row.
                deadline = time.monotonic() + 10
                while not waiting_for_a_lock("%FOR UPDATE%"):
                    assert time.monotonic() < deadline, "the read did not wait"
                    time.sleep(0.02)
        except Exception as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    assert holding.wait(10), errors
    written = write(p)
    assert_history(thread, errors, p, [[10, 20], [20, written]])
