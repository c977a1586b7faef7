"""A small Product-like model, and each package's registration of it.

simple-history and pghistory generate history models, which must exist while
the app's models load, so they are registered here; auditlog registers in
``BenchAppConfig.ready`` and signaltrail from ``settings.SIGNALTRAIL``.
"""

from django.conf import settings
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField(default=0)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


if settings.CONTENDER == "simple_history":
    from simple_history import register

    register(Product, m2m_fields=["tags"])

elif settings.CONTENDER == "pghistory":
    import pghistory

    pghistory.track(pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent())(
        Product
    )
    # The tags relation: one event per row added to / removed from the through table.
    pghistory.track(
        pghistory.InsertEvent("tags.add"),
        pghistory.DeleteEvent("tags.remove"),
        model_name="ProductTagsEvent",
    )(Product.tags.through)
