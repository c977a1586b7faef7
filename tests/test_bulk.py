"""Bulk paths are not holes: update(), bulk_create(), bulk_update(), QuerySet.delete()."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F, Max, Value
from django.db.models.functions import Concat, Upper
from django.db.models.query import QuerySet
from django.test.utils import CaptureQueriesContext

import signaltrail
from signaltrail.models import Event
from signaltrail.signals import (
    event_recorded,
    post_bulk_create,
    post_bulk_update,
    pre_bulk_update,
)
from tests.test_held import verified
from tests.testapp.models import Article, Category, Code, Note, Product, Tag

pytestmark = pytest.mark.django_db


def events(action=None, model=None):
    qs = Event.objects.order_by("id")
    if action:
        qs = qs.filter(action=action)
    if model:
        qs = qs.for_model(model)
    return list(qs)


def make_products(n, category=None, **extra):
    category = category or Category.objects.create(name="Tools")
    return Product.objects.bulk_create(
        [
            Product(name=f"p{i}", price=Decimal(i), stock=i, category=category, **extra)
            for i in range(n)
        ]
    )


def by_pk(evs):
    return {e.object_pk: e.changes for e in evs}


class TestUpdate:
    def test_one_event_per_row_with_old_and_new(self):
        products = make_products(3)
        Event.objects.none()
        count = Product.objects.filter(stock__gte=1).update(description="new")
        assert count == 2
        changed = by_pk(events("update", Product))
        assert changed == {
            str(products[1].pk): {"description": ["", "new"]},
            str(products[2].pk): {"description": ["", "new"]},
        }

    def test_f_expression_records_the_value_written(self):
        products = make_products(3)
        Product.objects.update(stock=F("stock") * 10 + 1)
        changed = by_pk(events("update", Product))
        assert changed == {str(p.pk): {"stock": [p.stock, p.stock * 10 + 1]} for p in products}

    def test_distinct_and_grouped_querysets(self):
        """Their rows are read by pk: a DISTINCT or GROUP BY query can't lock them."""
        products = make_products(3)
        Product.objects.filter(stock__gte=1).distinct().update(stock=F("stock") + 1)
        grouped = Product.objects.annotate(most=Max("stock")).filter(most__gte=3)
        assert grouped.update(description="most") == 1
        assert [(e.object_pk, e.changes) for e in events("update", Product)] == [
            (str(products[1].pk), {"stock": [1, 2]}),
            (str(products[2].pk), {"stock": [2, 3]}),
            (str(products[2].pk), {"description": ["", "most"]}),
        ]

    def test_plain_values_are_recorded_as_given_and_with_an_expression_as_stored(self):
        """As a save records them; the same on every database."""
        products = make_products(2)
        Product.objects.update(price=Decimal("2.5"), data={"k": [1]})
        Product.objects.update(price=Decimal("3.5"), stock=F("stock") + 1)
        assert [(e.object_pk, e.changes) for e in events("update", Product)] == [
            (str(products[0].pk), {"price": ["0.00", "2.5"], "data": [{}, {"k": [1]}]}),
            (str(products[1].pk), {"price": ["1.00", "2.5"], "data": [{}, {"k": [1]}]}),
            (str(products[0].pk), {"price": ["2.50", "3.50"], "stock": [0, 1]}),
            (str(products[1].pk), {"price": ["2.50", "3.50"], "stock": [1, 2]}),
        ]

    def test_other_expression(self):
        products = make_products(1)
        Product.objects.update(name=Concat(F("name"), Value("!")))
        assert by_pk(events("update", Product)) == {str(products[0].pk): {"name": ["p0", "p0!"]}}

    def test_unchanged_rows_record_nothing(self):
        make_products(3)
        Product.objects.update(description="")
        assert events("update", Product) == []

    def test_related_manager(self):
        tools = Category.objects.create(name="Tools")
        garden = Category.objects.create(name="Garden")
        mine = make_products(2, category=tools)
        make_products(2, category=garden)
        tools.products.update(stock=7)
        assert set(by_pk(events("update", Product))) == {str(p.pk) for p in mine}

    def test_custom_manager_and_queryset(self):
        article = Article.objects.create(title="a")
        hidden = Article.everything.create(title="b", active=False)
        Article.objects.update(title="c")
        Article.everything.filter(pk=hidden.pk).update(title="d")
        assert by_pk(events("update", Article)) == {
            str(article.pk): {"title": ["a", "c"]},
            str(hidden.pk): {"title": ["b", "d"]},
        }

    def test_foreign_key_by_instance(self):
        products = make_products(1)
        other = Category.objects.create(name="Other")
        Product.objects.update(category=other)
        assert by_pk(events("update", Product)) == {
            str(products[0].pk): {"category": [products[0].category_id, other.pk]}
        }

    def test_excluded_field_only_records_nothing(self):
        make_products(2)
        Product.objects.update(updated_at=F("updated_at"))
        assert events("update", Product) == []

    def test_return_value_is_djangos(self):
        make_products(4)
        assert Product.objects.filter(stock__lt=2).update(stock=100) == 2
        assert Product.objects.filter(name="nothing").update(stock=1) == 0

    def test_batches_cover_every_row(self, settings):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 4}
        products = make_products(11)
        pres, posts = [], []

        def on_pre(sender, pks, fields, using, **kwargs):
            pres.append(list(pks))

        def on_post(sender, pks, fields, using, **kwargs):
            posts.append(list(pks))

        pre_bulk_update.connect(on_pre, sender=Product)
        post_bulk_update.connect(on_post, sender=Product)
        try:
            assert Product.objects.update(stock=F("stock") + 1) == 11
        finally:
            pre_bulk_update.disconnect(on_pre, sender=Product)
            post_bulk_update.disconnect(on_post, sender=Product)
        assert len(events("update", Product)) == 11
        assert [len(b) for b in pres] == [4, 4, 3]
        assert sorted(pk for b in posts for pk in b) == sorted(p.pk for p in products)

    def test_rolled_back_update_leaves_no_event(self):
        make_products(3)
        with pytest.raises(RuntimeError), transaction.atomic():
            Product.objects.update(stock=99)
            raise RuntimeError
        assert events("update", Product) == []
        assert not Product.objects.filter(stock=99).exists()

    def test_context_and_actor(self, django_user_model):
        user = django_user_model.objects.create(username="ann")
        make_products(2)
        with signaltrail.context(actor=user, reason="repricing"):
            Product.objects.update(price=1)
        for event in events("update", Product):
            assert event.actor == user
            assert event.context["reason"] == "repricing"

    def test_paused(self):
        make_products(3)
        with signaltrail.paused(reason="migration"):
            Product.objects.update(stock=5)
        assert events("update", Product) == []
        (paused,) = events("trail_paused")
        assert paused.changes == {"skipped": {"testapp.Product": 3}}

    @pytest.mark.parametrize("n", [5, 500])
    def test_constant_queries(self, n):
        make_products(n)
        with CaptureQueriesContext(connection) as ctx:
            Product.objects.update(stock=F("stock") + 1)
        # SELECT old values, UPDATE ... RETURNING the values written (where the
        # database can't return them, MariaDB: UPDATE, then SELECT them), INSERT
        # events: the same for 5 rows and for 500. On PostgreSQL the SELECT and
        # the UPDATE are one statement. No SELECT of the newest hash:
        # make_products() wrote events in this transaction.
        expected = 3 if connection.features.can_return_rows_from_update else 4
        if connection.vendor == "postgresql":
            expected = 2
        assert len(ctx.captured_queries) == expected, [q["sql"] for q in ctx.captured_queries]
        assert len(events("update", Product)) == n

    def test_a_join_across_batches_records_each_row_once(self, settings):
        """Each batch's ``pk IN (subquery)`` starts after the last batch: every
        matching row still gets exactly one event, with its own old value."""
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 3}
        garden, tools = Tag.objects.create(name="garden"), Tag.objects.create(name="tools")
        products = make_products(8)
        for product in products[:7]:
            product.tags.add(garden, tools)
        matched = Product.objects.filter(tags__name__in=["garden", "tools"])
        assert matched.update(stock=F("stock") * 10 + 1) == 7
        assert by_pk(events("update", Product)) == {
            str(p.pk): {"stock": [p.stock, p.stock * 10 + 1]} for p in products[:7]
        }
        assert verified()

    def test_one_table_is_paged_with_its_own_filter(self):
        """No ``pk IN (SELECT ...)`` over the whole table for every batch when
        the filter reads one table: each batch's SELECT is the filter, after
        the last pk."""
        make_products(4)
        with CaptureQueriesContext(connection) as ctx:
            assert Product.objects.filter(stock__gte=1).update(stock=F("stock") + 1) == 3
        # (MariaDB, which can't return rows from an UPDATE, SELECTs them after;
        # on PostgreSQL the SELECT is the WITH of the UPDATE)
        first = ("SELECT", "WITH")
        select = next(q["sql"] for q in ctx.captured_queries if q["sql"].startswith(first))
        assert "IN (SELECT" not in select.upper()
        with CaptureQueriesContext(connection) as ctx:
            assert Product.objects.filter(tags__name="none").update(stock=1) == 0
        select = next(q["sql"] for q in ctx.captured_queries if q["sql"].startswith(first))
        assert "IN (SELECT" in select.upper()

    def test_fields_changed_on_some_rows_only(self):
        products = make_products(3)
        Product.objects.filter(pk=products[0].pk).update(name="same")
        Event.objects.none()
        before = len(events("update", Product))
        Product.objects.update(name="same", stock=F("stock") + 1, description="")
        changed = by_pk(events("update", Product)[before:])
        assert changed == {
            str(products[0].pk): {"stock": [0, 1]},
            str(products[1].pk): {"name": ["p1", "same"], "stock": [1, 2]},
            str(products[2].pk): {"name": ["p2", "same"], "stock": [2, 3]},
        }
        assert verified()

    def test_untracked_model_is_djangos_own(self):
        Note.objects.create(text="a")
        with CaptureQueriesContext(connection) as ctx:
            assert Note.objects.update(text="b") == 1
        assert len(ctx.captured_queries) == 1
        assert events() == []


