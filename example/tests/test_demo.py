"""What `make demo` runs: load_demo, then rundemo (web server + worker, Ctrl-C stops both)."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import pytest
from catalog.models import Product, ProductImage
from django.contrib.auth import authenticate, get_user_model
from django.core import mail
from django.core.management import call_command
from tasks.models import Task, TaskStats

import signaltrail
from signaltrail.models import Event

from .conftest import EXAMPLE_DIR, free_port, manage


@pytest.mark.django_db
def test_load_demo_loads_users_catalogue_tasks_and_some_history(
    media, django_capture_on_commit_callbacks, capsys
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo")

    for name in ("admin", "alice", "bob"):
        assert authenticate(username=name, password="signaltrail-demo") is not None
    assert get_user_model().objects.get(username="admin").is_staff
    assert Product.objects.count() == 7
    assert all(os.path.exists(i.image.path) for i in ProductImage.objects.all())
    assert Task.objects.filter(status=Task.Status.IN_PROGRESS).exists()
    assert TaskStats.objects.get(user__username="bob").completed == 1

    paused = Event.objects.get(action="trail_paused")
    assert paused.context["reason"] == "demo data"
    assert paused.changes["skipped"]["catalog.Product"] >= 6  # the six products, at least
    hammer = Product.objects.get(name="Hammer")
    drop = signaltrail.history(hammer).filter(action="update").get()
    assert (drop.actor_label, drop.changes) == ("admin", {"price": ["12.50", "9.99"]})
    assert hammer.price == Decimal("9.99")

    subjects = sorted((m.to[0], m.subject) for m in mail.outbox)
    assert ("alice@example.com", "Price drop: Hammer") in subjects
    assert ("alice@example.com", "New in the shop: Garden gloves") in subjects
    assert ("alice@example.com", "Task completed: Photograph the garden gloves") in subjects
    assert ("bob@example.com", "Penurunan harga: Hammer") in subjects  # bob reads Indonesian
    assert not [s for _, s in subjects if "Rake" in s]  # its price rose: no email
    assert "Log in as admin / signaltrail-demo" in capsys.readouterr().out


@pytest.mark.django_db
def test_load_demo_twice_changes_nothing(media, capsys):
    call_command("load_demo")
    events = Event.objects.count()
    call_command("load_demo")
    assert Event.objects.count() == events
    assert "Demo data already loaded." in capsys.readouterr().out


def test_rundemo_serves_pages_runs_the_worker_and_ctrl_c_stops_everything(tmp_path):
    """`make demo` in small: migrate, load_demo, rundemo; then Ctrl-C."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "SHOP_DB": str(tmp_path / "demo.sqlite3"),
        "SHOP_MEDIA_ROOT": str(tmp_path / "media"),
    }
    env.pop("SHOP_SMTP_PORT", None)
    for command in (("migrate", "--no-input"), ("load_demo",)):
        result = manage(*command, env=env)
        assert result.returncode == 0, result.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLE_DIR / "manage.py"), "rundemo", f"127.0.0.1:{port}"],
        env=env,
        cwd=EXAMPLE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        pids = [int(re.search(r"pid (\d+)", server.stdout.readline()).group(1)) for _ in "wr"]
        page = wait_for(lambda: fetch(f"http://127.0.0.1:{port}/"))
        assert "Garden gloves" in page
        # The worker sends the emails load_demo queued into the mailbox.
        sent = wait_for(lambda: count_rows(tmp_path / "demo.sqlite3", "inbox_message"))
        assert sent > 0

        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C does
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    for pid in pids:  # the worker and the relay
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def wait_for(probe, timeout=60):
    """Poll ``probe`` until it returns something truthy (a bounded wait, not a timing test)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout}s")
        time.sleep(0.2)


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def count_rows(path, table):
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
