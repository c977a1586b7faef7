"""update() in batches does what Django's one UPDATE does: the rows, the values, the count."""

import uuid

import pytest
from django.db import connection
from django.db.models import Avg, Case, F, Max, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat
from django.test.utils import CaptureQueriesContext

from signaltrail.models import Event
from tests.test_bulk import by_pk, events, make_products
from tests.testapp.models import Code, Product, Ranked, UUIDThing

pytestmark = pytest.mark.django_db


def _stock_average():
    return Product.objects.annotate(g=Value(1)).values("g").annotate(a=Avg("stock")).values("a")


def _stock_max():
    return Product.objects.annotate(g=Value(1)).values("g").annotate(m=Max("stock")).values("m")


class TestNothingToUpdate:
    def test_a_queryset_that_matches_nothing_by_construction(self):
        make_products(3)
        assert Product.objects.none().update(stock=5) == 0
        assert Product.objects.filter(pk__in=[]).update(stock=F("stock") + 1) == 0
        assert Product.objects.filter(pk__in=[]).update(description="x") == 0
        assert events("update") == []
        assert sorted(Product.objects.values_list("stock", flat=True)) == [0, 1, 2]


class TestReadingItsOwnTable:
    """Batches would see what earlier batches wrote; Django's UPDATE sees the table as it was."""

    def test_a_filter_on_the_tables_average(self, settings):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
        make_products(10)  # stock 0..9: average 4.5
        count = Product.objects.filter(stock__lte=Subquery(_stock_average())).update(
            stock=F("stock") + 100
        )
        assert count == 5
        assert sorted(Product.objects.values_list("stock", flat=True)) == [
            5, 6, 7, 8, 9, 100, 101, 102, 103, 104,
        ]  # fmt: skip
        assert len(events("update", Product)) == 5

    def test_a_value_from_the_tables_maximum(self, settings):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
        products = make_products(6)  # stock 0..5
        assert Product.objects.update(stock=Subquery(_stock_max()) + 1) == 6
        assert set(Product.objects.values_list("stock", flat=True)) == {6}
        changed = by_pk(events("update", Product))
        assert changed == {str(p.pk): {"stock": [p.stock, 6]} for p in products}

    def test_a_subquery_in_a_condition_of_a_value(self, settings):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
        make_products(10)
        low = When(stock__lte=Subquery(_stock_average()), then=F("stock") + 100)
        assert Product.objects.update(stock=Case(low, default=F("stock"))) == 10
        assert sorted(Product.objects.values_list("stock", flat=True)) == [
            5, 6, 7, 8, 9, 100, 101, 102, 103, 104,
        ]  # fmt: skip

    def test_raw_sql_in_the_filter_counts_as_reading_the_table(self, settings):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
        make_products(10)
        table = connection.ops.quote_name(Product._meta.db_table)
        average = RawSQL(f"SELECT AVG(stock) FROM {table}", [])
        count = Product.objects.filter(stock__lte=average).update(stock=F("stock") + 100)
        assert count == 5
        assert len(events("update", Product)) == 5

    @pytest.mark.parametrize(
        ("values", "statements"),
        [({"description": "x"}, 3), ({"stock": F("stock") + 1}, 1)],
        ids=["column-not-read-keeps-batches", "column-read-one-batch"],
    )
    def test_a_subquery_over_the_table_runs_in_batches_unless_it_reads_a_written_column(
        self, settings, values, statements
    ):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
        make_products(5)  # batches of 2, 2 and 1
        same_table = Product.objects.filter(stock__gte=0).values("pk")
        with CaptureQueriesContext(connection) as queries:
            assert Product.objects.filter(pk__in=same_table).update(**values) == 5
        updates = [q["sql"] for q in queries if q["sql"].lstrip().startswith(("UPDATE", "WITH"))]
        assert len(updates) == statements
        assert len(events("update", Product)) == 5


class TestChangingThePrimaryKey:
    def test_every_row_moves_once_and_its_event_is_filed_under_its_old_pk(self, settings):
        settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
        products = make_products(5)
        old = sorted(p.pk for p in products)
        assert Product.objects.filter(pk__in=old).update(id=F("id") + 1000) == 5
        assert sorted(Product.objects.values_list("pk", flat=True)) == [pk + 1000 for pk in old]
        assert by_pk(events("update", Product)) == {str(pk): {"id": [pk, pk + 1000]} for pk in old}


def _icu_collation():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu'")
        return cursor.fetchone() is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only (collations)")
def test_text_pks_in_a_collation_python_does_not_sort_by(settings):
    """An ICU collation sorts "B" between "a" and "c"; Python sorts it first."""
    if not _icu_collation():
        pytest.skip("no en-x-icu collation on this PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute(
            f'ALTER TABLE {Code._meta.db_table} ALTER COLUMN code TYPE varchar(20) COLLATE "en-x-icu"'
        )
    settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
    codes = ["a", "B", "c", "D", "e", "F"]
    Code.objects.bulk_create([Code(code=c, label="") for c in codes])
    assert Code.objects.update(label=Concat("label", Value("x"))) == 6
    assert dict(Code.objects.values_list("code", "label")) == dict.fromkeys(codes, "x")
    assert by_pk(events("update", Code)) == {c: {"label": ["", "x"]} for c in codes}


def test_an_upsert_given_a_uuid_as_text_records_an_update():
    thing = UUIDThing.objects.create(label="old")
    UUIDThing.objects.bulk_create(
        [UUIDThing(id=str(thing.pk), label="new")],
        update_conflicts=True,
        # MySQL/MariaDB take no conflict target: any unique key conflicts.
        unique_fields=["id"] if connection.features.supports_update_conflicts_with_target else None,
        update_fields=["label"],
    )
    recorded = [(e.action, e.changes) for e in events(model=UUIDThing)]
    assert recorded[1:] == [("update", {"label": ["old", "new"]})]
    assert isinstance(thing.pk, uuid.UUID)
    assert Event.objects.for_object(thing).count() == 2


@pytest.mark.skipif(connection.vendor != "mysql", reason="MySQL/MariaDB only follow order_by()")
def test_an_ordered_update_of_a_unique_column(settings):
    settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 2}
    rows = Ranked.objects.bulk_create([Ranked(rank=r) for r in (1, 2, 3, 4)])
    shifted = Case(*(When(rank=r, then=Value(r + 1)) for r in (1, 2, 3, 4)))
    assert Ranked.objects.order_by("-rank").update(rank=shifted) == 4
    assert sorted(Ranked.objects.values_list("rank", flat=True)) == [2, 3, 4, 5]
    assert by_pk(events("update", Ranked)) == {
        str(r.pk): {"rank": [r.rank, r.rank + 1]} for r in rows
    }
