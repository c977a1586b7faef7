"""A small but realistic bookshop: the shapes of model real projects have.

Nothing here is tracked in code: tests/settings_all_models.py tracks every
model with ``ALL_MODELS``, tests/settings.py tracks none of them, and
tests/test_orm_invariance.py compares what the ORM does under both.

Covered on purpose: an abstract base with auto timestamps, a string primary
key, a UUID, a unique slug, Decimal and JSON values, a custom
manager/queryset, an explicit m2m through model with extra data, a
symmetrical self m2m, an auto-created m2m, multi-table inheritance, a proxy
with its own manager, a generic foreign key, and every ``on_delete``
(CASCADE, PROTECT, SET_NULL, SET_DEFAULT, RESTRICT).
"""

import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Count
from django.db.models.signals import post_save

from .receivers import early_post_save


class Timestamped(models.Model):
    """Abstract base: the usual created/updated pair."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Genre(models.Model):
    """String primary key; the SET_DEFAULT target of Book.genre."""

    code = models.CharField(max_length=20, primary_key=True)
    name = models.CharField(max_length=50)

    def __str__(self):
        return self.name


class Publisher(Timestamped):
    name = models.CharField(max_length=100, unique=True)
    country = models.CharField(max_length=2, default="GB")

    def __str__(self):
        return self.name


class ActiveAuthorManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(active=True)


class Author(Timestamped):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    active = models.BooleanField(default=True)

    objects = models.Manager()
    active_objects = ActiveAuthorManager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class BookQuerySet(models.QuerySet):
    def published(self):
        return self.filter(published_on__isnull=False)

    def cheaper_than(self, price):
        return self.filter(price__lt=price)

    def with_review_count(self):
        return self.annotate(review_count=Count("reviews"))


class BookManager(models.Manager.from_queryset(BookQuerySet)):
    def get_by_natural_key(self, slug):
        return self.get(slug=slug)


class Book(Timestamped):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    publisher = models.ForeignKey(Publisher, on_delete=models.PROTECT, related_name="books")
    genre = models.ForeignKey(
        Genre, on_delete=models.SET_DEFAULT, default="general", related_name="books"
    )
    authors = models.ManyToManyField(Author, through="Authorship", related_name="books")
    related = models.ManyToManyField("self", symmetrical=True, blank=True)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    pages = models.PositiveIntegerField(default=0)
    published_on = models.DateField(null=True, blank=True)
    in_print = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    tags = GenericRelation("TaggedItem", related_query_name="book")

    objects = BookManager()

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.title

    def natural_key(self):
        return (self.slug,)


class Authorship(models.Model):
    """The explicit through model of Book.authors, carrying a role."""

    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="author")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["book", "author"], name="bookshop_one_role_per_author")
        ]


class EBook(Book):
    """Multi-table inheritance: a Book row plus an EBook row."""

    file_format = models.CharField(max_length=10, default="epub")
    drm = models.BooleanField(default=False)


class BargainManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(price__lt=10)


class BargainBook(Book):
    """A proxy with its own default manager and ordering."""

    objects = BargainManager()

    class Meta:
        proxy = True
        ordering = ["price", "slug"]

    def __str__(self):
        return f"{self.title} (bargain)"


class Review(Timestamped):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="book_reviews",
    )
    rating = models.PositiveSmallIntegerField()
    body = models.TextField(blank=True)

    def __str__(self):
        # Follows a foreign key, as many real __str__ do.
        return f"{self.rating}/5 for {self.book}"


class Store(models.Model):
    """An auto-created m2m through table."""

    name = models.CharField(max_length=100)
    books = models.ManyToManyField(Book, blank=True, related_name="stores")

    def __str__(self):
        return self.name


class Award(models.Model):
    """RESTRICT: a book with awards can't be deleted on its own, but deleting
    the author cascades to the award, which then no longer restricts."""

    name = models.CharField(max_length=100)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="awards")
    book = models.ForeignKey(Book, on_delete=models.RESTRICT, related_name="awards")

    def __str__(self):
        return self.name


class TaggedItem(models.Model):
    """A generic foreign key, the contrib.contenttypes way."""

    tag = models.SlugField()
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")

    class Meta:
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self):
        return self.tag


class ReviewStat(models.Model):
    """One row per book, kept by a receiver in the workload (a common pattern)."""

    book = models.OneToOneField(Book, on_delete=models.CASCADE, related_name="stat")
    reviews = models.PositiveIntegerField(default=0)


# Connected at import: before the trail's receivers (see receivers.py).
post_save.connect(early_post_save, sender=Publisher, weak=False, dispatch_uid="bookshop.early")
