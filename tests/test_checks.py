"""System checks: a misconfigured trail is reported by ``manage.py check`` with a clear
message - and never crashes the project at start-up.
"""

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from signaltrail.middleware import TrailMiddleware
from signaltrail.models import Event
from signaltrail.registry import TrackOptions, register_from_settings, registry, settings_entries
from tests.testapp.models import Club, Note, Product

# Django's own model checks (JSONField support) ask the databases.
pytestmark = pytest.mark.django_db(databases=["default", "other"])


def messages(id_prefix="signaltrail."):
    return [m for m in run_checks() if (m.id or "").startswith(id_prefix)]


def only(check_id):
    found = [m for m in messages() if m.id == check_id]
    assert found, f"{check_id} not reported; got {[m.id for m in messages()]}"
    return found


@pytest.fixture
def registered():
    """Register throw-away options in the live registry for one test, then put
    the registry back as it was (model classes are shared by the whole run)."""
    saved = dict(registry._options)
    added = []

    def register(model, **options):
        added.append(model)
        return registry.register(TrackOptions(model=model, **options))

    yield register
    registry._options.clear()
    registry._options.update(saved)


def test_the_test_configuration_is_clean():
    assert messages() == []


# -- settings ------------------------------------------------------------------


@override_settings(SIGNALTRAIL=["testapp.Product"])
def test_e001_signaltrail_must_be_a_dict():
    (error,) = only("signaltrail.E001")
    assert error.msg == "SIGNALTRAIL must be a dict."
    assert "SIGNALTRAIL = {" in error.hint


@override_settings(SIGNALTRAIL={"MODEL": {}, "GLOBAL_EXCLUDES": []})
def test_e002_unknown_setting_names_it_and_suggests_the_right_one():
    errors = only("signaltrail.E002")
    texts = sorted(e.msg for e in errors)
    assert texts == [
        "SIGNALTRAIL has an unknown setting 'GLOBAL_EXCLUDES' (did you mean 'GLOBAL_EXCLUDE'?).",
        "SIGNALTRAIL has an unknown setting 'MODEL' (did you mean 'MODELS'?).",
    ]
    assert "MODELS" in errors[0].hint


@pytest.mark.parametrize(
    ("setting", "value", "text"),
    [
        ("ALL_MODELS", "yes", "SIGNALTRAIL['ALL_MODELS'] must be True or False."),
        ("AUTH_EVENTS", 1, "SIGNALTRAIL['AUTH_EVENTS'] must be True or False."),
        (
            "POSTGRES_BEGIN_WITH_ROW",
            "no",
            "SIGNALTRAIL['POSTGRES_BEGIN_WITH_ROW'] must be True or False.",
        ),
        ("EXCLUDE_MODELS", "sessions.Session", "SIGNALTRAIL['EXCLUDE_MODELS'] must be a list"),
        ("EXCLUDE_MODELS", None, "SIGNALTRAIL['EXCLUDE_MODELS'] must be a list"),
        ("GLOBAL_EXCLUDE", None, "SIGNALTRAIL['GLOBAL_EXCLUDE'] must be a list"),
        ("GLOBAL_MASK", [1], "SIGNALTRAIL['GLOBAL_MASK'] must be a list"),
        ("REPR_MAX_LENGTH", "200", "SIGNALTRAIL['REPR_MAX_LENGTH'] must be a positive integer."),
        ("REPR_MAX_LENGTH", 0, "SIGNALTRAIL['REPR_MAX_LENGTH'] must be a positive integer."),
        ("REQUEST_ID_HEADER", 42, "SIGNALTRAIL['REQUEST_ID_HEADER'] must be a header name"),
        ("IP_HEADER", ["HTTP_X_FORWARDED_FOR"], "SIGNALTRAIL['IP_HEADER'] must be a header name"),
    ],
)
def test_e002_settings_of_the_wrong_type(setting, value, text):
    with override_settings(SIGNALTRAIL={setting: value}):
        (error,) = only("signaltrail.E002")
    assert error.msg.startswith(text)


@pytest.mark.parametrize("label", ["testapp.Nope", "nope.Product", "Product", "a.b.c", 42])
def test_e003_unknown_model_label(label):
    with override_settings(SIGNALTRAIL={"MODELS": {label: {}}}):
        (error,) = only("signaltrail.E003")
    assert error.msg == f"SIGNALTRAIL['MODELS'] names {label!r}, which is not an installed model."
    assert "app_label.ModelName" in error.hint


@override_settings(SIGNALTRAIL={"MODELS": ["testapp.Product"]})
def test_e003_models_must_be_a_dict():
    (error,) = only("signaltrail.E003")
    assert "must be a dict of model labels to options" in error.msg


@override_settings(
    SIGNALTRAIL={
        "MODELS": {
            "testapp.Note": {"exclude": ["txt"], "mask": ["secret", "text"], "m2m": ["text"]}
        }
    }
)
def test_e004_unknown_fields_in_settings():
    errors = only("signaltrail.E004")
    texts = sorted(e.msg for e in errors)
    assert texts == [
        "testapp.Note is tracked with exclude='txt' in SIGNALTRAIL['MODELS']['testapp.Note'], "
        "but it has no such field.",
        "testapp.Note is tracked with m2m='text' in SIGNALTRAIL['MODELS']['testapp.Note'], "
        "which is not a many-to-many field of it.",
        "testapp.Note is tracked with mask='secret' in SIGNALTRAIL['MODELS']['testapp.Note'], "
        "but it has no such field.",
    ]
    assert all(e.obj is Note for e in errors)
    assert "Fields of testapp.Note: id, text." in {e.hint for e in errors}


