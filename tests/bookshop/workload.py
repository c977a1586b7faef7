"""A deterministic ORM workload whose every observable result is written down.

``run()`` exercises the bookshop the way applications do (CRUD, queries,
related managers, bulk paths, cascades, transactions, copies, raw SQL,
serialization, async) and returns a JSON-able description of everything a
user could observe: return values, query results, instance state, raised
errors, and the signals that receivers connected by "user code" received.
tests/test_orm_invariance.py runs it with and without the trail installed on
every model and requires both descriptions to be identical.

tests/bookshop/runner.py runs it in a fresh test database, in autocommit mode
(the way a web request runs, not inside a test transaction).

What legitimately differs between two runs is normalized here, each with the
reason next to it: wall-clock timestamps, random UUIDs and password salts;
which fields of ProtectedError/RestrictedError objects Django loaded; and
when the ContentType cache is first filled. Signals about the trail's own
rows (signaltrail.Event) are kept apart, and ``summary()`` reports on the
trail itself: what the trail adds is not part of the comparison.

The "autocommit" and "autocommit_early" sections hold receivers that depend
on a plain save being committed before post_save; they are compared by
their own tests, so that a difference there is reported on its own.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import pickle
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Lower
from django.db.models.signals import (
    m2m_changed,
    post_delete,
    post_init,
    post_save,
    pre_delete,
    pre_init,
    pre_save,
)

from .models import (
    Author,
    Authorship,
    Award,
    BargainBook,
    Book,
    EBook,
    Genre,
    Publisher,
    Review,
    ReviewStat,
    Store,
    TaggedItem,
)
from .receivers import EARLY

TRAIL_LABEL = "signaltrail.Event"
CONTENT_TYPE_LABEL = "contenttypes.ContentType"
PASSWORD_HASH_PREFIXES = ("md5$", "pbkdf2_sha256$", "argon2$", "bcrypt$", "scrypt$")


# --------------------------------------------------------------------------
# Describing values
# --------------------------------------------------------------------------


class Describer:
    """Turns any ORM result into JSON, normalizing what may legitimately differ."""

    def __init__(self) -> None:
        # uuid4 defaults differ from run to run; name each UUID by the order
        # in which it first shows up, which keeps "same UUID here and there".
        self.uuids: dict[uuid.UUID, str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(PASSWORD_HASH_PREFIXES):
            # A password hash has a random salt.
            return "<password hash>"
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, datetime.datetime):
            # auto_now/auto_now_add and last_login: wall-clock time.
            return "<datetime>"
        if isinstance(value, datetime.date | datetime.time):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return f"Decimal({value})"
        if isinstance(value, uuid.UUID):
            return self.uuids.setdefault(value, f"uuid-{len(self.uuids) + 1}")
        if isinstance(value, bytes | memoryview):
            return {"bytes": bytes(value).hex()}
        if isinstance(value, models.Model):
            return self.instance(value)
        if isinstance(value, models.QuerySet | models.query.RawQuerySet):
            return {"queryset": [self(v) for v in value]}
        if isinstance(value, dict):
            return {str(self(k)): self(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return {"tuple": [self(v) for v in value]}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, set | frozenset):
            return {"set": sorted((self(v) for v in value), key=json.dumps)}
        if isinstance(value, BaseException):
            return self.error(value)
        return {"type": type(value).__name__, "repr": repr(value)}

    def fields(self, obj: models.Model) -> dict[str, Any]:
        """The loaded concrete fields, read from __dict__ so nothing is fetched."""
        loaded = obj.__dict__
        return {
            f.attname: self(loaded[f.attname])
            for f in obj._meta.concrete_fields
            if f.attname in loaded
        }

    def instance(self, obj: models.Model) -> dict[str, Any]:
        state = obj._state
        return {
            "class": obj._meta.label,
            "pk": self(obj.__dict__.get(obj._meta.pk.attname)),
            "db": state.db,
            "adding": state.adding,
            "fields": self.fields(obj),
            "deferred": sorted(obj.get_deferred_fields()),
            # Everything an instance carries besides _state: annotations,
            # prefetch caches, whatever a library might add.
            "keys": sorted(k for k in obj.__dict__ if k != "_state"),
            "cached_relations": sorted(state.fields_cache),
            "extra": {
                k: self(v)
                for k, v in sorted(obj.__dict__.items())
                if not k.startswith("_") and k not in {f.attname for f in obj._meta.concrete_fields}
            },
        }

    def error(self, exc: BaseException) -> dict[str, Any]:
        described: dict[str, Any] = {"raised": type(exc).__name__}
        if isinstance(exc, ValidationError):
            described["messages"] = self(getattr(exc, "message_dict", None) or exc.messages)
        else:
            described["message"] = str(exc)
        for attr in ("protected_objects", "restricted_objects"):
            if hasattr(exc, attr):
                # Which objects, not how much of them was loaded: without
                # delete receivers Django's collector fetches only the
                # fields it needs (deferred instances); once any receiver
                # listens - the trail's or any app's - it loads whole rows.
                described[attr] = sorted(
                    ([o._meta.label, self(o.pk)] for o in getattr(exc, attr)), key=json.dumps
                )
        return described


# --------------------------------------------------------------------------
# What user code receives
# --------------------------------------------------------------------------


def _label(sender: Any) -> str:
    meta = getattr(sender, "_meta", None)
    return meta.label if meta is not None else repr(sender)


class Recorder:
    """The observation log, and receivers standing in for the user's own.

    Receivers are connected both without a sender (the way generic apps do)
    and with a sender, for every model signal. Each call is written to the
    log in the order it happened, between the results of the operations.
    """

    def __init__(self) -> None:
        self.d = Describer()
        self.sections: dict[str, list[Any]] = {}
        self.log: list[Any] = []
        # Signals whose sender is the trail's own Event: not part of the
        # comparison, reported separately (see tests/test_orm_invariance.py).
        self.trail_signals: list[Any] = []
        self.content_type_loads: list[Any] = []
        self._connected: list[tuple[Any, Callable[..., Any], Any, str]] = []

    # -- results -------------------------------------------------------------

    def section(self, name: str) -> None:
        self.log = self.sections.setdefault(name, [])

    def res(self, label: str, value: Any) -> Any:
        self.log.append({"result": label, "type": type(value).__name__, "value": self.d(value)})
        return value

    def attempt(self, label: str, func: Callable[[], Any]) -> Any:
        try:
            value = func()
        except Exception as exc:
            self.log.append({"result": label, "value": self.d.error(exc)})
            return None
        return self.res(label, value)

    # -- receivers -----------------------------------------------------------

    def _entry(self, name: str, who: str, sender: Any, **kwargs: Any) -> None:
        entry: dict[str, Any] = {"signal": name, "receiver": who, "sender": _label(sender)}
        instance = kwargs.get("instance")
        if instance is not None:
            entry["instance_class"] = type(instance)._meta.label
            if name != "pre_init" and hasattr(instance, "_state"):
                entry["pk"] = self.d(instance.__dict__.get(instance._meta.pk.attname))
                entry["fields"] = self.d.fields(instance)
                entry["keys"] = sorted(k for k in instance.__dict__ if k != "_state")
                entry["adding"] = instance._state.adding
                entry["db"] = instance._state.db
        if name == "pre_init":
            entry["args"] = len(kwargs["args"])
            entry["kwargs"] = sorted(kwargs["kwargs"])
        for key in ("created", "raw", "using", "action", "reverse"):
            if key in kwargs:
                entry[key] = kwargs[key]
        if "update_fields" in kwargs:
            fields = kwargs["update_fields"]
            entry["update_fields"] = None if fields is None else sorted(fields)
        if "model" in kwargs:
            entry["model"] = _label(kwargs["model"])
        if "pk_set" in kwargs:
            pk_set = kwargs["pk_set"]
            entry["pk_set"] = None if pk_set is None else sorted(self.d(pk) for pk in pk_set)
        if "origin" in kwargs:
            origin = kwargs["origin"]
            entry["origin"] = {
                "type": type(origin).__name__,
                "model": _label(getattr(origin, "model", type(origin))),
            }
        if entry["sender"] == TRAIL_LABEL:
            self.trail_signals.append(entry)
        elif entry["sender"] == CONTENT_TYPE_LABEL and name in ("pre_init", "post_init"):
            # ContentType instances are loaded once per process into a
            # cache, by whoever asks first: the trail's writer, or here the
            # generic relations. When that happens is not ORM behaviour,
            # so these are kept apart (tests/test_orm_invariance.py still
            # reports that the trail triggers them).
            self.content_type_loads.append(entry)
        else:
            self.log.append(entry)

    def _receiver(self, name: str, who: str) -> Callable[..., None]:
        def receiver(sender: Any, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            self._entry(name, who, sender, **kwargs)

        return receiver

    def connect(self) -> None:
        signals = {
            "pre_init": pre_init,
            "post_init": post_init,
            "pre_save": pre_save,
            "post_save": post_save,
            "pre_delete": pre_delete,
            "post_delete": post_delete,
            "m2m_changed": m2m_changed,
        }
        with_sender = [
            ("pre_init", Genre),
            ("post_init", Author),
            ("pre_save", EBook),
            ("post_save", Book),
            ("post_save", BargainBook),
            ("pre_delete", Review),
            ("post_delete", Author),
            ("m2m_changed", Book.authors.through),
            ("m2m_changed", Store.books.through),
        ]
        for name, signal in signals.items():
            self._connect(signal, self._receiver(name, "any"), None, f"workload:{name}:any")
        for name, sender in with_sender:
            uid = f"workload:{name}:{sender._meta.label}"
            self._connect(signals[name], self._receiver(name, sender._meta.label), sender, uid)

    def _connect(self, signal: Any, receiver: Any, sender: Any, uid: str) -> None:
        signal.connect(receiver, sender=sender, weak=False, dispatch_uid=uid)
        self._connected.append((signal, receiver, sender, uid))

    def disconnect(self) -> None:
        while self._connected:
            signal, _receiver, sender, uid = self._connected.pop()
            signal.disconnect(sender=sender, dispatch_uid=uid)


# --------------------------------------------------------------------------
# The workload, section by section
# --------------------------------------------------------------------------


def _setup(r: Recorder) -> dict[str, Any]:
    """Reference data, created the usual ways."""
    r.section("setup")
    User = get_user_model()
    g = {}
    g["general"] = r.res("genre create", Genre.objects.create(code="general", name="General"))
    g["fiction"] = r.res("genre save()", Genre(code="fiction", name="Fiction"))
    r.res("save() returns", g["fiction"].save())
    g["scifi"] = Genre.objects.create(code="scifi", name="Science fiction")
    pubs = {
        name: r.res("publisher create", Publisher.objects.create(name=name, country=country))
        for name, country in [("Penguin", "GB"), ("Tor", "US"), ("Gallimard", "FR")]
    }
    authors = {
        name: r.res("author create", Author.objects.create(name=name, email=email))
        for name, email in [
            ("Ursula K. Le Guin", "ursula@example.com"),
            ("Terry Pratchett", "terry@example.com"),
            ("Neil Gaiman", "neil@example.com"),
            ("Albert Camus", ""),
        ]
    }
    alice = r.res("create_user", User.objects.create_user("alice", "alice@example.com", "pw-1"))
    bob = r.res("create_user", User.objects.create_user("bob", "bob@example.com", "pw-2"))
    books = {}
    for slug, title, pub, genre, price, pages, published in [
        ("earthsea", "A Wizard of Earthsea", "Penguin", "fiction", "9.99", 183, (1968, 11, 1)),
        ("dispossessed", "The Dispossessed", "Tor", "scifi", "14.50", 387, (1974, 5, 1)),
        ("good-omens", "Good Omens", "Tor", "fiction", "12.00", 412, (1990, 5, 1)),
        ("stranger", "L'Étranger", "Gallimard", "fiction", "7.25", 159, (1942, 6, 1)),
        ("draft", "Untitled draft", "Penguin", "general", "0.00", 0, None),
    ]:
        books[slug] = r.res(
            "book create",
            Book.objects.create(
                slug=slug,
                title=title,
                publisher=pubs[pub],
                genre=g[genre],
                price=decimal.Decimal(price),
                pages=pages,
                published_on=datetime.date(*published) if published else None,
                metadata={"isbn": f"isbn-{slug}", "formats": ["paperback"], "nested": {"a": 1}},
            ),
        )
    return {"genres": g, "pubs": pubs, "authors": authors, "books": books, "users": [alice, bob]}


def _crud(r: Recorder, data: dict[str, Any]) -> None:
    r.section("crud")
    books = data["books"]
    book = r.res("get", Book.objects.get(slug="earthsea"))
    r.res("get == created", book == books["earthsea"])
    r.res("hash equal", hash(book) == hash(books["earthsea"]))
    book.title = "A Wizard of Earthsea (50th anniversary)"
    book.metadata["formats"].append("ebook")  # in-place change of a JSON value
    r.res("save() returns", book.save())
    r.res("after save", book)
    book.pages = F("pages") + 10
    r.res("save with F()", book.save(update_fields=["pages"]))
    r.res("field after F() save", type(book.__dict__.get("pages")).__name__)
    r.res("refresh_from_db returns", book.refresh_from_db())
    r.res("after refresh", book)
    book.price = decimal.Decimal("10.49")
    r.res("save(update_fields)", book.save(update_fields=["price"]))
    r.res("reloaded", Book.objects.get(pk=book.pk))
    r.res("save unchanged", book.save())
    r.attempt("get missing", lambda: Book.objects.get(slug="nope"))
    r.attempt("get multiple", lambda: Book.objects.get(genre="fiction"))
    r.attempt(
        "duplicate slug",
        lambda: Book.objects.create(
            slug="earthsea", title="x", publisher=data["pubs"]["Tor"], price=1
        ),
    )
    dup = Book(slug="earthsea", title="x", publisher=data["pubs"]["Tor"], price=1)
    r.attempt("full_clean", dup.full_clean)
    r.res("full_clean leaves", dup)
    r.attempt(
        "save force_update missing",
        lambda: Book(pk=99999, slug="z", title="z", publisher=data["pubs"]["Tor"], price=1).save(
            force_update=True
        ),
    )
    twin = Genre(code="fiction", name="Fiction again")
    r.res("save over existing pk", twin.save())
    r.res("overwritten", Genre.objects.get(code="fiction"))
    r.attempt(
        "force_insert existing pk", lambda: Genre(code="fiction", name="x").save(force_insert=True)
    )
    temp = Genre.objects.create(code="temp", name="Temporary")
    r.res("delete returns", temp.delete())
    r.res("deleted instance", temp)
    r.res("save again re-inserts", temp.save())
    r.res("exists again", Genre.objects.filter(code="temp").exists())
    r.res("queryset delete", Genre.objects.filter(code="temp").delete())


def _get_or_create(r: Recorder, data: dict[str, Any]) -> None:
    r.section("get_or_create")
    pubs = data["pubs"]
    r.res(
        "get_or_create new",
        Publisher.objects.get_or_create(name="Orbit", defaults={"country": "US"}),
    )
    r.res(
        "get_or_create existing",
        Publisher.objects.get_or_create(name="Orbit", defaults={"country": "XX"}),
    )
    r.res(
        "update_or_create existing",
        Book.objects.update_or_create(
            slug="draft", defaults={"title": "Still a draft", "pages": 3}
        ),
    )
    r.res(
        "update_or_create new",
        Book.objects.update_or_create(
            slug="mort",
            defaults={"title": "Mort"},
            create_defaults={
                "title": "Mort",
                "publisher": pubs["Tor"],
                "price": "8.99",
                "genre_id": "fiction",
                "pages": 272,
            },
        ),
    )
    r.res(
        "update_or_create unchanged",
        Book.objects.update_or_create(slug="mort", defaults={"title": "Mort"}),
    )
    r.res(
        "related get_or_create",
        pubs["Tor"].books.get_or_create(
            slug="small-gods", defaults={"title": "Small Gods", "price": "9.50"}
        ),
    )
    r.attempt(
        "get_or_create integrity",
        lambda: Book.objects.get_or_create(
            title="Other", defaults={"slug": "earthsea", "publisher": pubs["Tor"], "price": 1}
        ),
    )
    r.res("first/last", [Book.objects.first(), Book.objects.last()])
    r.res(
        "earliest/latest",
        [
            Book.objects.published().earliest("published_on"),
            Book.objects.published().latest("published_on"),
        ],
    )


def _queries(r: Recorder, data: dict[str, Any]) -> None:
    r.section("queries")
    pubs, authors, books = data["pubs"], data["authors"], data["books"]
    alice, bob = data["users"]
    for book, user, rating in [
        ("earthsea", alice, 5),
        ("earthsea", bob, 4),
        ("dispossessed", alice, 5),
        ("good-omens", bob, 3),
        ("good-omens", None, 2),
        ("stranger", alice, 4),
    ]:
        r.res(
            "review create",
            Review.objects.create(
                book=books[book], user=user, rating=rating, body=f"{book} by {user}"
            ),
        )
    r.res("filter", Book.objects.filter(price__lt=10))
    r.res("exclude", Book.objects.exclude(genre="fiction"))
    r.res("Q", Book.objects.filter(Q(pages__gt=300) | Q(publisher__name="Gallimard")))
    r.res(
        "F compare", Book.objects.filter(pages__gt=F("price") * 30).values_list("slug", flat=True)
    )
    r.res("custom queryset", Book.objects.published().cheaper_than(13))
    r.res("annotate", Book.objects.with_review_count().order_by("-review_count", "slug"))
    r.res(
        "annotate values",
        list(
            Book.objects.annotate(
                lower=Lower("title"),
                n=Count("reviews"),
                avg=Avg("reviews__rating"),
                pricey=Case(When(price__gte=10, then=Value(True)), default=Value(False)),
            )
            .values("slug", "lower", "n", "pricey")
            .order_by("slug")
        ),
    )
    r.res(
        "aggregate",
        Book.objects.aggregate(
            total=Sum("pages"), max_price=Max("price"), min_price=Min("price"), n=Count("id")
        ),
    )
    r.res("values", list(Book.objects.values("slug", "publisher__name", "metadata__isbn")))
    r.res("values_list", list(Review.objects.order_by("pk").values_list("book__slug", "rating")))
    r.res(
        "distinct",
        list(Review.objects.values_list("rating", flat=True).distinct().order_by("rating")),
    )
    r.res("order_by", Book.objects.order_by("-price", "slug").values_list("slug", "price"))
    r.res(
        "select_related",
        [(b, b.publisher, b.genre) for b in Book.objects.select_related("publisher", "genre")],
    )
    qs = Book.objects.prefetch_related(
        "authors", "tags", Prefetch("reviews", queryset=Review.objects.order_by("pk"))
    )
    r.res("prefetch_related", [(b, list(b.reviews.all())) for b in qs])
    r.res(
        "subquery",
        list(
            Publisher.objects.annotate(
                top=Subquery(
                    Book.objects.filter(publisher=OuterRef("pk"))
                    .order_by("-price")
                    .values("slug")[:1]
                ),
                has_reviews=Exists(Review.objects.filter(book__publisher=OuterRef("pk"))),
            )
            .order_by("name")
            .values("name", "top", "has_reviews")
        ),
    )
    r.res(
        "coalesce",
        list(
            Book.objects.annotate(
                when=Coalesce("published_on", Value(datetime.date(2000, 1, 1)))
            ).values_list("slug", "when")
        ),
    )
    r.res(
        "exists",
        [Book.objects.filter(slug="earthsea").exists(), Book.objects.filter(slug="x").exists()],
    )
    r.res("count", [Book.objects.count(), Review.objects.filter(rating__gte=4).count()])
    r.res("in_bulk", Book.objects.in_bulk([books["earthsea"].pk, books["stranger"].pk]))
    r.res("in_bulk field", Book.objects.in_bulk(["earthsea"], field_name="slug"))
    r.res("iterator", list(Book.objects.iterator(chunk_size=2)))
    r.res("slicing", Book.objects.all()[1:3])
    r.res("dates", list(Book.objects.dates("published_on", "year")))
    r.res(
        "json lookups",
        Book.objects.filter(metadata__formats__contains="ebook").values_list("slug", flat=True)
        if connection.features.supports_json_field_contains
        else "unsupported",
    )
    r.res("json key", Book.objects.filter(metadata__nested__a=1).count())
    r.res("raw", list(Book.objects.raw("SELECT id, slug, title FROM bookshop_book ORDER BY slug")))
    r.res("none", list(Book.objects.none()))
    r.res(
        "union",
        list(
            Book.objects.filter(price__lt=8)
            .order_by()
            .values_list("slug", flat=True)
            .union(Book.objects.filter(price__gt=14).order_by().values_list("slug", flat=True))
            .order_by("slug")
        ),
    )
    r.res("users", get_user_model().objects.order_by("username"))
    r.res("custom manager", Author.active_objects.all())
    r.res("natural key", Book.objects.get_by_natural_key("stranger"))
    with transaction.atomic():
        r.res("select_for_update", list(Book.objects.select_for_update().filter(slug="earthsea")))
    r.res("reverse FK", list(pubs["Tor"].books.all()))
    r.res("reverse FK filter", list(authors["Neil Gaiman"].books.all()))


def _related(r: Recorder, data: dict[str, Any]) -> None:
    r.section("related")
    authors, books = data["authors"], data["books"]
    ursula, terry, neil, camus = (
        authors[n] for n in ("Ursula K. Le Guin", "Terry Pratchett", "Neil Gaiman", "Albert Camus")
    )
    earthsea, dispossessed, omens, stranger = (
        books[s] for s in ("earthsea", "dispossessed", "good-omens", "stranger")
    )
    r.res("through add", earthsea.authors.add(ursula))
    r.res(
        "through add defaults",
        omens.authors.add(terry, neil, through_defaults={"role": "co-author"}),
    )
    r.res(
        "through create",
        dispossessed.authors.create(name="Anon", through_defaults={"role": "ghost"}),
    )
    r.res(
        "through rows",
        list(Authorship.objects.order_by("pk").values_list("book__slug", "author__name", "role")),
    )
    r.res("reverse add", camus.books.add(stranger, through_defaults={"role": "author"}))
    r.res("reverse accessor", list(terry.books.all()))
    r.res("set", omens.authors.set([terry], through_defaults={"role": "author"}))
    r.res("after set", list(omens.authors.all()))
    r.res("set again", omens.authors.set([terry, neil], through_defaults={"role": "editor"}))
    r.res("remove", omens.authors.remove(neil))
    r.res("remove absent", omens.authors.remove(camus))
    r.res("add existing", omens.authors.add(terry))
    r.res(
        "through direct create", Authorship.objects.create(book=omens, author=neil, role="foreword")
    )
    r.res(
        "roles",
        list(omens.authorship_set.order_by("author__name").values_list("author__name", "role")),
    )
    r.res("clear", dispossessed.authors.clear())
    r.res("cleared", dispossessed.authors.count())
    r.res("symmetrical add", earthsea.related.add(dispossessed, stranger))
    r.res("symmetrical reverse", list(dispossessed.related.all()))
    r.res("symmetrical remove", stranger.related.remove(earthsea))
    r.res("symmetrical left", list(earthsea.related.values_list("slug", flat=True)))
    central = r.res("store create", Store.objects.create(name="Central"))
    airport = r.res("store create", Store.objects.create(name="Airport"))
    r.res("auto m2m add", central.books.add(earthsea, omens, stranger.pk))
    r.res("auto m2m reverse add", dispossessed.stores.add(central, airport))
    r.res("auto m2m set", airport.books.set([omens, dispossessed]))
    r.res("auto m2m remove", central.books.remove(stranger))
    r.res("reverse clear", omens.stores.clear())
    r.res(
        "stores",
        [(s, list(s.books.values_list("slug", flat=True))) for s in Store.objects.order_by("pk")],
    )
    r.res(
        "related create",
        data["pubs"]["Gallimard"].books.create(slug="la-peste", title="La Peste", price="8.00"),
    )
    r.res("fk assign", setattr(stranger, "publisher", data["pubs"]["Penguin"]))
    r.res("fk save", stranger.save())
    r.res("fk cache", stranger.publisher)
    r.res("generic create", earthsea.tags.create(tag="classic"))
    tag = TaggedItem(tag="french", content_object=stranger)
    r.res("generic fk save", tag.save())
    r.res("generic fk get", TaggedItem.objects.get(tag="french").content_object)
    r.res("generic relation filter", list(Book.objects.filter(tags__tag="classic")))
    r.res("generic relation query name", list(TaggedItem.objects.filter(book__slug="stranger")))
    r.res("award", Award.objects.create(name="Hugo", author=ursula, book=dispossessed))
    r.res("award 2", Award.objects.create(name="Nobel", author=camus, book=stranger))
    r.res("reverse one-to-one missing", hasattr(earthsea, "stat"))


def _inheritance(r: Recorder, data: dict[str, Any]) -> None:
    r.section("inheritance")
    pubs = data["pubs"]
    ebook = r.res(
        "mti create",
        EBook.objects.create(
            slug="neverwhere-e",
            title="Neverwhere",
            publisher=pubs["Tor"],
            price="4.99",
            genre_id="fiction",
            file_format="mobi",
            metadata={"drm": "none"},
        ),
    )
    r.res("mti parent row", Book.objects.get(pk=ebook.pk))
    r.res("mti child access", Book.objects.get(pk=ebook.pk).ebook)
    ebook.drm = True
    ebook.title = "Neverwhere (ebook)"
    r.res("mti save", ebook.save())
    r.res("mti reload", EBook.objects.get(pk=ebook.pk))
    r.res("mti only child", EBook.objects.only("file_format").get(pk=ebook.pk))
    r.res("mti queryset", list(EBook.objects.filter(title__startswith="Never")))
    r.res("proxy manager", list(BargainBook.objects.all()))
    cheap = BargainBook.objects.get(slug="stranger")
    r.res("proxy str", str(cheap))
    r.res("proxy == concrete", cheap == Book.objects.get(slug="stranger"))
    cheap.price = decimal.Decimal("6.99")
    r.res("proxy save", cheap.save())
    r.res(
        "proxy create",
        BargainBook.objects.create(
            slug="cheap", title="Cheap", publisher=pubs["Tor"], price="1.00"
        ),
    )
    r.res("proxy delete", BargainBook.objects.get(slug="cheap").delete())
    r.res(
        "mti delete",
        EBook.objects.create(
            slug="gone-e", title="Gone", publisher=pubs["Tor"], price="1.00"
        ).delete(),
    )


def _deferred(r: Recorder, data: dict[str, Any]) -> None:
    r.section("deferred")
    only = r.res("only", Book.objects.only("title").get(slug="good-omens"))
    r.res("deferred fields", sorted(only.get_deferred_fields()))
    r.res("deferred access", only.price)
    r.res("after deferred access", only)
    only.title = "Good Omens (TV tie-in)"
    r.res("deferred save", only.save())
    r.res("reloaded", Book.objects.get(slug="good-omens"))
    deferred = r.res("defer", Book.objects.defer("metadata", "price").get(slug="dispossessed"))
    deferred.price = decimal.Decimal("15.00")  # set without loading it
    r.res("defer save", deferred.save())
    r.res("defer refresh some", deferred.refresh_from_db(fields=["price"]))
    r.res("after partial refresh", deferred)
    r.res("deferred metadata", deferred.metadata)
    r.res("only values", list(Book.objects.only("slug").values_list("slug", flat=True)))
    fresh = Book.objects.get(slug="stranger")
    Book.objects.filter(slug="stranger").update(pages=160)
    r.res("stale", fresh.pages)
    r.res(
        "refresh from_queryset",
        fresh.refresh_from_db(from_queryset=Book.objects.select_related("publisher")),
    )
    r.res("refreshed", fresh)
    # __str__ reads a deferred field (title): saving must not load it.
    slim = r.res("only slug", Book.objects.only("slug", "pages").get(slug="stranger"))
    slim.pages = 161
    r.res("save with __str__ field deferred", slim.save())
    r.res("still deferred", sorted(slim.get_deferred_fields()))
    r.res(
        "delete with __str__ field deferred", Book.objects.only("slug").get(slug="draft").delete()
    )
    # Django 6.1 fetch modes: peers loaded in one query, or loading refused.
    peers = list(Book.objects.fetch_mode(models.FETCH_PEERS).only("slug").order_by("slug"))
    r.res("peers price", [b.price for b in peers])
    r.res("peers after", peers)
    peers[0].price += 1
    r.res("peer save", peers[0].save())
    strict = Book.objects.fetch_mode(models.FETCH_RAISE).only("slug", "pages").get(slug="mort")
    strict.pages += 1
    r.attempt("fetch_raise save", strict.save)
    r.attempt("fetch_raise access", lambda: strict.title)
    r.res("fetch_raise after", strict)
    Book.objects.create(slug="raise-me", title="Raise me", publisher_id=1, price=1)
    doomed = Book.objects.fetch_mode(models.FETCH_RAISE).only("slug").get(slug="raise-me")
    r.attempt("fetch_raise delete", doomed.delete)


def _copies(r: Recorder, data: dict[str, Any]) -> None:
    r.section("copies")
    book = Book.objects.select_related("publisher").get(slug="earthsea")
    for name, clone in [
        ("copy", copy.copy(book)),
        ("deepcopy", copy.deepcopy(book)),
        ("pickle", pickle.loads(pickle.dumps(book))),
    ]:
        r.res(f"{name}", clone)
        r.res(f"{name} equal", [clone == book, hash(clone) == hash(book)])
        clone.pages = 200 + len(name)
        r.res(f"{name} save", clone.save())
        r.res(f"{name} original untouched", book.pages)
    r.res("reloaded", Book.objects.get(slug="earthsea").pages)
    book.save()  # the original, with its own stale pages value
    r.res("original save wins", Book.objects.get(slug="earthsea").pages)
    qs = pickle.loads(pickle.dumps(Book.objects.filter(price__lt=10)))
    r.res("pickled queryset", qs)
    new = Book(slug="x", title="x", price=1)
    r.attempt("hash unsaved", lambda: hash(new))
    r.res("unsaved equality", [new == Book(slug="x"), new == new])
    clone = copy.copy(Book.objects.get(slug="mort"))
    clone.pk = None
    clone.id = None
    clone._state.adding = True
    clone.slug = "mort-2"
    clone.public_id = uuid.UUID(int=7)  # the documented way to copy an instance
    r.res("clone via pk=None", clone.save())
    r.res("cloned", clone)


def _transactions(r: Recorder, data: dict[str, Any]) -> None:
    r.section("transactions")
    with transaction.atomic():
        one = Publisher.objects.create(name="Tx One")
        try:
            with transaction.atomic():
                two = Publisher.objects.create(name="Tx Two")
                two.country = "DE"
                two.save()
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        sid = transaction.savepoint()
        three = Publisher.objects.create(name="Tx Three")
        transaction.savepoint_rollback(sid)
        r.res(
            "inside",
            list(Publisher.objects.filter(name__startswith="Tx").values_list("name", flat=True)),
        )
    r.res(
        "committed",
        list(
            Publisher.objects.filter(name__startswith="Tx")
            .order_by("name")
            .values_list("name", flat=True)
        ),
    )
    r.res("instances after rollback", [one, two, three])
    try:
        with transaction.atomic():
            Publisher.objects.create(name="Tx Four")
            Publisher.objects.create(name="Tx One")
    except IntegrityError as exc:
        r.res("integrity", type(exc).__name__)
    r.res("rolled back", Publisher.objects.filter(name="Tx Four").exists())
    calls = []
    with transaction.atomic():
        transaction.on_commit(lambda: calls.append("first"))
        Publisher.objects.filter(name="Tx One").update(country="IT")
        transaction.on_commit(lambda: calls.append("second"))
        calls.append("body")
    r.res("on_commit order", calls)
    r.res("autocommit", transaction.get_autocommit())
    r.res("in atomic block", connection.in_atomic_block)
    r.res("needs rollback", connection.needs_rollback)


def _serialization(r: Recorder, data: dict[str, Any]) -> None:
    r.section("serialization")
    text = serializers.serialize("json", Genre.objects.order_by("code"))
    r.res("serialize", json.loads(text))
    r.res(
        "natural keys",
        json.loads(
            serializers.serialize(
                "json", Authorship.objects.order_by("pk"), use_natural_foreign_keys=True
            )
        ),
    )
    loaded = json.loads(text)
    loaded[0]["fields"]["name"] = "General (loaded)"
    loaded.append({"model": "bookshop.genre", "pk": "poetry", "fields": {"name": "Poetry"}})
    for obj in serializers.deserialize("json", json.dumps(loaded)):
        r.res("loaddata save", obj.save())
    r.res("loaded", Genre.objects.order_by("code"))


def _async(r: Recorder, data: dict[str, Any]) -> None:
    r.section("async")

    async def work() -> list[Any]:
        out = []
        genre = await Genre.objects.aget(code="scifi")
        out.append(genre)
        genre.name = "SF"
        out.append(await genre.asave())
        out.append(await Genre.objects.acreate(code="async", name="Async"))
        out.append([g async for g in Genre.objects.filter(code__in=["async", "scifi"])])
        out.append(await Genre.objects.filter(code="async").aupdate(name="Async 2"))
        created = await Genre.objects.aget_or_create(code="async", defaults={"name": "x"})
        out.append(created)
        out.append(await created[0].adelete())
        out.append(await Genre.objects.acount())
        return out

    r.res("async results", async_to_sync(work)())


def _auth(r: Recorder, data: dict[str, Any]) -> None:
    r.section("auth")
    alice, bob = data["users"]
    editors = r.res("group", Group.objects.create(name="editors"))
    perm = Permission.objects.get(codename="change_book", content_type__app_label="bookshop")
    r.res("perm add", editors.permissions.add(perm))
    r.res("user groups", alice.groups.add(editors))
    r.res("user perms", bob.user_permissions.add(perm))
    r.res(
        "has_perm",
        [
            get_user_model().objects.get(pk=alice.pk).has_perm("bookshop.change_book"),
            get_user_model().objects.get(pk=bob.pk).has_perm("bookshop.change_book"),
        ],
    )
    alice.set_password("pw-new")
    r.res("set_password save", alice.save())
    r.res("check_password", alice.check_password("pw-new"))
    r.res("authenticate ok", authenticate(username="alice", password="pw-new") == alice)
    r.res("authenticate bad", authenticate(username="alice", password="wrong"))
    r.res("deactivate", get_user_model().objects.filter(pk=bob.pk).update(is_active=False))


def _bulk(r: Recorder, data: dict[str, Any]) -> None:
    r.section("bulk")
    pubs = data["pubs"]
    made = Book.objects.bulk_create(
        [
            Book(
                slug=f"bulk-{i}",
                title=f"Bulk {i}",
                publisher=pubs["Tor"],
                price=decimal.Decimal(i),
                genre_id="scifi",
                public_id=uuid.UUID(int=100 + i),
            )
            for i in range(1, 5)
        ]
    )
    r.res("bulk_create", made)
    r.res("bulk_create pks", [b.pk is not None for b in made])
    for b in made:
        b.pages = b.price * 100
        b.in_print = False
    r.res("bulk_update", Book.objects.bulk_update(made, ["pages", "in_print"], batch_size=3))
    r.res("after bulk_update", Book.objects.filter(slug__startswith="bulk-"))
    r.res(
        "bulk_create ignore",
        len(
            Genre.objects.bulk_create(
                [Genre(code="general", name="dup"), Genre(code="bulk", name="Bulk")],
                ignore_conflicts=True,
            )
        ),
    )
    if (
        connection.features.supports_update_conflicts_with_target
        or connection.features.supports_update_conflicts
    ):
        target = ["code"] if connection.features.supports_update_conflicts_with_target else None
        r.res(
            "bulk_create upsert",
            len(
                Genre.objects.bulk_create(
                    [Genre(code="bulk", name="Bulk 2")],
                    update_conflicts=True,
                    unique_fields=target,
                    update_fields=["name"],
                )
            ),
        )
    r.res("genres", Genre.objects.order_by("code"))
    r.res("update", Book.objects.filter(slug__startswith="bulk-").update(price=F("price") + 1))
    r.res("update none", Book.objects.filter(slug="nope").update(price=1))
    r.res(
        "update related filter", Review.objects.filter(book__slug="earthsea").update(body="edited")
    )
    r.res(
        "after update", Book.objects.filter(slug__startswith="bulk-").values_list("slug", "price")
    )
    # The awkward corners of the bulk paths.
    r.res(
        "update through a multi-valued join",
        Book.objects.filter(authors__name__in=["Terry Pratchett", "Neil Gaiman"]).update(
            in_print=True
        ),
    )
    r.res(
        "update filtered on an aggregate",
        Book.objects.annotate(n=Count("reviews")).filter(n__gte=2).update(pages=F("pages") + 1),
    )
    r.res(
        "update with Case",
        Book.objects.filter(slug__startswith="bulk-").update(
            in_print=Case(When(price__gt=3, then=Value(True)), default=Value(False))
        ),
    )
    r.res("update parent and child fields", EBook.objects.update(title="Renamed", drm=False))
    r.res(
        "update values() queryset", Book.objects.values("slug").filter(slug="mort").update(pages=1)
    )
    r.res(
        "update FK by instance",
        Review.objects.filter(rating=2).update(book=data["books"]["stranger"]),
    )
    r.attempt("update sliced", lambda: Book.objects.all()[:2].update(pages=0))
    r.attempt("delete sliced", lambda: Book.objects.all()[:2].delete())
    r.attempt("delete distinct fields", lambda: Book.objects.distinct("slug").delete())
    r.attempt("update nothing", lambda: Book.objects.update())
    r.attempt(
        "bulk_create MTI",
        lambda: EBook.objects.bulk_create(
            [EBook(slug="b-e", title="x", publisher=pubs["Tor"], price=1)]
        ),
    )
    r.attempt("bulk_update pk", lambda: Book.objects.bulk_update(made, ["id"]))
    r.attempt("bulk_update empty", lambda: Book.objects.bulk_update([], ["pages"]))
    r.attempt("bulk_update no fields", lambda: Book.objects.bulk_update(made, []))
    r.attempt("bulk_update unsaved", lambda: Book.objects.bulk_update([Book(slug="u")], ["pages"]))
    r.res(
        "bulk_create proxy",
        BargainBook.objects.bulk_create(
            [
                BargainBook(
                    slug="proxy-bulk",
                    title="P",
                    publisher=pubs["Tor"],
                    price=2,
                    public_id=uuid.UUID(int=99),
                )
            ]
        ),
    )
    r.res("bulk_create empty", Book.objects.bulk_create([]))
    r.res(
        "bulk_create generator",
        len(Genre.objects.bulk_create(Genre(code=f"gen-{i}", name=str(i)) for i in range(2))),
    )
    r.res(
        "after edges",
        list(Book.objects.order_by("slug").values_list("slug", "pages", "in_print", "title")),
    )


def _deletes(r: Recorder, names: dict[str, Any], tag: str) -> None:
    """Deletes of every on_delete kind; run with and without receivers."""
    restricted = names["restricted"]
    r.attempt(f"{tag} protect", lambda: Publisher.objects.get(name=names["publisher"]).delete())
    r.attempt(f"{tag} restrict", lambda: Book.objects.get(slug=restricted).delete())
    r.attempt(
        f"{tag} restrict qs",
        lambda: Book.objects.filter(slug__in=[restricted, names["other"]]).delete(),
    )
    r.res(f"{tag} set_default", Genre.objects.filter(code="scifi").delete())
    r.res(f"{tag} defaulted", Book.objects.filter(genre="general").values_list("slug", flat=True))
    r.res(f"{tag} set_null", get_user_model().objects.filter(username="bob").delete())
    r.res(
        f"{tag} nulled",
        Review.objects.filter(user__isnull=True).order_by("pk").values_list("pk", flat=True),
    )
    r.res(f"{tag} cascade restrict ok", Author.objects.filter(name=names["author"]).delete())
    r.res(f"{tag} now deletable", Book.objects.get(slug=restricted).delete())
    r.res(f"{tag} cascade everything", Book.objects.filter(slug__in=names["cascade"]).delete())
    r.res(f"{tag} mti qs delete", EBook.objects.all().delete())
    r.res(f"{tag} m2m qs delete", Store.objects.filter(name="Airport").delete())
    r.res(f"{tag} generic cascade", TaggedItem.objects.count())
    r.res(f"{tag} empty delete", Book.objects.filter(slug="nope").delete())
    r.res(f"{tag} plain qs delete", Review.objects.all().delete())
    r.res(
        f"{tag} left",
        {
            "books": list(Book.objects.values_list("slug", flat=True)),
            "authors": list(Author.objects.values_list("name", flat=True)),
            "authorships": Authorship.objects.count(),
            "awards": list(Award.objects.order_by("name").values_list("name", flat=True)),
            "stores": list(Store.objects.order_by("name").values_list("name", flat=True)),
            "publishers": list(Publisher.objects.order_by("name").values_list("name", flat=True)),
            "stats": ReviewStat.objects.count(),
        },
    )


def _deletes_with_receivers(r: Recorder, data: dict[str, Any]) -> None:
    r.section("deletes")
    names = {
        "publisher": "Gallimard",
        "restricted": "dispossessed",
        "other": "stranger",
        "author": "Ursula K. Le Guin",
        "cascade": ["earthsea", "good-omens"],
    }
    _deletes(r, names, "signals")


def _deletes_quiet(r: Recorder, data: dict[str, Any]) -> None:
    """The same deletes and m2m changes with no user receiver connected.

    Without receivers Django takes fast paths (fast delete, m2m without
    signals) that a tracked model no longer takes: results must not differ.
    """
    r.section("quiet")
    r.disconnect()
    _setup_quiet()
    names = {
        "publisher": "Quiet press",
        "restricted": "q-1",
        "other": "q-2",
        "author": "Quiet author",
        "cascade": ["q-0", "q-2"],
    }
    _deletes(r, names, "quiet")
    store = Store.objects.create(name="Quiet")
    r.res("quiet m2m add", store.books.add(*Book.objects.all()))
    r.res("quiet m2m count", store.books.count())
    r.res("quiet m2m clear", store.books.clear())
    r.res(
        "quiet bulk",
        len(Publisher.objects.bulk_create([Publisher(name=f"Q{i}") for i in range(3)])),
    )
    r.res("quiet update", Publisher.objects.filter(name__startswith="Q").update(country="NL"))
    r.res("quiet delete", Publisher.objects.filter(name__startswith="Q").delete())


def _setup_quiet() -> None:
    """Rebuild a comparable graph to delete (the first one is gone)."""
    User = get_user_model()
    pub = Publisher.objects.create(name="Quiet press")
    scifi = Genre.objects.get_or_create(code="scifi", defaults={"name": "SF"})[0]
    author = Author.objects.create(name="Quiet author")
    bob = User.objects.create_user("bob", "b@example.com", "pw")
    books = [
        Book.objects.create(slug=f"q-{i}", title=f"Q{i}", publisher=pub, price=i, genre=scifi)
        for i in range(3)
    ]
    EBook.objects.create(slug="q-e", title="QE", publisher=pub, price=1)
    books[0].authors.add(author)
    Award.objects.create(name="Q award", author=author, book=books[1])
    Review.objects.create(book=books[0], user=bob, rating=1)
    books[0].tags.create(tag="q")
    Store.objects.create(name="Airport").books.add(*books)
    ReviewStat.objects.create(book=books[2])


# --------------------------------------------------------------------------
# Autocommit: what receivers see about the transaction around a save
# --------------------------------------------------------------------------


def _autocommit(r: Recorder, data: dict[str, Any]) -> None:
    """Receivers that depend on a plain save running in autocommit mode.

    Outside any atomic block Django commits a plain save before post_save
    is sent: a receiver's own queries are their own transactions, its
    on_commit callbacks run at once, and an exception it raises leaves the
    row saved. These are the patterns that notice if that changes.
    """
    r.section("autocommit")
    seen: list[Any] = []

    def first(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(["post_save", instance.name, connection.in_atomic_block])
        transaction.on_commit(lambda: seen.append(["on_commit", instance.name]))

    def second(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(["second receiver", instance.name])
        if instance.name == "boom":
            raise ValueError("receiver failed")

    def keep_stats(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
        # "Insert, or update if it exists", the autocommit way.
        if not created:
            return
        try:
            ReviewStat.objects.create(book_id=instance.book_id, reviews=1)
        except IntegrityError:
            ReviewStat.objects.filter(book_id=instance.book_id).update(reviews=F("reviews") + 1)

    post_save.connect(first, sender=Genre, weak=False, dispatch_uid="workload:ac:1")
    post_save.connect(second, sender=Genre, weak=False, dispatch_uid="workload:ac:2")
    post_save.connect(keep_stats, sender=Review, weak=False, dispatch_uid="workload:ac:3")
    try:
        r.res("save", Genre.objects.create(code="ac", name="ac"))
        seen.append(["save returned"])
        r.res("order", seen)
        r.attempt("receiver raises", lambda: Genre.objects.create(code="boom", name="boom"))
        r.res("row after receiver raised", Genre.objects.filter(code="boom").exists())
        book = Book.objects.order_by("pk").first()
        for i in range(3):
            r.attempt(f"review {i}", lambda i=i: Review.objects.create(book=book, rating=i + 1))
        r.res("reviews saved", Review.objects.filter(book=book).count())
        r.res("stat", list(ReviewStat.objects.filter(book=book).values_list("reviews", flat=True)))
    finally:
        post_save.disconnect(sender=Genre, dispatch_uid="workload:ac:1")
        post_save.disconnect(sender=Genre, dispatch_uid="workload:ac:2")
        post_save.disconnect(sender=Review, dispatch_uid="workload:ac:3")


def _autocommit_early(r: Recorder, data: dict[str, Any]) -> None:
    """The same, for a receiver connected before the trail's (see receivers.py)."""
    r.section("autocommit_early")
    seen: list[Any] = []
    EARLY["log"] = seen
    try:
        r.res("save", Publisher.objects.create(name="early"))
        seen.append(["save returned"])
        r.attempt("receiver raises", lambda: Publisher.objects.create(name="early boom"))
        r.res("row after receiver raised", Publisher.objects.filter(name="early boom").exists())
        r.attempt("receiver catches", lambda: Publisher.objects.create(name="early upsert"))
        r.res("row after receiver caught", Publisher.objects.filter(name="early upsert").exists())
        r.res("log", seen)
    finally:
        EARLY["log"] = None


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

