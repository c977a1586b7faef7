"""Serialization: any value a field can hold is recorded as JSON (DESIGN invariant 5).

DESIGN.md fixes the formats: Decimal and UUID as strings, dates and times ISO 8601,
durations (ISO 8601 as well), files as their name, foreign keys as the pk, binary
as base64, JSON as JSON, masked fields as "***". A value nothing knows how to
encode is recorded as its repr, and never fails the user's save.
"""

import base64
import datetime
import decimal
import enum
import json
import math
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import connection, models
from django.test.utils import isolate_apps
from django.utils.translation import gettext_lazy

import signaltrail
from signaltrail.models import Event
from signaltrail.registry import registry
from signaltrail.serialization import serializer_for, to_json
from tests.testapp.models import AllFields, BadPoint, Gadget, Point, Product

UTC = datetime.UTC
ALL_FIELD_NAMES = {f.name for f in AllFields._meta.concrete_fields}


def changes_of(obj, action):
    event = Event.objects.for_object(obj).filter(action=action).order_by("-id").first()
    assert event is not None, f"no {action} event for {obj!r}"
    return event.changes


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ann", password="x")


def first_values(owner):
    return {
        "big": -(2**40),
        "boolean": True,
        "char": "héllo ☃",
        "date": datetime.date(2024, 2, 29),
        "datetime": datetime.datetime(2024, 2, 29, 13, 45, 30, 123456, tzinfo=UTC),
        "decimal": Decimal("1234.5678"),
        "duration": datetime.timedelta(days=1, hours=2, seconds=3, microseconds=4),
        "email": "a@example.com",
        "file": "f/report.pdf",
        "file_path": "/srv/data",
        "floating": 1.5,
        "generic_ip": "2001:db8::1",
        "image": "i/photo.png",
        "integer": -7,
        "json": {"k": [1, 2.5, None, True], "s": "é", "nested": {"deep": []}},
        "positive_big": 2**62,
        "positive": 7,
        "positive_small": 3,
        "slug": "a-slug",
        "small": -3,
        "text": "line 1\nline 2",
        "time": datetime.time(13, 45, 30, 5),
        "url": "https://example.com/x?y=1",
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "binary": b"\x00\xff\x10bin",
        "owner": owner,
    }


def first_json(owner):
    return {
        "big": -(2**40),
        "boolean": True,
        "char": "héllo ☃",
        "date": "2024-02-29",
        "datetime": "2024-02-29T13:45:30.123456+00:00",
        "decimal": "1234.5678",
        "duration": "P1DT02H00M03.000004S",
        "email": "a@example.com",
        "file": "f/report.pdf",
        "file_path": "/srv/data",
        "floating": 1.5,
        "generic_ip": "2001:db8::1",
        "image": "i/photo.png",
        "integer": -7,
        "json": {"k": [1, 2.5, None, True], "s": "é", "nested": {"deep": []}},
        "positive_big": 2**62,
        "positive": 7,
        "positive_small": 3,
        "slug": "a-slug",
        "small": -3,
        "text": "line 1\nline 2",
        "time": "13:45:30.000005",
        "url": "https://example.com/x?y=1",
        "uuid": "12345678-1234-5678-1234-567812345678",
        "binary": base64.b64encode(b"\x00\xff\x10bin").decode(),
        "owner": owner.pk,
    }


@pytest.mark.django_db
def test_every_builtin_field_type_on_create(user):
    obj = AllFields.objects.create(**first_values(user))
    expected = {name: [None, value] for name, value in first_json(user).items()}
    expected["id"] = [None, obj.pk]
    assert changes_of(obj, "create") == expected
    assert set(expected) == ALL_FIELD_NAMES  # no field type left out