class TestBulkUpdate:
    def test_only_changed_objects_recorded(self):
        make_products(3)
        loaded = list(Product.objects.order_by("pk"))
        loaded[0].price = Decimal("9.50")
        loaded[2].stock = 42
        assert Product.objects.bulk_update(loaded, ["price", "stock"]) == 3
        assert by_pk(events("update", Product)) == {
            str(loaded[0].pk): {"price": ["0.00", "9.50"]},
            str(loaded[2].pk): {"stock": [2, 42]},
        }

    def test_instances_not_loaded_fetch_old_values(self):
        products = make_products(2)
        fresh = [Product(pk=p.pk, name=p.name, price=Decimal("5"), stock=p.stock) for p in products]
        Product.objects.bulk_update(fresh, ["price"])
        assert by_pk(events("update", Product)) == {
            str(products[0].pk): {"price": ["0.00", "5"]},
            str(products[1].pk): {"price": ["1.00", "5"]},
        }

    def test_expression_values(self):
        make_products(2)
        loaded = list(Product.objects.order_by("pk"))
        for p in loaded:
            p.stock = F("stock") + 10
        Product.objects.bulk_update(loaded, ["stock"])
        assert [e.changes for e in events("update", Product)] == [
            {"stock": [0, 10]},
            {"stock": [1, 11]},
        ]

    def test_second_save_diffs_from_bulk_values(self):
        make_products(1)
        (p,) = Product.objects.all()
        p.stock = 5
        Product.objects.bulk_update([p], ["stock"])
        p.stock = 6
        p.save()
        assert [e.changes for e in events("update", Product)] == [
            {"stock": [0, 5]},
            {"stock": [5, 6]},
        ]

    def test_signal(self):
        make_products(2)
        loaded = list(Product.objects.all())
        seen = []

        def receiver(sender, pks, fields, using, **kwargs):
            seen.append((sender, sorted(pks), fields))

        post_bulk_update.connect(receiver, sender=Product)
        try:
            Product.objects.bulk_update(loaded, ["stock"])
        finally:
            post_bulk_update.disconnect(receiver, sender=Product)
        assert seen == [(Product, sorted(p.pk for p in loaded), ["stock"])]

    @pytest.mark.parametrize("n", [5, 300])
    def test_constant_queries(self, n):
        make_products(n)
        loaded = list(Product.objects.all())
        for p in loaded:
            p.stock += 1
        with CaptureQueriesContext(connection) as ctx:
            Product.objects.bulk_update(loaded, ["stock"])
        # Django's UPDATE, INSERT events (the newest hash is known: this
        # transaction wrote make_products()'s events).
        assert len(ctx.captured_queries) == 2, [q["sql"][:80] for q in ctx.captured_queries]


