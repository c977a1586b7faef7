"""Models exercising what the trail must cope with."""

import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy

import signaltrail


class Category(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self):
        return self.name


@signaltrail.track(exclude=["updated_at"], mask=["api_key"], m2m=["tags"])
class Product(models.Model):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    stock = models.IntegerField(default=0)
    description = models.TextField(blank=True, default="")
    api_key = models.CharField(max_length=64, blank=True, default="")
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.CASCADE, related_name="products"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")
    data = models.JSONField(default=dict, blank=True)
    image = models.FileField(upload_to="products/", blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        # Follows a foreign key on purpose: the trail must not fill the cache.
        return f"{self.name} ({self.category.name})" if self.category_id else self.name


class DiscountedProduct(Product):
    class Meta:
        proxy = True


signaltrail.track(Category)


@signaltrail.track
class UUIDThing(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    label = models.CharField(max_length=50)


@signaltrail.track
class Code(models.Model):
    code = models.CharField(max_length=20, primary_key=True)
    label = models.CharField(max_length=50, blank=True)


@signaltrail.track
class Place(models.Model):
    name = models.CharField(max_length=50)
    address = models.CharField(max_length=80, blank=True)


@signaltrail.track
class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)


class ActiveManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(active=True)


@signaltrail.track
class Article(models.Model):
    title = models.CharField(max_length=50)
    active = models.BooleanField(default=True)

    objects = ActiveManager()
    everything = models.Manager()


class LazyStr(models.Model):
    name = models.CharField(max_length=50)

    def __str__(self):
        return gettext_lazy("lazy thing")


class NonStr(models.Model):
    number = models.IntegerField(default=0)

    def __str__(self):
        return self.number  # a bug in user code: not a string


class Blob(models.Model):
    payload = models.BinaryField(null=True)


class Member(models.Model):
    handle = models.CharField(max_length=30, unique=True)


class Club(models.Model):
    name = models.CharField(max_length=30)
    members = models.ManyToManyField(Member, through="Membership", related_name="clubs")


class Membership(models.Model):
    club = models.ForeignKey(Club, on_delete=models.CASCADE)
    member = models.ForeignKey(Member, to_field="handle", on_delete=models.CASCADE)


signaltrail.track(LazyStr)
signaltrail.track(NonStr)
signaltrail.track(Blob)
signaltrail.track(Club, m2m=["members"])


class AllFields(models.Model):
    """One of each built-in field type."""

    big = models.BigIntegerField(null=True)
    boolean = models.BooleanField(default=False)
    char = models.CharField(max_length=50, blank=True)
    date = models.DateField(null=True)
    datetime = models.DateTimeField(null=True)
    decimal = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    duration = models.DurationField(null=True)
    email = models.EmailField(blank=True)
    file = models.FileField(blank=True, upload_to="f/")
    file_path = models.CharField(max_length=100, blank=True)
    floating = models.FloatField(null=True)
    generic_ip = models.GenericIPAddressField(null=True)
    image = models.ImageField(blank=True, upload_to="i/")
    integer = models.IntegerField(null=True)
    json = models.JSONField(null=True)
    positive_big = models.PositiveBigIntegerField(null=True)
    positive = models.PositiveIntegerField(null=True)
    positive_small = models.PositiveSmallIntegerField(null=True)
    slug = models.SlugField(blank=True)
    small = models.SmallIntegerField(null=True)
    text = models.TextField(blank=True)
    time = models.TimeField(null=True)
    url = models.URLField(blank=True)
    uuid = models.UUIDField(null=True)
    binary = models.BinaryField(null=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)


signaltrail.track(AllFields)


class Note(models.Model):
    """Never tracked."""

    text = models.CharField(max_length=50)


# -- added for tests/test_serialization.py and tests/test_invisible.py ----------


class Point:
    """An arbitrary Python object: nothing in signaltrail knows how to serialize it."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


class BadPoint(Point):
    """A Point that cannot even be compared or repr()'d."""

    def __eq__(self, other):
        raise RuntimeError("BadPoint cannot be compared")

    __hash__ = None

    def __repr__(self):
        raise RuntimeError("BadPoint has no repr")


class PointField(models.CharField):
    """A custom field whose Python values are Points, stored as "x,y"."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 50)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else Point(*map(int, value.split(",")))

    def to_python(self, value):
        if value is None or isinstance(value, Point):
            return value
        return Point(*map(int, str(value).split(",")))

    def get_prep_value(self, value):
        return None if value is None else f"{value.x},{value.y}"


@signaltrail.track
class Gadget(models.Model):
    name = models.CharField(max_length=30, blank=True)
    where = PointField(null=True)


@signaltrail.track
class Bookmark(models.Model):
    """Fields that are not concrete, and one the database computes."""

    content_type = models.ForeignKey(
        "contenttypes.ContentType", null=True, blank=True, on_delete=models.CASCADE
    )
    object_id = models.CharField(max_length=40, blank=True)
    target = GenericForeignKey("content_type", "object_id")
    replies = GenericRelation("Bookmark")
    note = models.CharField(max_length=50, blank=True)
    note_lower = models.GeneratedField(
        expression=Lower("note"), output_field=models.CharField(max_length=50), db_persist=True
    )

    @property
    def label(self):
        return f"bookmark of {self.target}"

    def __str__(self):
        return self.label


@signaltrail.track
class Ranked(models.Model):
    """A unique column an ordered update() shifts (MySQL/MariaDB follow order_by())."""

    rank = models.IntegerField(unique=True)
