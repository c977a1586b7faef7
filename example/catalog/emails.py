"""The catalogue's emails, sent in the background (``@signaltrail.in_background``).

Each receiver runs in the worker (``manage.py db_worker``) after the change
committed: never for a rolled-back change, and not lost if the web process
dies after the commit (the call waits in signaltrail's outbox). The product
comes back loaded fresh from the database (None if it was deleted since);
the subscribers are read when the worker runs, so who unsubscribed in the
meantime gets nothing. One email per subscriber, in their language, so no
address is shown to another customer.
"""

from accounts.mail import send_to_user
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save

import signaltrail

from .models import Product
from .signals import price_dropped


def subscribers():
    return (
        get_user_model()
        .objects.filter(is_active=True, profile__newsletter=True)
        .exclude(email="")
        .select_related("profile")
        .order_by("pk")
    )


@signaltrail.in_background(post_save, sender=Product)
def announce_new_product(sender, instance, created, idempotency_key, raw=False, **kwargs):
    if not created or raw or instance is None:
        return
    for user in subscribers():
        send_to_user(user, "catalog/email/new_product", {"product": instance}, idempotency_key)


@signaltrail.in_background(price_dropped, sender=Product)
def announce_price_drop(sender, product, old_price, new_price, idempotency_key, **kwargs):
    if product is None:
        return
    context = {"product": product, "old_price": old_price, "new_price": new_price}
    for user in subscribers():
        send_to_user(user, "catalog/email/price_drop", context, idempotency_key)
