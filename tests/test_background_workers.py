"""@signaltrail.in_background with real worker processes, a real relay and a real crash.

Every process here (the "web" process that saves, the workers, the relay)
is a subprocess with DJANGO_SETTINGS_MODULE=tests.background_app.settings,
on one database shared with this test process:

- PostgreSQL and MariaDB: the test database pytest-django created. The tests
  are transactional, so it is flushed after each one.
- SQLite: an in-memory database cannot be shared between processes, so the
  processes use a database file of their own, migrated once per module.

The receiver (tests/background_app/receivers.py) logs every call it gets to a
file (one JSON line per call, duplicates included) and leaves one Note per
idempotency key. Waits are bounded; every process started is stopped.
"""

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent
QUEUE = f"signaltrail-bg-{os.getpid()}-{secrets.token_hex(3)}"  # unique per test run
TIMEOUT = 60  # seconds any one process may take

shared = pytest.mark.django_db(transaction=True)


# -- the shared database and the processes ----------------------------------------


@pytest.fixture(scope="module")
def shared_db(django_db_setup, django_db_blocker, tmp_path_factory):
    """The DATABASES entry the subprocesses use, migrated (with django-tasks-db's tables)."""
    settings = connections["default"].settings_dict
    if settings["ENGINE"] == "django.db.backends.sqlite3":
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path_factory.mktemp("background") / "db.sqlite3"),
            # Several processes write to one file: wait for locks rather than fail.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    else:
        keys = ("ENGINE", "NAME", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")
        database = {key: settings[key] for key in keys if key in settings}
    _run(_env(database, mode="db"), "-m", "django", "migrate", "--no-input", "-v", "0")
    return database


class Processes:
    """Runs the scenario, workers and relay of one test, and keeps their log."""

    def __init__(self, database, tmp_path, redis=""):
        self.database = database
        self.log = tmp_path / "calls.jsonl"
        self.redis = redis
        self.started = []

    def env(self, mode):
        return {**_env(self.database, mode, self.redis), "SIGNALTRAIL_BG_LOG": str(self.log)}

    def run(self, *args, mode="db", check=True):
        return _run(self.env(mode), *args, check=check)

    def scenario(self, *args, mode="db", check=True):
        return self.run("-m", "tests.background_app.scenario", *args, mode=mode, check=check)

    def state(self, *names):
        return json.loads(self.scenario("state", *names).stdout)

    def db_worker(self):
        """django-tasks-db's worker: runs every task waiting in the queue, then exits."""
        return self.run(
            "-m", "django", "db_worker", "--batch", "--no-startup-delay", "--no-reload",
            "--backend", "db", "--queue-name", QUEUE,
        )  # fmt: skip

    def relay(self, *args, mode="db"):
        return self.run("-m", "django", "trail", "relay", *args, mode=mode)

    def calls(self, name=None):
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [c for c in lines if name is None or (c["instance"] or {}).get("name") == name]

    def start(self, *args, mode):
        process = Background(self.env(mode), *args)
        self.started.append(process)
        return process

    def stop_all(self):
        for process in self.started:
            process.stop()


class Background:
    """A long-running subprocess whose output is collected line by line."""

    def __init__(self, env, *args):
        self.process = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text, timeout=TIMEOUT):
        """Wait until a line contains ``text``; fail with the output so far if it doesn't."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        pytest.fail(f"no line with {text!r} within {timeout}s:\n{self.output}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    @property
    def output(self):
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


def _env(database, mode, redis=""):
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.background_app.settings",
        # tests/settings.py would start database servers for postgres/mariadb;
        # the database comes from SIGNALTRAIL_BG_DATABASE instead.
        "SIGNALTRAIL_TEST_DB": "sqlite",
        "SIGNALTRAIL_BG_DATABASE": json.dumps(database),
        "SIGNALTRAIL_BG_MODE": mode,
        "SIGNALTRAIL_BG_QUEUE": QUEUE,
        "SIGNALTRAIL_BG_REDIS": redis,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        "PYTHONUNBUFFERED": "1",
    }


def _run(env, *args, check=True):
    result = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def processes(shared_db, tmp_path):
    procs = Processes(shared_db, tmp_path)
    yield procs
    procs.stop_all()


def assert_done_once(procs, name, state):
    """The call of the product `name` ran exactly once, completely."""
    (call,) = procs.calls(name)
    assert call["sender"] == "testapp.Product"
    assert call["instance"]["name"] == name
    assert call["changes"]["name"] == name
    assert call["created"] is True and call["using"] == "default"
    assert f"bg:{call['idempotency_key']}" in state["notes"]
    assert state["calls"] == []  # the outbox row is gone once done
    return call


# -- django.tasks with the database backend (django-tasks-db) ------------------------


@shared
def test_a_database_backend_worker_runs_the_call_after_commit(processes):
    processes.scenario("save", "Lamp")
    (waiting,) = processes.state("Lamp")["calls"]
    assert waiting["status"] == "enqueued"  # handed over right after the commit
    assert processes.calls("Lamp") == []

    processes.db_worker()

    call = assert_done_once(processes, "Lamp", processes.state("Lamp"))
    assert call["idempotency_key"] == waiting["key"]


@shared
def test_a_process_killed_between_commit_and_hand_over_loses_nothing(processes):
    crashed = processes.scenario("crash", "Chair", check=False)
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr

    # The change and its pending call committed together; nothing was enqueued.
    state = processes.state("Chair")
    assert state["products"] == ["Chair"]
    (pending,) = state["calls"]
    assert (pending["status"], pending["attempts"]) == ("pending", 0)
    processes.db_worker()
    assert processes.calls("Chair") == []

    relayed = processes.relay("--once", "--grace", "0")
    assert "Relay done: sent 1, to retry 0, dead 0." in relayed.stdout
    processes.db_worker()
    call = assert_done_once(processes, "Chair", processes.state("Chair"))
    assert call["idempotency_key"] == pending["key"]

    # Relaying and working again changes nothing: delivered exactly once.
    assert "sent 0" in processes.relay("--once", "--grace", "0").stdout
    processes.db_worker()
    assert len(processes.calls("Chair")) == 1


@shared
def test_the_relay_runs_until_sigterm_and_stops_cleanly(processes):
    processes.scenario("crash", "Stool", check=False)
    relay = processes.start(
        "-m", "django", "trail", "relay", "--interval", "0.2", "--grace", "0", mode="db"
    )

    relay.wait_for("Stop with Ctrl-C or SIGTERM")
    relay.wait_for("sent 1, to retry 0, dead 0")
    assert relay.stop(signal.SIGTERM) == 0
    assert "SIGTERM: stopping after the call being sent." in relay.output
    assert "Relay stopped: sent 1, to retry 0, dead 0." in relay.output

    processes.db_worker()
    assert_done_once(processes, "Stool", processes.state("Stool"))


# -- RQ (django-tasks-rq) and Celery, on Redis -----------------------------------------


@shared
def test_an_rq_worker_runs_the_call(shared_db, tmp_path, redis_url):
    procs = Processes(shared_db, tmp_path, redis=redis_url)
    procs.scenario("save", "Desk", mode="rq")
    assert procs.state("Desk")["calls"][0]["status"] == "enqueued"

    # A worker as deployed, stopped once the call has run. Not --burst: rq's
    # burst worker sometimes never exits after its last job (it waits for
    # its pubsub thread in unsubscribe(), rq issue 1613), which says nothing
    # about the call.
    try:
        worker = procs.start(
            "-m", "django", "rqworker", "--job-class", "django_tasks_rq.Job", QUEUE, mode="rq"
        )
        worker.wait_for("product_saved (key")
        call = assert_done_once(procs, "Desk", procs.state("Desk"))
        assert call["pid"] != os.getpid()  # rq runs each job in a fork of the worker
    finally:
        procs.stop_all()


@shared
def test_a_celery_worker_runs_the_call(shared_db, tmp_path, redis_url):
    procs = Processes(shared_db, tmp_path, redis=redis_url)
    try:
        worker = procs.start(
            "-m", "celery", "-A", "tests.background_app.celery_app", "worker",
            "--pool", "solo", "--queues", QUEUE, "--hostname", f"{QUEUE}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
            mode="celery",
        )  # fmt: skip
        worker.wait_for("ready.")
        assert "signaltrail.run_call" in worker.output  # registered by in_background itself

        procs.scenario("save", "Shelf", mode="celery")
        worker.wait_for("product_saved (key")

        call = assert_done_once(procs, "Shelf", procs.state("Shelf"))
        assert call["pid"] == worker.process.pid
    finally:
        procs.stop_all()
    assert worker.process.returncode == 0, worker.output
