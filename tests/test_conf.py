"""``signaltrail.conf.conf``: defaults in one place, and settings changes seen.

Settings are read at the moment they are needed, so a change shows at once,
however it was made.
"""

from django.test import override_settings

from signaltrail.conf import DEFAULTS, conf


def test_defaults_when_unset(settings):
    del settings.SIGNALTRAIL
    assert DEFAULTS["REPR_MAX_LENGTH"] == conf.REPR_MAX_LENGTH
    assert conf.raw is None


def test_override_settings_is_seen_and_undone():
    before = conf.REPR_MAX_LENGTH
    with override_settings(SIGNALTRAIL={"REPR_MAX_LENGTH": 7}):
        assert conf.REPR_MAX_LENGTH == 7
        assert DEFAULTS["BULK_BATCH_SIZE"] == conf.BULK_BATCH_SIZE
    assert before == conf.REPR_MAX_LENGTH


def test_the_settings_fixture_is_seen(settings):
    settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 3}
    assert conf.BULK_BATCH_SIZE == 3
    settings.SIGNALTRAIL = {"BULK_BATCH_SIZE": 4}
    assert conf.BULK_BATCH_SIZE == 4


def test_settings_replaced_without_a_signal_are_seen(monkeypatch):
    """monkeypatch, or plain assignment: no setting_changed is sent."""
    from django.conf import settings

    monkeypatch.setattr(settings, "SIGNALTRAIL", {"REPR_MAX_LENGTH": 5}, raising=False)
    assert conf.REPR_MAX_LENGTH == 5
    monkeypatch.setattr(settings, "SIGNALTRAIL", {"REPR_MAX_LENGTH": 6})
    assert conf.REPR_MAX_LENGTH == 6


def test_a_value_that_is_not_a_dict_behaves_as_unset(settings):
    settings.SIGNALTRAIL = ["not", "a", "dict"]  # signaltrail.E001 reports it
    assert DEFAULTS["REPR_MAX_LENGTH"] == conf.REPR_MAX_LENGTH


def test_unknown_names_are_attribute_errors():
    try:
        conf.NO_SUCH_SETTING  # noqa: B018
    except AttributeError as error:
        assert "NO_SUCH_SETTING" in str(error)
    else:
        raise AssertionError("conf.NO_SUCH_SETTING should raise AttributeError")