@pytest.mark.django_db
def test_every_builtin_field_type_as_loaded_from_the_database(user):
    """The database hands back its own types (memoryview, UTC datetimes, ...)."""
    obj = AllFields.objects.create(**first_values(user))
    obj = AllFields.objects.get(pk=obj.pk)
    second = get_user_model().objects.create_user("bob", password="x")
    new = {
        "big": 1,
        "boolean": False,
        "char": "x",
        "date": datetime.date(2025, 1, 1),
        "datetime": datetime.datetime(2025, 1, 1, tzinfo=UTC),
        "decimal": Decimal("0.0001"),
        "duration": datetime.timedelta(0),
        "email": "b@example.com",
        "file": "",
        "file_path": "",
        "floating": -2.25,
        "generic_ip": "10.0.0.1",
        "image": "i/other.png",
        "integer": 0,
        "json": [1, "two"],
        "positive_big": 0,
        "positive": 0,
        "positive_small": 0,
        "slug": "b",
        "small": 0,
        "text": "",
        "time": datetime.time(0, 0),
        "url": "https://example.org",
        "uuid": uuid.UUID("6f1c2b8e-3d4a-4b5c-9d6e-7f8091a2b3c4"),
        "binary": b"",
        "owner": second,
    }
    for name, value in new.items():
        setattr(obj, name, value)
    obj.save()

    new_json = {
        "big": 1,
        "boolean": False,
        "char": "x",
        "date": "2025-01-01",
        "datetime": "2025-01-01T00:00:00+00:00",
        "decimal": "0.0001",
        "duration": "P0DT00H00M00S",
        "email": "b@example.com",
        "file": None,  # no file
        "file_path": "",
        "floating": -2.25,
        "generic_ip": "10.0.0.1",
        "image": "i/other.png",
        "integer": 0,
        "json": [1, "two"],
        "positive_big": 0,
        "positive": 0,
        "positive_small": 0,
        "slug": "b",
        "small": 0,
        "text": "",
        "time": "00:00:00",
        "url": "https://example.org",
        "uuid": "6f1c2b8e-3d4a-4b5c-9d6e-7f8091a2b3c4",
        "binary": "",
        "owner": second.pk,
    }
    old_json = first_json(user)
    assert changes_of(obj, "update") == {
        name: [old_json[name], new_json[name]] for name in new_json
    }


@pytest.mark.django_db
def test_loaded_values_of_every_type_equal_themselves(user):
    """Saving a loaded row unchanged records nothing, whatever the field types."""
    obj = AllFields.objects.create(**first_values(user))
    AllFields.objects.get(pk=obj.pk).save()
    obj.save()
    assert [e.action for e in Event.objects.for_object(obj)] == ["create"]


@pytest.mark.django_db
def test_null_values_are_recorded_as_null():
    obj = AllFields.objects.create()
    changes = changes_of(obj, "create")
    for name in ("big", "date", "datetime", "decimal", "duration", "floating", "json"):
        assert changes[name] == [None, None], name
    assert changes["binary"] == [None, None]
    assert changes["owner"] == [None, None]
    assert changes["file"] == [None, None]  # an empty file is no file


@pytest.mark.django_db
def test_values_given_in_another_type_are_recorded_as_the_field_stores_them():
    """A form or an API hands over text; the event shows the stored value's JSON."""
    obj = AllFields.objects.create(
        decimal="2.50",
        integer="12",
        uuid="12345678123456781234567812345678",
        date="2024-03-01",
        datetime="2024-03-01T10:00:00+00:00",
        time="10:30",
    )
    changes = changes_of(obj, "create")
    assert changes["decimal"] == [None, "2.50"]
    assert changes["integer"] == [None, 12]
    assert changes["uuid"] == [None, "12345678-1234-5678-1234-567812345678"]
    assert changes["date"] == [None, "2024-03-01"]
    assert changes["datetime"] == [None, "2024-03-01T10:00:00+00:00"]
    assert changes["time"] == [None, "10:30:00"]

    p = Product.objects.create(name="Hammer", price=5)
    assert changes_of(p, "create")["price"] == [None, "5"]


@pytest.mark.django_db
def test_foreign_key_recorded_as_the_pk(user):
    obj = AllFields.objects.create(owner=user)
    obj.owner = None
    obj.save()
    assert changes_of(obj, "update") == {"owner": [user.pk, None]}
    obj.owner_id = user.pk
    obj.save()
    assert changes_of(obj, "update") == {"owner": [None, user.pk]}