class TestBulkCreate:
    def test_one_create_event_per_object(self):
        products = make_products(3)
        created = events("create", Product)
        assert [e.object_pk for e in created] == [str(p.pk) for p in products]
        assert created[1].changes["name"] == [None, "p1"]
        assert created[1].changes["price"] == [None, "1"]

    def test_rows_of_plain_values_are_recorded_as_single_saves_are_and_verify(self):
        # Category rows hold only ints and strings: their changes are encoded
        # for the whole call at once (Product's JSON field takes the dict path).
        Category.objects.create(id=5, name="single")
        Category.objects.bulk_create(
            [Category(id=100, name='ü "%s" {0}'), Category(id=7, name=""), Category(name="x")]
        )
        created = events("create", Category)
        assert [e.changes for e in created[:3]] == [
            {"id": [None, 5], "name": [None, "single"]},
            {"id": [None, 100], "name": [None, 'ü "%s" {0}']},
            {"id": [None, 7], "name": [None, ""]},
        ]
        assert created[3].changes["name"] == [None, "x"]
        assert verified()

    def test_event_recorded_receivers_get_the_changes_of_encoded_rows(self):
        seen = []

        def receiver(sender, event, **kwargs):
            seen.append((event.pk is not None, event.object_pk, event.changes))

        event_recorded.connect(receiver, sender=Event)
        try:
            Code.objects.bulk_create([Code(code="a", label="1"), Code(code="b")])
        finally:
            event_recorded.disconnect(receiver, sender=Event)
        assert seen == [
            (True, "a", {"code": [None, "a"], "label": [None, "1"]}),
            (True, "b", {"code": [None, "b"], "label": [None, ""]}),
        ]
        assert [e.changes for e in events(model=Code)] == [c for _, _, c in seen]
        assert verified()

    def test_masked_fields(self):
        make_products(1, api_key="secret")
        (event,) = events("create", Product)
        assert event.changes["api_key"] == [None, "***"]

    def test_update_conflicts_record_updates_and_creates(self):
        # MySQL/MariaDB upsert on any unique key and take no unique_fields.
        target = (
            {"unique_fields": ["code"]}
            if connection.features.supports_update_conflicts_with_target
            else {}
        )
        Code.objects.bulk_create([Code(code="a", label="1")])
        Code.objects.bulk_create(
            [Code(code="a", label="X"), Code(code="b", label="2")],
            update_conflicts=True,
            update_fields=["label"],
            **target,
        )
        assert [(e.action, e.object_pk, e.changes) for e in events(model=Code)] == [
            ("create", "a", {"code": [None, "a"], "label": [None, "1"]}),
            ("update", "a", {"label": ["1", "X"]}),
            ("create", "b", {"code": [None, "b"], "label": [None, "2"]}),
        ]
        assert dict(Code.objects.values_list("code", "label")) == {"a": "X", "b": "2"}

    def test_ignore_conflicts_records_only_rows_written(self):
        Code.objects.bulk_create([Code(code="a", label="1")])
        Code.objects.bulk_create(
            [Code(code="a", label="X"), Code(code="b", label="2")], ignore_conflicts=True
        )
        assert [(e.action, e.object_pk) for e in events(model=Code)] == [
            ("create", "a"),
            ("create", "b"),
        ]
        assert Code.objects.get(code="a").label == "1"

    def test_signal(self):
        seen = []

        def receiver(sender, objs, using, **kwargs):
            seen.append([o.name for o in objs])

        post_bulk_create.connect(receiver, sender=Product)
        try:
            make_products(2)
        finally:
            post_bulk_create.disconnect(receiver, sender=Product)
        assert seen == [["p0", "p1"]]

    def test_rolled_back(self):
        with pytest.raises(RuntimeError), transaction.atomic():
            make_products(3)
            raise RuntimeError
        assert events() == []

    @pytest.mark.parametrize("n", [5, 300])
    def test_constant_queries(self, n):
        category = Category.objects.create(name="c")
        assert events() != []  # the category's create event is inserted: its hash is known
        with CaptureQueriesContext(connection) as ctx:
            make_products(n, category=category)
        # Django's INSERT, INSERT events.
        assert len(ctx.captured_queries) == 2, [q["sql"][:80] for q in ctx.captured_queries]


