"""Django settings for the signaltrail test suite.

SIGNALTRAIL_TEST_DB picks the database: "sqlite" (default), "postgres" or "mariadb".
How the server is found or started is in tests/servers.py.

If the chosen database is unavailable, these settings still import (on SQLite) and
SIGNALTRAIL_TEST_SKIP_REASON says why; tests/conftest.py then skips every test.

Two aliases, "default" and "other", point to two databases of the same engine:
tests use "other" to prove that events are written to the alias of the change.
"""

import importlib.util
import os
import secrets

from django.core.exceptions import ImproperlyConfigured

from tests import servers

SECRET_KEY = "signaltrail-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("id", "Indonesian")]
USE_I18N = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "signaltrail",
    "tests.testapp",
    "tests.bookshop",
]

# The Debug Toolbar panel (tests/test_debug_toolbar.py), when the optional package
# is installed. Only that panel is configured (no other panel instruments anything at
# start-up), and the toolbar's middleware is not in MIDDLEWARE: only those tests add
# it, so no other test's requests see the toolbar.
if importlib.util.find_spec("debug_toolbar") is not None:
    INSTALLED_APPS.append("debug_toolbar")
    DEBUG_TOOLBAR_PANELS = ["signaltrail.toolkit.debug_toolbar.SignalTracePanel"]
    SILENCED_SYSTEM_CHECKS = ["debug_toolbar.W001"]  # its middleware is added per test

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "signaltrail.middleware.TrailMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# -- databases ----------------------------------------------------------------

SIGNALTRAIL_TEST_DB = os.environ.get("SIGNALTRAIL_TEST_DB", "sqlite")
SIGNALTRAIL_TEST_SKIP_REASON = ""  # non-empty: conftest skips every test with it
SIGNALTRAIL_TEST_DB_NOTE = ""  # which server is used, for the pytest header

# Names of our own, so that concurrent runs on one server never collide.
_RUN = f"st_{os.getpid()}_{secrets.token_hex(3)}"
_ALIASES = {"default": _RUN, "other": f"{_RUN}_other"}

# SQLite: Django gives each alias its own in-memory test database.
_SQLITE = {
    alias: {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"} for alias in _ALIASES
}


def _on_server(server: dict) -> dict:
    """Both aliases on one server, each with its own database names."""
    return {
        alias: {**server, "NAME": name, "TEST": {**server.get("TEST", {}), "NAME": f"test_{name}"}}
        for alias, name in _ALIASES.items()
    }


if SIGNALTRAIL_TEST_DB == "sqlite":
    DATABASES = _SQLITE
    SIGNALTRAIL_TEST_DB_NOTE = "sqlite: in memory"
elif SIGNALTRAIL_TEST_DB in ("postgres", "mariadb"):
    _found = servers.postgres() if SIGNALTRAIL_TEST_DB == "postgres" else servers.mariadb()
    if _found.value is None:
        DATABASES = _SQLITE
        SIGNALTRAIL_TEST_SKIP_REASON = f"{SIGNALTRAIL_TEST_DB} unavailable: {_found.note}"
        SIGNALTRAIL_TEST_DB_NOTE = f"sqlite, as {SIGNALTRAIL_TEST_DB} is unavailable"
    else:
        _server = dict(_found.value)
        if SIGNALTRAIL_TEST_DB == "mariadb":
            _server["OPTIONS"] = {
                **_server.get("OPTIONS", {}),
                "charset": "utf8mb4",
                "isolation_level": "read committed",
            }
            _server["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
        DATABASES = _on_server(_server)
        SIGNALTRAIL_TEST_DB_NOTE = f"{SIGNALTRAIL_TEST_DB}: {_found.note}"
else:
    raise ImproperlyConfigured(
        f"SIGNALTRAIL_TEST_DB={SIGNALTRAIL_TEST_DB!r}: use sqlite, postgres or mariadb"
    )

DATABASE_ROUTERS = []
