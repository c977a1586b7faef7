"""In-process receivers of the catalogue, connected in CatalogConfig.ready().

- Database work that belongs to the change runs in its transaction (plain
  receivers): comparing the price with the stored one, recording a view.
- Side effects outside the database wait for the commit: removing files
  (``@signaltrail.on_commit``, quick, in-process) and sending emails
  (``@signaltrail.in_background``, in the worker: catalog.emails).
"""

import logging

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

import signaltrail

from .models import Product, ProductImage, ProductView
from .signals import price_dropped, product_viewed

logger = logging.getLogger("catalog")


@receiver(pre_save, sender=Product, dispatch_uid="catalog.remember_price_drop")
def remember_price_drop(sender, instance, raw=False, using=None, update_fields=None, **kwargs):
    """Compare the new price with the stored one, before the save overwrites it.

    The comparison is against the database, not the instance's past, so it
    holds for any instance however it was built. A new product has no
    stored price (no query, no drop); a price that rose is no drop either.
    """
    instance._price_drop = None
    if raw or instance.pk is None:
        return
    if update_fields is not None and "price" not in update_fields:
        return
    stored = (
        Product._base_manager.using(using)
        .filter(pk=instance.pk)
        .values_list("price", flat=True)
        .first()
    )
    # The value as it will be saved (a form or a script may have set a string).
    price = sender._meta.get_field("price").to_python(instance.price)
    if stored is not None and price is not None and price < stored:
        instance._price_drop = (stored, price)


@receiver(post_save, sender=Product, dispatch_uid="catalog.send_price_dropped")
def send_price_dropped(sender, instance, created, raw=False, using=None, **kwargs):
    """Announce a price drop once the save went through, still in its transaction."""
    drop = getattr(instance, "_price_drop", None)
    if drop and not created and not raw:
        old, new = drop
        price_dropped.send(
            sender=sender, product=instance, old_price=str(old), new_price=str(new), using=using
        )


@signaltrail.on_commit(post_delete, sender=ProductImage)
def remove_image_file(sender, instance, **kwargs):
    """Remove the file once the row's deletion is committed (never after a rollback).

    Deleting a product deletes its images (CASCADE), so this runs for each
    of them. The database is already committed here: a file that cannot be
    removed is logged for someone to clean up, and the user sees no error.
    """
    name = instance.image.name
    if not name:
        return
    try:
        instance.image.storage.delete(name)
    except Exception:
        logger.exception("Could not remove the image file %r of a deleted product image", name)


@receiver(product_viewed, dispatch_uid="catalog.count_view")
def count_view(sender, product, user=None, session_key="", **kwargs):
    """Record who viewed the product and add one to its view count.

    ``F("view_count") + 1`` makes the database do the addition, so
    concurrent views never overwrite each other's count.
    """
    with transaction.atomic():
        ProductView.objects.create(
            product=product,
            user=user if user is not None and user.is_authenticated else None,
            session_key=session_key or "",
        )
        Product.objects.filter(pk=product.pk).update(view_count=F("view_count") + 1)