@pytest.mark.django_db
def test_uploaded_file_recorded_as_its_stored_name(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    p = Product.objects.create(name="Hammer", image=ContentFile(b"png", name="hammer.png"))
    stored = p.image.name
    assert (tmp_path / stored).exists()
    assert changes_of(p, "create")["image"] == [None, stored]
    assert stored.startswith("products/")

    p.image = None
    p.save()
    assert changes_of(p, "update") == {"image": [stored, None]}


# -- floats that JSON cannot hold ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "recorded"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_non_finite_floats_are_recorded_as_text(value, recorded):
    serialize = serializer_for(AllFields._meta.get_field("floating"))
    assert serialize(value) == recorded
    assert to_json({"x": [value]}) == {"x": [recorded]}
    json.dumps(to_json(value), allow_nan=False)  # strict JSON, as jsonb wants


@pytest.mark.django_db
def test_non_finite_floats_end_to_end():
    if connection.vendor != "postgresql":
        pytest.skip(
            f"{connection.vendor} cannot store non-finite floats "
            "(SQLite turns NaN into NULL, MariaDB rejects them)"
        )
    obj = AllFields.objects.create(floating=math.inf)
    assert changes_of(obj, "create")["floating"] == [None, "inf"]
    obj = AllFields.objects.get(pk=obj.pk)
    obj.floating = math.nan
    obj.save()
    assert changes_of(obj, "update") == {"floating": ["inf", "nan"]}


# -- values nothing knows how to serialize ------------------------------------


@pytest.mark.django_db
def test_custom_field_value_is_recorded_as_its_repr():
    gadget = Gadget.objects.create(name="g", where=Point(1, 2))
    assert changes_of(gadget, "create")["where"] == [None, "Point(1, 2)"]

    gadget = Gadget.objects.get(pk=gadget.pk)
    assert gadget.where == Point(1, 2)
    gadget.save()  # loaded Point equals itself: nothing recorded
    gadget.where = Point(3, 4)
    gadget.save()
    assert changes_of(gadget, "update") == {"where": ["Point(1, 2)", "Point(3, 4)"]}


@pytest.mark.django_db
def test_a_value_that_cannot_be_compared_nor_repred_never_fails_the_save():
    gadget = Gadget.objects.create(name="g", where=Point(1, 2))
    gadget.where = BadPoint(5, 6)
    gadget.save()
    assert Gadget.objects.get(pk=gadget.pk).where == Point(5, 6)
    assert changes_of(gadget, "update") == {"where": ["Point(1, 2)", "<unrepresentable BadPoint>"]}

    created = Gadget.objects.create(where=BadPoint(7, 8))
    assert changes_of(created, "create")["where"] == [None, "<unrepresentable BadPoint>"]
    pk = created.pk
    created.delete()
    assert changes_of(Gadget(pk=pk), "delete")["where"] == ["<unrepresentable BadPoint>", None]


class Colour(enum.Enum):
    RED = 1


class Mood(str, enum.Enum):  # noqa: UP042 - on purpose: its str() is not its value
    HAPPY = "happy"


class Shade(models.TextChoices):
    DARK = "dark", "Dark"


class Size(models.IntegerChoices):
    BIG = 3, "Big"


class NoRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.10"), "1.10"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (datetime.timedelta(minutes=90), "P0DT01H30M00S"),
        (b"\x00\x01", "AAE="),
        (bytearray(b"\x00\x01"), "AAE="),
        (memoryview(b"\x00\x01"), "AAE="),
        (gettext_lazy("lazy"), "lazy"),
        (None, None),
        ({"a": None, "b": [None, {"c": None}]}, {"a": None, "b": [None, {"c": None}]}),
        (Shade.DARK, "dark"),
        (Mood.HAPPY, "happy"),
        (Size.BIG, 3),
        (Colour.RED, "<Colour.RED: 1>"),
        ({1: Decimal("2"), "a": {3}}, {"1": "2", "a": [3]}),
        ({"b", "a", "c"}, ["a", "b", "c"]),
        ((1, "x"), [1, "x"]),
        (Point(1, 2), "Point(1, 2)"),
        (NoRepr(), "<unrepresentable NoRepr>"),
        (object, "<class 'object'>"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_to_json_encodes_anything_without_raising(value, expected):
    result = to_json(value)
    assert result == expected
    assert type(result) is type(expected)  # plain JSON types, no subclasses
    json.dumps(result, allow_nan=False)


def test_to_json_of_a_model_instance_is_its_pk():
    assert to_json(Product(pk=12)) == 12


# -- masked fields ------------------------------------------------------------


@pytest.mark.django_db
def test_masked_field_is_stars_in_create_update_and_delete():
    secret, other = "s3cr3t-key-value", "another-s3cr3t"
    p = Product.objects.create(name="Hammer", api_key=secret)
    p.api_key = other
    p.save()
    p.name = "Saw"  # api_key unchanged: not mentioned
    p.save()
    pk = p.pk
    p.delete()

    events = list(Event.objects.filter(object_pk=str(pk)).order_by("id"))
    assert [e.changes.get("api_key") for e in events] == [
        [None, "***"],
        ["***", "***"],
        None,
        ["***", None],
    ]
    for event in events:
        row = json.dumps([event.changes, event.context, event.object_repr])
        assert secret not in row
        assert other not in row


@pytest.mark.django_db
def test_masked_field_set_to_the_same_value_records_nothing():
    p = Product.objects.create(name="Hammer", api_key="k")
    p = Product.objects.get(pk=p.pk)
    p.api_key = "k"
    p.save()
    assert not Event.objects.for_object(p).filter(action="update").exists()


# -- contrib.postgres fields --------------------------------------------------


@pytest.fixture
def pg_model(db):
    """A tracked model with contrib.postgres fields, its table made for this test.

    It lives in an isolated app registry, because django.contrib.postgres is not
    in the test settings' INSTALLED_APPS (its system checks would fail there).
    """
    if connection.vendor != "postgresql":
        pytest.skip("contrib.postgres fields exist on PostgreSQL only")
    from django.contrib.postgres.fields import (
        ArrayField,
        DateTimeRangeField,
        DecimalRangeField,
        HStoreField,
        IntegerRangeField,
    )
    from django.contrib.postgres.signals import get_hstore_oids, register_type_handlers

    with isolate_apps("tests.testapp"):

        class PgFields(models.Model):
            tags = ArrayField(models.CharField(max_length=20), default=list, blank=True)
            days = ArrayField(models.DateField(), null=True)
            grid = ArrayField(ArrayField(models.IntegerField()), null=True)
            attrs = HStoreField(null=True)
            ints = IntegerRangeField(null=True)
            prices = DecimalRangeField(null=True)
            period = DateTimeRangeField(null=True)

            class Meta:
                app_label = "testapp"

    signaltrail.track(PgFields)
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS hstore")
    get_hstore_oids.cache_clear()
    register_type_handlers(connection)
    with connection.schema_editor() as editor:
        editor.create_model(PgFields)
    yield PgFields
    registry.unregister(PgFields)
    get_hstore_oids.cache_clear()  # the extension goes with the test's transaction


def test_postgres_fields_on_create_and_update(pg_model):
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange, NumericRange

    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    obj = pg_model.objects.create(
        tags=["a", "b"],
        days=[datetime.date(2024, 1, 1)],
        grid=[[1, 2], [3, 4]],
        attrs={"colour": "red", "size": None},
        ints=(1, 10),
        prices=NumericRange(Decimal("1.50"), Decimal("9.99"), "[]"),
        period=DateTimeTZRange(start, None),
    )
    assert changes_of(obj, "create") == {
        "id": [None, obj.pk],
        "tags": [None, ["a", "b"]],
        "days": [None, ["2024-01-01"]],
        "grid": [None, [[1, 2], [3, 4]]],
        "attrs": [None, {"colour": "red", "size": None}],
        "ints": [None, {"lower": 1, "upper": 10, "bounds": "[)"}],
        "prices": [None, {"lower": "1.50", "upper": "9.99", "bounds": "[]"}],
        "period": [None, {"lower": "2024-01-01T00:00:00+00:00", "upper": None, "bounds": "[)"}],
    }

    obj = pg_model.objects.get(pk=obj.pk)
    obj.save()  # loaded values equal themselves
    obj.tags.append("c")  # in place, like a JSONField
    obj.attrs["size"] = "L"
    obj.ints = NumericRange(empty=True)
    obj.save()
    assert changes_of(obj, "update") == {
        "tags": [["a", "b"], ["a", "b", "c"]],
        "attrs": [{"colour": "red", "size": None}, {"colour": "red", "size": "L"}],
        "ints": [
            {"lower": 1, "upper": 10, "bounds": "[)"},
            {"lower": None, "upper": None, "bounds": ""},
        ],
    }


# -- the per-field serializers are shortcuts, never other answers ---------------------


class _Odd(decimal.Decimal):
    pass


class _OddDateTime(datetime.datetime):
    pass


@pytest.mark.parametrize("name", ["decimal", "date", "datetime", "time"])
def test_typed_serializers_record_what_to_json_records(name):
    serialize = serializer_for(AllFields._meta.get_field(name))
    moment = datetime.datetime(2031, 2, 3, 4, 5, 6, 789, tzinfo=datetime.UTC)
    values = [
        None, 0, "1.50", decimal.Decimal("1.50"), decimal.Decimal("-0E-7"), _Odd("2.5"),
        moment, moment.date(), moment.time(), moment.replace(tzinfo=None),
        _OddDateTime(2031, 2, 3), 1.5, object(),
    ]  # fmt: skip
    for value in values:
        recorded = serialize(value)
        expected = to_json(value)
        if type(value) is object:
            assert recorded.startswith("<object object")  # its repr, never an error
        else:
            assert recorded == expected, value
            assert type(recorded) is type(expected), value


def test_a_time_whose_tzinfo_fails_is_recorded_not_raised():
    class Broken(datetime.tzinfo):
        def utcoffset(self, dt):
            raise ValueError("no offset")

    serialize = serializer_for(AllFields._meta.get_field("time"))
    value = datetime.time(1, 2, 3, tzinfo=Broken())
    assert serialize(value) == to_json(value)
    assert isinstance(serialize(value), str)