def test_e004_unknown_fields_given_to_track_in_code(registered):
    registered(Note, exclude=frozenset({"txt"}), mask=frozenset({"text"}), m2m=("members",))

    texts = sorted(e.msg for e in only("signaltrail.E004"))
    assert texts == [
        "testapp.Note is tracked with exclude='txt' in track(), but it has no such field.",
        "testapp.Note is tracked with m2m='members' in track(), which is not a many-to-many "
        "field of it.",
    ]


def test_e004_accepts_attnames_and_real_m2m_fields(registered):
    registered(Product, exclude=frozenset({"category_id"}), m2m=("tags",))
    registered(Club, m2m=("members",))

    assert [m for m in messages() if m.id == "signaltrail.E004"] == []


def test_e005_tracking_the_event_model_in_code(registered):
    registered(Event)

    (error,) = only("signaltrail.E005")
    assert error.msg == "signaltrail cannot track its own Event model."
    assert error.obj is Event


@override_settings(SIGNALTRAIL={"MODELS": {"signaltrail.Event": {}}})
def test_e005_tracking_the_event_model_in_settings():
    (error,) = only("signaltrail.E005")
    assert "SIGNALTRAIL['MODELS']" in error.hint


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ("exclude", "The options of 'testapp.Note' in SIGNALTRAIL['MODELS'] must be a dict."),
        ({"exlude": ["text"]}, "'testapp.Note' in SIGNALTRAIL['MODELS'] has an unknown option"),
        ({"exclude": "text"}, "'testapp.Note' option 'exclude' must be a list of field names."),
    ],
)
def test_e006_malformed_options(options, text):
    with override_settings(SIGNALTRAIL={"MODELS": {"testapp.Note": options}}):
        (error,) = only("signaltrail.E006")
    assert error.msg.startswith(text)


def test_w001_middleware_missing_while_models_are_tracked(settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "signaltrail.middleware.TrailMiddleware"
    ]

    (warning,) = only("signaltrail.W001")
    assert "TrailMiddleware is not in MIDDLEWARE" in warning.msg
    assert "signaltrail.middleware.TrailMiddleware" in warning.hint


class ProjectTrailMiddleware(TrailMiddleware):
    """A project's own subclass, under its own dotted path."""


def test_w001_accepts_a_subclass_of_the_middleware(settings):
    trail = "signaltrail.middleware.TrailMiddleware"
    settings.MIDDLEWARE = [
        "tests.test_checks.ProjectTrailMiddleware" if m == trail else m for m in settings.MIDDLEWARE
    ]

    assert [m.id for m in messages() if m.id in ("signaltrail.W001", "signaltrail.W003")] == []


def test_w003_middleware_before_authentication(settings):
    trail = "signaltrail.middleware.TrailMiddleware"
    settings.MIDDLEWARE = [trail, *(m for m in settings.MIDDLEWARE if m != trail)]

    (warning,) = only("signaltrail.W003")
    assert "before AuthenticationMiddleware" in warning.msg


@override_settings(SIGNALTRAIL={"MODELS": {"testapp.Nope": {}}})
def test_manage_py_check_fails_with_the_message():
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    assert "signaltrail.E003" in str(excinfo.value)
    assert "'testapp.Nope'" in str(excinfo.value)


# -- bad settings don't crash start-up ----------------------------------------

BAD_SETTINGS = [
    "not a dict",
    {"MODELS": "testapp.Note"},
    {"MODELS": {"testapp.Nope": {}}},
    {"MODELS": {"Note": {}}},
    {"MODELS": {"testapp.Note": "exclude"}},
    {"MODELS": {"testapp.Note": {"exclude": "text"}}},
    {"MODELS": {"testapp.Note": {"exlude": ["text"]}}},
    {"MODELS": {"testapp.Note": {"mask": [1, 2]}}},
    {"ALL_MODELS": "yes"},
]


@pytest.mark.parametrize("bad", BAD_SETTINGS, ids=repr)
def test_invalid_entries_are_skipped_at_start_up(bad, registered):
    before = dict(registry._options)

    with override_settings(SIGNALTRAIL=bad):
        assert settings_entries() == {}
        register_from_settings()  # what AppConfig.ready() runs
        run_checks()  # and reporting them doesn't crash either

    assert registry._options == before


@override_settings(
    SIGNALTRAIL={"MODELS": {"testapp.Nope": {}, "testapp.Note": {"exclude": ["text"]}}}
)
def test_a_bad_entry_does_not_lose_the_good_ones():
    assert settings_entries() == {Note: {"exclude": ["text"]}}


@override_settings(SIGNALTRAIL={"MODELS": {42: {}}})
def test_a_non_string_model_label_does_not_crash_start_up():
    assert settings_entries() == {}


@override_settings(SIGNALTRAIL={"ALL_MODELS": True, "EXCLUDE_MODELS": None})
def test_exclude_models_none_does_not_crash_start_up():
    assert settings_entries()


@override_settings(SIGNALTRAIL={"GLOBAL_EXCLUDE": None})
def test_global_exclude_none_does_not_crash_saves():
    assert TrackOptions(model=Note).fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"BACKGROUND": "rq"}, "signaltrail.E008"),
        ({"TASK_BACKEND": "nope"}, "signaltrail.E009"),
        ({"TASK_BACKEND": 3}, "signaltrail.E009"),
    ],
)
def test_background_settings_are_checked(settings, value, expected):
    from django.core.checks import run_checks

    settings.SIGNALTRAIL = value
    ids = {message.id for message in run_checks()}
    assert expected in ids


def test_default_background_settings_pass(settings):
    from django.core.checks import run_checks

    settings.SIGNALTRAIL = {"BACKGROUND": "tasks", "TASK_BACKEND": "default"}
    assert not [m for m in run_checks() if m.id in ("signaltrail.E008", "signaltrail.E009")]
