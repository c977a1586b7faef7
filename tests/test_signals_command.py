"""``manage.py trail signals``: every loaded signal and who listens to it."""

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models.signals import post_save
from django.dispatch import Signal

from tests.testapp.models import Product

ROOT = Path(__file__).resolve().parent.parent

order_paid = Signal()


def on_paid(sender, **kwargs):
    pass


def on_paid_strong(sender, **kwargs):
    pass


@pytest.fixture
def paid_receivers():
    order_paid.connect(on_paid, sender="payments")  # a str sender: no weakref, id only
    order_paid.connect(on_paid_strong, sender=Product, weak=False, dispatch_uid="paid-uid")
    yield
    order_paid.disconnect(on_paid, sender="payments")
    order_paid.disconnect(sender=Product, dispatch_uid="paid-uid")


def run(*args):
    out = StringIO()
    call_command("trail", "signals", *args, stdout=out)
    return out.getvalue()


def signals_json(*args):
    return {entry["signal"]: entry for entry in json.loads(run("--json", *args))}


def receivers_of(entry, receiver):
    return [r for r in entry["receivers"] if r["receiver"] == receiver]


def test_json_lists_the_trail_receivers_with_their_senders():
    data = signals_json()
    post = data["django.db.models.signals.post_delete"]
    assert post["class"] == "django.db.models.signals.ModelSignal"
    [capture] = [
        r
        for r in receivers_of(post, "signaltrail.capture.on_post_delete")
        if r["sender"] == "testapp.Product"
    ]
    assert capture["weak"] is False
    assert capture["is_async"] is False
    assert capture["dispatch_uid"] == "signaltrail.capture:testapp.Product"
    assert capture["file"].endswith(os.path.join("signaltrail", "capture.py"))
    assert isinstance(capture["line"], int)
    senders = {r["sender"] for r in receivers_of(post, "signaltrail.capture.on_post_delete")}
    assert {"testapp.Product", "testapp.DiscountedProduct", "testapp.Category"} <= senders


def test_json_lists_the_auth_receivers():
    logged_in = signals_json()["django.contrib.auth.signals.user_logged_in"]
    [trail] = receivers_of(logged_in, "signaltrail.auth.on_logged_in")
    assert trail["sender"] == "any"
    assert trail["weak"] is True
    assert trail["dispatch_uid"] == "signaltrail.auth"
    [django_own] = receivers_of(logged_in, "django.contrib.auth.models.update_last_login")
    assert django_own["dispatch_uid"] == "update_last_login"


def test_json_maps_senders_and_keys_back(paid_receivers):
    entry = signals_json()[f"{__name__}.order_paid"]
    [weak] = receivers_of(entry, f"{__name__}.on_paid")
    [strong] = receivers_of(entry, f"{__name__}.on_paid_strong")
    assert re.fullmatch(r"id 0x[0-9a-f]+", weak["sender"])
    assert weak["weak"] is True
    assert weak["dispatch_uid"] is None
    assert strong["sender"] == "testapp.Product"
    assert strong["weak"] is False
    assert strong["dispatch_uid"] == "paid-uid"
    assert strong["line"] == on_paid_strong.__code__.co_firstlineno


def test_human_output_has_a_table_per_signal():
    out = run()
    post_delete_table = out.split("django.db.models.signals.post_delete", 1)[1]
    post_delete_table = post_delete_table.split("└", 1)[0]
    assert re.search(
        r"signaltrail\.capture\.on_post_delete\s*│\s*signaltrail[/\\]capture\.py:\d+\s*│"
        r"\s*testapp\.Product\s*│\s*strong\s*│\s*signaltrail\.capture:testapp\.Product",
        post_delete_table,
    )
    assert "signaltrail.auth.on_logged_in" in out
    assert "django.contrib.auth.models.update_last_login" in out
    assert "No receivers:" in out  # signals nobody listens to are named too


def test_signal_filter_by_short_or_dotted_name():
    assert list(signals_json("--signal", "post_save")) == ["django.db.models.signals.post_save"]
    both = signals_json(
        "--signal", "django.contrib.auth.signals.user_logged_in", "--signal", "post_save"
    )
    assert sorted(both) == [
        "django.contrib.auth.signals.user_logged_in",
        "django.db.models.signals.post_save",
    ]
    out = run("--signal", "user_logged_out")
    assert "signaltrail.auth.on_logged_out" in out
    assert "post_save" not in out


def test_on_commit_receivers_show_the_decorated_function():
    import signaltrail
    from signaltrail.toolkit.receivers import disconnect

    @signaltrail.on_commit(post_save, sender=Product)
    def notify(sender, **kwargs):
        pass

    try:
        post = signals_json("--signal", "post_save")["django.db.models.signals.post_save"]
    finally:
        disconnect(post_save, notify, sender=Product)
    [entry] = receivers_of(post, f"{__name__}.{notify.__qualname__}")
    assert entry["line"] == notify.__code__.co_firstlineno
    assert entry["dispatch_uid"].startswith("signaltrail.on_commit:")


def test_unknown_signal_is_a_clear_error():
    with pytest.raises(CommandError, match=r"No signal named 'post_sav'.*post_save"):
        run("--signal", "post_sav")


def test_unknown_signal_from_the_command_line_exits_non_zero_without_traceback():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
    }
    result = subprocess.run(
        # --skip-checks: the test settings name databases that exist only as test
        # databases, and MySQL's system checks connect to the database.
        [sys.executable, "-m", "django", "trail", "--skip-checks", "signals", "--signal", "nope"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "No signal named 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains_the_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        call_command("trail", "signals", "--help")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--json" in text
    assert "--signal NAME" in text
    assert "dispatch_uid" in text
