"""Settings of one benchmark worker, parametrized by the environment.

BENCH_CONTENDER: which auditing package is installed (see bench/spec.py).
BENCH_DATABASES: the DATABASES dict as JSON, written by bench/run.py: "default"
for every contender, plus "trail" (the seeded event table) for signaltrail.

Django can be configured once per process, and each package needs its own
INSTALLED_APPS and model registration: so one process per contender.
"""

import json
import os

from spec import CONTENDERS

CONTENDER = os.environ.get("BENCH_CONTENDER", "none")
if CONTENDER not in CONTENDERS:
    raise RuntimeError(f"BENCH_CONTENDER={CONTENDER!r} is not one of {sorted(CONTENDERS)}")

SECRET_KEY = "signaltrail-bench-not-secret"
DEBUG = False  # DEBUG=True would record every query in memory
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    *CONTENDERS[CONTENDER].apps,
    "benchproject.benchapp",
]

DATABASES = json.loads(
    os.environ.get(
        "BENCH_DATABASES",
        '{"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}',
    )
)

# signaltrail: the Product model and its tags, as a user would configure it.
SIGNALTRAIL = {"MODELS": {"benchapp.Product": {"m2m": ["tags"]}}, "AUTH_EVENTS": False}

# pghistory: benchapp has no migrations, so the worker installs the triggers with
# pgtrigger.install() once every table exists, not at each migrate.
PGTRIGGER_INSTALL_ON_MIGRATE = False
