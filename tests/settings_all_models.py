"""The test settings with the trail installed on every model (ALL_MODELS).

Used by tests/test_orm_invariance.py: the bookshop workload run under these
settings must behave exactly as under tests.settings, where the bookshop is
not tracked. Nothing is excluded beyond what signaltrail always leaves out
(its own Event, sessions, content types, admin log, migrations).

INSTALLED_APPS keeps the order of tests.settings: post_migrate creates
content types and permissions app by app, so another order would give them
other primary keys, and the workload's results would differ for that alone.
"""

from tests.settings import *  # noqa: F403

if "tests.bookshop" not in INSTALLED_APPS:  # noqa: F405
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.bookshop"]  # noqa: F405

SIGNALTRAIL = {"ALL_MODELS": True, "EXCLUDE_MODELS": []}
