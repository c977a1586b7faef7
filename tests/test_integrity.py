"""``manage.py trail verify``: tampering behind the ORM's back is detected.

Each test writes a small, real trail, changes the table with raw SQL the way an
attacker with database access would, and expects ``verify`` to fail with exit
status 1 and a message naming the event.
"""

import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

import signaltrail
from signaltrail.models import Event
from tests.testapp.models import AllFields, Code, Product, Tag, UUIDThing

ROOT = Path(__file__).resolve().parent.parent


def table(using="default"):
    return connections[using].ops.quote_name(Event._meta.db_table)


def sql(statement, params=(), using="default"):
    with connections[using].cursor() as cursor:
        cursor.execute(statement.replace("{t}", table(using)), params)
        return cursor.rowcount


def verify(*args, using="default"):
    """Run ``trail verify``; return (output, CommandError or None)."""
    out = StringIO()
    try:
        call_command("trail", "verify", "--no-progress", "--database", using, *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def assert_tampered(event_id, kind_words, using="default"):
    out, error = verify(using=using)
    assert error is not None, out
    assert error.returncode == 1
    assert "tampered" in str(error)
    assert f"Event {event_id} " in out, out
    assert kind_words in out, out
    return out


@pytest.fixture
def trail(django_user_model):
    """A trail with every kind of event; returns their ids, oldest first."""
    user = django_user_model.objects.create_user("alice", password="pw")
    tag = Tag.objects.create(name="red")
    with signaltrail.context(actor=user, reason="setup", ticket=Decimal("1.5")):
        product = Product.objects.create(name="Lämp ✓", price="10.00", data={"k": [1, 2.5]})
        product.price = Decimal("12.00")
        product.save()
        product.tags.add(tag)
        signaltrail.record("exported", product, rows=1)
        UUIDThing.objects.create(label="u")
        Code.objects.create(code="C-1")
        AllFields.objects.create(floating=0.1, big=2**53 + 1, json={"n": 1e16, "t": "ü"})
        product.tags.clear()
        product.delete()
    authenticate(None, username="mallory", password="guess")
    ids = list(Event.objects.order_by("id").values_list("id", flat=True))
    assert len(ids) >= 9
    return ids


@pytest.mark.django_db
def test_an_untouched_trail_verifies(trail):
    out, error = verify()
    assert error is None, out
    assert f"The trail is intact: {len(trail)} events verified." in out


@pytest.mark.django_db
def test_an_empty_trail_verifies():
    out, error = verify()
    assert error is None
    assert "0 events verified" in out


@pytest.mark.django_db
def test_a_user_deleted_after_acting_does_not_break_the_trail(trail, django_user_model):
    django_user_model.objects.get(username="alice").delete()

    assert Event.objects.filter(actor_label="alice", actor__isnull=True).exists()
    out, error = verify()
    assert error is None, out


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("object_repr", "something else"),
        ("actor_label", "bob"),
        ("action", "delete"),
        ("object_pk", "999"),
        ("prev_hash", ""),
        ("changes", '{"price": ["10.00", "1.00"]}'),
        ("context", '{"reason": "nothing to see"}'),
    ],
)
@pytest.mark.django_db
def test_a_row_edited_behind_the_orms_back_is_detected(trail, column, value):
    middle = trail[len(trail) // 2]
    assert sql(f"UPDATE {{t}} SET {column} = %s WHERE id = %s", [value, middle]) == 1

    assert_tampered(middle, "does not match its hash")


@pytest.mark.django_db
def test_a_changed_timestamp_is_detected(trail):
    middle = trail[2]
    event = Event.objects.get(pk=middle)
    later = connection.ops.adapt_datetimefield_value(event.at.replace(year=event.at.year + 1))
    sql("UPDATE {t} SET at = %s WHERE id = %s", [later, middle])

    assert_tampered(middle, "does not match its hash")


@pytest.mark.django_db
def test_a_deleted_row_is_detected(trail):
    victim, follower = trail[3], trail[4]
    assert sql("DELETE FROM {t} WHERE id = %s", [victim]) == 1

    out = assert_tampered(follower, "missing or comes later")
    assert f"Event {victim} " not in out


@pytest.mark.django_db
def test_deleting_the_first_row_is_detected(trail):
    sql("DELETE FROM {t} WHERE id = %s", [trail[0]])

    assert_tampered(trail[1], "missing or comes later")


@pytest.mark.django_db
def test_a_row_inserted_with_a_made_up_hash_is_detected(trail):
    sql(
        "INSERT INTO {t} (at, action, actor_label, content_type_id, object_pk, object_repr,"
        " changes, context, prev_hash, hash)"
        " SELECT at, 'login', 'root', content_type_id, object_pk, object_repr,"
        " changes, context, hash, %s FROM {t} WHERE id = %s",
        ["f" * 64, trail[-1]],
    )
    forged = Event.objects.order_by("-id").values_list("id", flat=True).first()
    assert forged not in trail

    assert_tampered(forged, "does not match its hash")


@pytest.mark.django_db
def test_a_replayed_copy_of_a_genuine_row_is_detected(trail):
    """A copy of a real row, hash and all, is a valid-looking row: it must still be
    reported, as it is an event that signaltrail never wrote."""
    sql(
        "INSERT INTO {t} (at, action, actor_label, content_type_id, object_pk, object_repr,"
        " changes, context, prev_hash, hash)"
        " SELECT at, action, actor_label, content_type_id, object_pk, object_repr,"
        " changes, context, prev_hash, hash FROM {t} WHERE id = %s",
        [trail[2]],
    )
    copy = Event.objects.order_by("-id").values_list("id", flat=True).first()

    out = assert_tampered(copy, f"has the same hash as event {trail[2]}")
    assert "copy inserted outside signaltrail" in out


@pytest.mark.django_db
def test_swapped_rows_are_detected(trail):
    """Two rows exchange places (their content moves, ids stay): every row still
    matches its own hash, only the chain shows the reordering."""
    a, b = trail[2], trail[5]
    spare = max(trail) + 1000
    sql("UPDATE {t} SET id = %s WHERE id = %s", [spare, a])
    sql("UPDATE {t} SET id = %s WHERE id = %s", [a, b])
    sql("UPDATE {t} SET id = %s WHERE id = %s", [b, spare])
    assert Event.objects.get(pk=a).hash != Event.objects.get(pk=b).hash

    out, error = verify()
    assert error is not None and error.returncode == 1
    assert "does not match" not in out  # each row is intact...
    assert (
        f"Event {a} follows an event that is missing or comes later" in out
    )  # ...the order is not


@pytest.mark.django_db(databases=["default", "other"])
def test_verify_checks_the_database_it_is_given(trail):
    Product.objects.using("other").create(name="elsewhere")
    other_ids = list(Event.objects.using("other").values_list("id", flat=True))
    sql("UPDATE {t} SET object_repr = 'x' WHERE id = %s", [other_ids[0]], using="other")

    assert verify()[1] is None
    assert_tampered(other_ids[0], "does not match its hash", using="other")


@pytest.mark.django_db
def test_a_rotated_secret_key_still_verifies(trail, settings):
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test"

    assert verify()[1] is None


@pytest.mark.django_db
def test_a_different_secret_key_fails(trail, settings):
    settings.SECRET_KEY = "not-the-key-the-trail-was-written-with"

    out, error = verify()
    assert error is not None and error.returncode == 1
    assert out.count("does not match its hash") == len(trail)


# -- bad input -----------------------------------------------------------------


def test_verify_an_unknown_database_is_a_clear_error():
    with pytest.raises(
        CommandError, match=r"Unknown database alias 'nope'\. Known: default, other\."
    ):
        call_command("trail", "verify", "--database", "nope")


def run_trail(*args):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SIGNALTRAIL_TEST_DB": "sqlite",
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "trail", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "the following arguments are required: SUBCOMMAND"),
        (("bogus",), "invalid choice: 'bogus'"),
        (("verify", "--database", "nope"), "Unknown database alias 'nope'"),
        (("verify", "--bogus"), "unrecognized arguments: --bogus"),
    ],
)
def test_trail_command_line_errors_exit_non_zero_without_a_traceback(args, expected):
    result = run_trail(*args)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    if args[:1] != ("verify",) or "--bogus" in args:
        assert "usage:" in result.stderr


@pytest.mark.django_db
def test_renaming_a_model_does_not_look_like_tampering():
    from django.contrib.contenttypes.models import ContentType

    Product.objects.create(name="Lamp")
    # What RenameModel's contenttypes step does (RenameContentType).
    ct = ContentType.objects.get_for_model(Product)
    ct.model = "article_renamed"
    ct.save(update_fields=["model"])
    ContentType.objects.clear_cache()

    out, error = verify()
    assert error is None, out
