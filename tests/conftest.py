"""Suite-wide pytest hooks and generic fixtures (nothing model-specific here).

Environment variables (see also tests/settings.py and tests/servers.py):

- SIGNALTRAIL_TEST_DB: sqlite (default), postgres or mariadb.
- SIGNALTRAIL_POSTGRES_URL, SIGNALTRAIL_MARIADB_URL, SIGNALTRAIL_REDIS_URL: servers to
  use; without them a throw-away server is started from the installed binaries.
- SIGNALTRAIL_TEST_NO_SERVERS=1: never start throw-away servers.
- SIGNALTRAIL_TEST_REQUIRE_DB=1: an unavailable database or Redis is an error, not a
  skip. CI sets it, so that a missing server cannot pass as green.
"""

import os

import pytest
from django.conf import settings

from tests import servers


def _required() -> bool:
    return os.environ.get("SIGNALTRAIL_TEST_REQUIRE_DB") == "1"


# -- database selection: skip everything if it is unavailable ------------------


def pytest_configure(config: pytest.Config) -> None:
    reason = settings.SIGNALTRAIL_TEST_SKIP_REASON
    if reason and _required():
        raise pytest.UsageError(f"{reason} (and SIGNALTRAIL_TEST_REQUIRE_DB=1)")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"signaltrail test database: {settings.SIGNALTRAIL_TEST_DB_NOTE}"]
    if reason := settings.SIGNALTRAIL_TEST_SKIP_REASON:
        lines.append(f"signaltrail: SKIPPING ALL TESTS: {reason}")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if reason := settings.SIGNALTRAIL_TEST_SKIP_REASON:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Printed even under -q; `make test` looks for it to report the run as skipped.
    if reason := settings.SIGNALTRAIL_TEST_SKIP_REASON:
        terminalreporter.write_line(f"signaltrail: ALL TESTS SKIPPED: {reason}", yellow=True)


# -- generic fixtures ---------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL (a throw-away server unless SIGNALTRAIL_REDIS_URL is set).

    Skips the test if there is no Redis, or fails under SIGNALTRAIL_TEST_REQUIRE_DB=1.
    """
    found = servers.redis_url()
    if found.value is None:
        if _required():
            pytest.fail(f"Redis unavailable: {found.note}")
        pytest.skip(f"Redis unavailable: {found.note}")
    return found.value


@pytest.fixture
def connect():
    """Connect receivers for one test and disconnect them afterwards."""
    done = []

    def _connect(signal, receiver, sender=None):
        signal.connect(receiver, sender=sender, weak=False)
        done.append((signal, receiver, sender))
        return receiver

    yield _connect
    for signal, receiver, sender in done:
        signal.disconnect(receiver, sender=sender)