class TestDelete:
    def test_queryset_delete_keeps_djangos_result(self):
        make_products(3)
        result = Product.objects.filter(stock__gte=1).delete()
        assert result == (2, {"testapp.Product": 2})
        deleted = events("delete", Product)
        assert len(deleted) == 2
        assert deleted[0].changes["name"][1] is None

    def test_cascade_records_every_tracked_row(self):
        category = Category.objects.create(name="Tools")
        products = make_products(3, category=category)
        tag = Tag.objects.create(name="t")
        products[0].tags.add(tag)
        result = Category.objects.filter(pk=category.pk).delete()
        assert result[0] == 4 + 1  # category, 3 products, one m2m row
        assert {e.object_pk for e in events("delete", Product)} == {str(p.pk) for p in products}
        assert len(events("delete", Category)) == 1

    @pytest.mark.parametrize("n", [5, 200])
    def test_constant_event_queries(self, n):
        category = Category.objects.create(name="c")
        Product.objects.bulk_create([Product(name=f"p{i}", category=category) for i in range(n)])
        with CaptureQueriesContext(connection) as ctx:
            Product.objects.all().delete()
        sqls = [q["sql"] for q in ctx.captured_queries]
        # Django's own deletion queries, plus exactly one of the trail's (INSERT
        # events; the newest hash is known, the creates above were recorded in
        # this transaction) for 5 rows as for 200; and no query from
        # Product.__str__, which follows the category.
        assert len([s for s in sqls if "signaltrail_event" in s]) == 1, sqls
        assert not [s for s in sqls if "testapp_category" in s], sqls
        assert len(events("delete", Product)) == n

    def test_rolled_back_delete(self):
        make_products(2)
        with pytest.raises(RuntimeError), transaction.atomic():
            Product.objects.all().delete()
            raise RuntimeError
        assert events("delete") == []
        assert Product.objects.count() == 2


