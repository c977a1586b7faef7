from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

import signaltrail


@signaltrail.track
class Category(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


@signaltrail.track
class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


# view_count changes on every page view: it stays out of the trail, which
# records what people changed, not what they looked at (ProductView does).
@signaltrail.track(exclude=["updated_at", "view_count"], mask=["supplier_api_key"], m2m=["tags"])
class Product(models.Model):
    name = models.CharField(_("name"), max_length=200)
    price = models.DecimalField(_("price"), max_digits=10, decimal_places=2)
    limit_per_user = models.PositiveSmallIntegerField(
        _("limit per customer"),
        default=5,
        help_text=_("How many of this product one customer may buy."),
    )
    description = models.TextField(_("description"), blank=True)
    category = models.ForeignKey(
        Category, verbose_name=_("category"), on_delete=models.PROTECT, related_name="products"
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="products")
    supplier_api_key = models.CharField(_("supplier API key"), max_length=64, blank=True)
    view_count = models.PositiveIntegerField(_("views"), default=0, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("catalog:detail", args=[self.pk])


@signaltrail.track
class ProductImage(models.Model):
    """An image file of a product; the file leaves storage when the row is deleted."""

    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.CASCADE, related_name="images"
    )
    image = models.ImageField(_("image"), upload_to="products/")
    alt = models.CharField(_("description of the image"), max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("product image")
        verbose_name_plural = _("product images")
        ordering = ("position", "id")

    def __str__(self) -> str:
        return self.image.name


class ProductView(models.Model):
    """One view of a product page: by a user, or by an anonymous session."""

    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.CASCADE, related_name="views"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    session_key = models.CharField(_("session"), max_length=40, blank=True)
    viewed_at = models.DateTimeField(_("viewed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("product view")
        verbose_name_plural = _("product views")
        ordering = ("-viewed_at", "-id")

    def __str__(self) -> str:
        return f"{self.product_id} @ {self.viewed_at:%Y-%m-%d %H:%M}"