#: The sections compared by test_orm_invariance (besides the autocommit ones).
SECTIONS = [
    "setup",
    "crud",
    "get_or_create",
    "queries",
    "related",
    "inheritance",
    "deferred",
    "copies",
    "transactions",
    "serialization",
    "async",
    "auth",
    "bulk",
    "deletes",
    "quiet",
]


def run() -> dict[str, Any]:
    """Run the workload on the default database; return what was observed."""
    r = Recorder()
    r.connect()
    try:
        r.section("setup")
        data = _setup(r)
        _crud(r, data)
        _get_or_create(r, data)
        _queries(r, data)
        _related(r, data)
        _inheritance(r, data)
        _deferred(r, data)
        _copies(r, data)
        _transactions(r, data)
        _serialization(r, data)
        _async(r, data)
        _auth(r, data)
        _bulk(r, data)
        _deletes_with_receivers(r, data)
        _deletes_quiet(r, data)  # disconnects the receivers
        _autocommit(r, data)
        _autocommit_early(r, data)
    finally:
        r.disconnect()
    return {
        "sections": r.sections,
        "trail_signals": r.trail_signals,
        "content_type_loads": r.content_type_loads,
    }


def summary() -> dict[str, Any]:
    """What the trail recorded, to prove the tracked run wasn't vacuous."""
    from signaltrail.models import Event

    by_model: dict[str, int] = {}
    for app_label, model, n in (
        Event.objects.values_list("content_type__app_label", "content_type__model")
        .order_by()
        .annotate(n=Count("id"))
        .values_list("content_type__app_label", "content_type__model", "n")
    ):
        key = f"{app_label}.{model}" if app_label else "-"
        by_model[key] = by_model.get(key, 0) + n
    histories = {}
    for label, obj in [
        ("genre:poetry", Genre(code="poetry")),
        ("genre:ac", Genre(code="ac")),
        ("store:central", Store.objects.filter(name="Central").first()),
    ]:
        if obj is None:
            continue
        histories[label] = [
            [action, changes]
            for action, changes in Event.objects.for_object(obj)
            .order_by("id")
            .values_list("action", "changes")
        ]
    return {"total": Event.objects.count(), "by_model": by_model, "histories": histories}