def test_querysets_of_untracked_models_run_djangos_methods():
    assert type(Note.objects.all()) is QuerySet
    note = Note.objects.bulk_create([Note(text="x")])[0]
    assert Note.objects.bulk_update([note], ["text"]) == 1
    assert events() == []


# -- pks of every kind through the bulk paths' pk filters ------------------------------


@pytest.mark.django_db
def test_update_and_bulk_update_on_uuid_and_text_primary_keys():
    """On PostgreSQL the batches are filtered with one array parameter
    (``pk = ANY(%s)``): it must match uuid and text keys as ``pk__in`` does."""
    from tests.testapp.models import UUIDThing

    things = [UUIDThing.objects.create(label=f"t{i}") for i in range(3)]
    assert UUIDThing.objects.filter(label__startswith="t").update(label=Upper("label")) == 3
    updates = {e.object_pk: e.changes for e in events(model=UUIDThing) if e.action == "update"}
    assert updates == {str(t.pk): {"label": [t.label, t.label.upper()]} for t in things}
    codes = [Code.objects.create(code=f"c-{i}", label="old") for i in range(3)]
    for code in codes:
        code.label = "new"
    Code.objects.bulk_update(codes, ["label"])
    updated = Code.objects.filter(code__in=["c-0", "c-1", "c-2"]).update(
        label=Concat("label", Value("!"))
    )
    assert updated == 3
    assert set(Code.objects.values_list("label", flat=True)) >= {"new!"}
    changes = [e.changes for e in events(model=Code) if e.action == "update"]
    assert changes == [{"label": ["old", "new"]}] * 3 + [{"label": ["new", "new!"]}] * 3


@pytest.mark.django_db
def test_postgresql_filters_a_batch_with_one_array_parameter():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    Product.objects.bulk_create([Product(name=f"p{i}") for i in range(50)])

    def receiver(sender, pks, **kwargs):
        pass  # with a receiver, each batch's UPDATE names its pks

    pre_bulk_update.connect(receiver, sender=Product)
    try:
        with CaptureQueriesContext(connection) as ctx:
            assert Product.objects.update(stock=F("stock") + 1) == 50
    finally:
        pre_bulk_update.disconnect(receiver, sender=Product)
    [update] = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]
    assert "= ANY(" in update and " IN (" not in update
