"""DESIGN invariant 3: installing signaltrail on every model changes no ORM behaviour.

The bookshop workload (tests/bookshop/workload.py) runs twice, each time in
its own process and fresh test database: under tests.settings, where the
bookshop isn't tracked, and under tests.settings_all_models, where every
model (auth, bookshop, test app) is. The two descriptions of what the ORM
returned, raised and signalled must be identical. A separate process per run
because which models are tracked is fixed when Django starts.

The minimal reproductions at the end pin down, in-process, the differences
the workload found.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.signals import post_init, post_save

import signaltrail
from tests.bookshop.models import Genre
from tests.bookshop.workload import SECTIONS
from tests.testapp.models import Category, Note, Product, Tag

ROOT = Path(__file__).resolve().parent.parent
PLAIN = "tests.settings"
TRACKED = "tests.settings_all_models"

# The trail writes the change and its event in one transaction, opened
# around the row's write (Model._save_table) in autocommit mode and closed
# before post_save is sent: every post_save receiver, connected before or
# after the trail's tracking, runs after the commit, as without the trail.


def _child_env() -> dict[str, str]:
    """The environment for a workload process: the same database server.

    Without SIGNALTRAIL_POSTGRES_URL / SIGNALTRAIL_MARIADB_URL the parent may
    be using a throw-away server; hand its address to the child rather than
    have it start another one.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    db = settings.SIGNALTRAIL_TEST_DB
    var = {"postgres": "SIGNALTRAIL_POSTGRES_URL", "mariadb": "SIGNALTRAIL_MARIADB_URL"}.get(db)
    if var and not env.get(var):
        conf = settings.DATABASES["default"]
        scheme = "postgres" if db == "postgres" else "mysql"
        auth = quote(conf.get("USER") or "", safe="")
        if conf.get("PASSWORD"):
            auth += ":" + quote(conf["PASSWORD"], safe="")
        env[var] = f"{scheme}://{auth}@{conf['HOST']}:{conf['PORT']}/{db}"
    return env


def _run_workload(settings_module: str, out: Path) -> dict[str, Any]:
    env = {**_child_env(), "DJANGO_SETTINGS_MODULE": settings_module}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bookshop.runner", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"workload under {settings_module} failed:\n{proc.stderr}"
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both workload runs, once for the whole module (a few seconds each)."""
    tmp = tmp_path_factory.mktemp("workload")
    return {
        "plain": _run_workload(PLAIN, tmp / "plain.json"),
        "tracked": _run_workload(TRACKED, tmp / "tracked.json"),
    }


def _diff(plain: list[Any], tracked: list[Any], limit: int = 60) -> str:
    a = [json.dumps(e, sort_keys=True)[:400] for e in plain]
    b = [json.dumps(e, sort_keys=True)[:400] for e in tracked]
    lines = list(difflib.unified_diff(a, b, "untracked", "tracked", lineterm="", n=1))
    return "\n".join(lines[:limit])


# --------------------------------------------------------------------------
# The workload, with and without the trail
# --------------------------------------------------------------------------


INIT_SIGNALS = ("pre_init", "post_init")

# reprs.object_repr() runs the instance's __str__ (on a copy) for each
# event: a __str__ reading a deferred field or an uncached foreign key loads
# it, and Django sends pre_init/post_init for the loaded instance. The
# workload's "deferred" section saves and deletes such instances one by one
# (deletions of several rows no longer fetch: capture passes fetch=False).
STR_LOADS = pytest.mark.xfail(
    strict=True,
    reason="reprs.object_repr() loads what __str__ reads: extra pre_init/post_init",
)


@pytest.mark.parametrize("section", SECTIONS)
def test_workload_observes_the_same_with_every_model_tracked(
    runs: dict[str, dict[str, Any]], section: str
) -> None:
    """Return values, query results, instance state, errors, and the
    pre/post_save, pre/post_delete and m2m_changed signals user receivers
    got (with and without a sender) are the same, section by section."""
    plain = [e for e in runs["plain"]["sections"][section] if e.get("signal") not in INIT_SIGNALS]
    tracked = [
        e for e in runs["tracked"]["sections"][section] if e.get("signal") not in INIT_SIGNALS
    ]
    assert plain, f"section {section!r} observed nothing"
    assert plain == tracked, f"section {section!r} differs:\n{_diff(plain, tracked)}"


@pytest.mark.parametrize(
    "section",
    [pytest.param(s, marks=STR_LOADS) if s == "deferred" else s for s in SECTIONS],
)
def test_workload_init_signals_are_the_same(runs: dict[str, dict[str, Any]], section: str) -> None:
    """The pre_init/post_init user receivers got: one per instance the
    user's code (or Django for it) built, none for the trail's own work."""
    plain = _instances(runs["plain"]["sections"][section])
    tracked = _instances(runs["tracked"]["sections"][section])
    assert plain == tracked, f"section {section!r} differs:\n{_diff(plain, tracked)}"


def _instances(records: list[dict[str, Any]]) -> list[Any]:
    """The init signals as a sorted list of (pre_init, post_init) pairs.

    Which instances were built is what must match; the order rows come back
    from a query without ORDER BY (QuerySet.delete() clears the ordering
    before collecting) is the database's business: PostgreSQL's depends on
    where earlier UPDATEs put the new row versions.
    """
    inits = [e for e in records if e.get("signal") in INIT_SIGNALS]
    pairs = [inits[i : i + 2] for i in range(0, len(inits), 2)]
    return sorted(pairs, key=lambda pair: json.dumps(pair, sort_keys=True, default=str))


def test_comparison_is_not_vacuous(runs: dict[str, dict[str, Any]]) -> None:
    """The tracked run recorded events for the models the workload wrote; the
    untracked run recorded none for them (only the failed login, which is
    recorded whatever is tracked)."""
    tracked = runs["tracked"]["summary"]["by_model"]
    for label in [
        "auth.group",
        "auth.user",
        "bookshop.author",
        "bookshop.authorship",
        "bookshop.award",
        "bookshop.book",
        "bookshop.ebook",
        "bookshop.genre",
        "bookshop.publisher",
        "bookshop.review",
        "bookshop.reviewstat",
        "bookshop.store",
        "bookshop.taggeditem",
    ]:
        assert tracked.get(label, 0) > 0, f"no event recorded for {label}"
    untracked = runs["plain"]["summary"]["by_model"]
    assert not [label for label in untracked if label.startswith(("auth.", "bookshop."))]
    # Every signal a user receiver got in the workload is in the comparison:
    # it saw plenty of them.
    signals = [e for s in SECTIONS for e in runs["plain"]["sections"][s] if "signal" in e]
    assert {e["signal"] for e in signals} == {
        "pre_init",
        "post_init",
        "pre_save",
        "post_save",
        "pre_delete",
        "post_delete",
        "m2m_changed",
    }
    assert {e["receiver"] for e in signals} >= {"any", "bookshop.Book", "bookshop.Review"}


def test_known_operations_record_the_expected_events(runs: dict[str, dict[str, Any]]) -> None:
    """A few workload steps whose events are known exactly.

    genre "poetry" came from a fixture load (raw save); genre "ac" from a
    create whose post_save receivers then ran; store "Central" had books
    added from both sides, one removed, and was cleared from a book's side.
    """
    histories = runs["tracked"]["summary"]["histories"]
    assert histories["genre:poetry"] == [
        ["create", {"code": [None, "poetry"], "name": [None, "Poetry"]}]
    ]
    assert histories["genre:ac"] == [["create", {"code": [None, "ac"], "name": [None, "ac"]}]]
    assert histories["store:central"] == [
        ["create", {"id": [None, 1], "name": [None, "Central"]}],
        ["m2m_add", {"books": {"add": [1, 3, 4]}}],  # central.books.add(...)
        ["m2m_add", {"books": {"add": [2]}}],  # dispossessed.stores.add(central, ...)
        ["m2m_remove", {"books": {"remove": [4]}}],  # central.books.remove(stranger)
        ["m2m_remove", {"books": {"remove": [3]}}],  # good_omens.stores.clear()
    ]
    assert all(not h for h in runs["plain"]["summary"]["histories"].values())


def test_user_receivers_never_see_an_event(runs: dict[str, dict[str, Any]]) -> None:
    """Events are built and inserted without model signals (no pre_init,
    post_init, pre_save or post_save): a receiver connected without a sender
    never sees the trail's own rows."""
    assert runs["tracked"]["summary"]["total"] > 0
    assert runs["tracked"]["trail_signals"] == []
    assert runs["plain"]["trail_signals"] == []


@pytest.mark.parametrize("section", ["autocommit", "autocommit_early"])
def test_autocommit_receivers_observe_the_same(
    runs: dict[str, dict[str, Any]], section: str
) -> None:
    """Receivers of a plain save in autocommit mode: no transaction is open,
    on_commit callbacks run at once, an error they raise leaves the row
    saved, and they may catch a database error and carry on. "autocommit"
    has receivers connected by the workload (after the trail's);
    "autocommit_early" one connected when the bookshop's models are imported
    (before the trail's, see tests/bookshop/receivers.py)."""
    plain = runs["plain"]["sections"][section]
    tracked = runs["tracked"]["sections"][section]
    assert plain, f"section {section!r} observed nothing"
    assert plain == tracked, _diff(plain, tracked)


def test_check_passes_with_all_models(runs: dict[str, dict[str, Any]]) -> None:
    """``manage.py check`` (warnings count as failures) is clean with ALL_MODELS
    on this project, as it is without."""
    for name in ("plain", "tracked"):
        check = runs[name]["check"]
        assert check["ok"], check["output"]
        assert "System check identified no issues" in check["output"]


# --------------------------------------------------------------------------
# Minimal reproductions of what the workload found
# --------------------------------------------------------------------------
# The autocommit ones compare an untracked model (Note; Tag for the unique
# name) with a tracked one (Category) under the same receiver, connected by
# the test, so after the trail's.

MODELS = [
    pytest.param(Note, "text", id="untracked"),
    pytest.param(Category, "name", id="tracked"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("model", "field"), MODELS)
def test_error_in_post_save_receiver_leaves_the_row_saved(model: Any, field: str) -> None:
    """In autocommit, Django commits the row before post_save: a receiver
    that fails (an email server down) doesn't unsave it."""

    def fail(sender: Any, **kwargs: Any) -> None:
        raise ValueError("receiver failed")

    post_save.connect(fail, sender=model, weak=False, dispatch_uid="test:fail")
    try:
        with pytest.raises(ValueError, match="receiver failed"):
            model.objects.create(**{field: "saved"})
    finally:
        post_save.disconnect(sender=model, dispatch_uid="test:fail")
    assert model.objects.filter(**{field: "saved"}).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("model", "field"), MODELS)
def test_post_save_receiver_may_catch_a_database_error(model: Any, field: str) -> None:
    """ "Insert, or update if it exists" in a receiver works in autocommit.

    Inside the trail's atomic() the failed INSERT marks the transaction for
    rollback (Django's mark_for_rollback_on_error in save_base): the next
    query raises TransactionManagementError and the user's save is lost.
    """
    Tag.objects.create(name="counted")

    def upsert(sender: Any, **kwargs: Any) -> None:
        try:
            Tag.objects.create(name="counted")
        except IntegrityError:
            Tag.objects.filter(name="counted").update(name="counted")

    post_save.connect(upsert, sender=model, weak=False, dispatch_uid="test:upsert")
    try:
        model.objects.create(**{field: "saved"})
    finally:
        post_save.disconnect(sender=model, dispatch_uid="test:upsert")
    assert model.objects.filter(**{field: "saved"}).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("model", "field"), MODELS)
def test_post_save_receiver_runs_after_commit_in_autocommit(model: Any, field: str) -> None:
    """No transaction is open in the receiver (so a slow receiver holds no
    locks) and its on_commit callbacks run at once."""
    seen: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(("in transaction", connection.in_atomic_block))
        transaction.on_commit(lambda: seen.append("on_commit"))
        seen.append("receiver returns")

    post_save.connect(receiver, sender=model, weak=False, dispatch_uid="test:order")
    try:
        model.objects.create(**{field: "saved"})
    finally:
        post_save.disconnect(sender=model, dispatch_uid="test:order")
    assert seen == [("in transaction", False), "on_commit", "receiver returns"]


@pytest.fixture
def genre_tracked_now() -> Any:
    """bookshop.Genre (untracked under tests.settings) tracked from now on, so
    that a receiver the test connected first comes before the trail's; and
    untracked again after the test (its wrappers then do nothing)."""
    from signaltrail.registry import registry

    yield lambda: signaltrail.track(Genre)
    registry.unregister(Genre)


@pytest.mark.django_db(transaction=True)
def test_receiver_connected_before_the_trail_runs_after_commit(genre_tracked_now: Any) -> None:
    """A receiver connected before the trail's: its error leaves the row saved."""
    seen: list[bool] = []

    def fail(sender: Any, **kwargs: Any) -> None:
        seen.append(connection.in_atomic_block)
        raise ValueError("receiver failed")

    post_save.connect(fail, sender=Genre, weak=False, dispatch_uid="test:early")
    try:
        genre_tracked_now()
        with pytest.raises(ValueError, match="receiver failed"):
            Genre.objects.create(code="poetry", name="Poetry")
    finally:
        post_save.disconnect(sender=Genre, dispatch_uid="test:early")
    assert seen == [False]
    assert Genre.objects.filter(code="poetry").exists()


@pytest.mark.django_db
def test_init_receivers_see_nothing_of_the_trail() -> None:
    """A post_init receiver connected without a sender (a common pattern for
    "remember the loaded values") sees only the user's own instances: the
    trail's bookkeeping happens behind its back, as writer.py promises."""
    ContentType.objects.clear_cache()  # as in a fresh process
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(sender._meta.label)

    post_init.connect(receiver, weak=False, dispatch_uid="test:init")
    try:
        Category.objects.create(name="books")
    finally:
        post_init.disconnect(dispatch_uid="test:init")
    assert seen == ["testapp.Category"]


@pytest.mark.django_db
def test_saving_an_f_expression_is_recorded() -> None:
    """``obj.stock = F("stock") + 1; obj.save()`` is an update like any other.

    Since Django 6.0, save() replaces the expression with the value the
    database returns (UPDATE ... RETURNING) or, where UPDATE can't return
    rows (MariaDB, MySQL), removes the attribute from the instance: by
    post_save the expression is gone either way. The workload found the
    MariaDB case unrecorded (fixed in capture.py since).
    """
    product = Product.objects.create(name="widget", stock=1)
    product.stock = F("stock") + 1
    product.save()
    assert signaltrail.history(product).first().changes == {"stock": [1, 2]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda pk: Product.objects.get(pk=pk), id="foreign-key-in-str"),
        pytest.param(lambda pk: Product.objects.only("stock").get(pk=pk), id="deferred-in-str"),
    ],
)
@pytest.mark.xfail(
    strict=True,
    reason="reprs.object_repr() runs __str__ on a copy, which loads what __str__ "
    "reads (a foreign key, a deferred field): Django sends pre_init/post_init for it",
)
def test_saving_sends_no_init_signals_for_what_str_reads(load: Any) -> None:
    """Product.__str__ follows its category. Saving a product loaded without
    it creates no instance in Django (no post_init): the event's
    object_repr mustn't either, or user receivers see instances the user's
    code never loaded (and each save or deleted row costs a query)."""
    product = Product.objects.create(name="Spade", category=Category.objects.create(name="Tools"))
    loaded = load(product.pk)
    ContentType.objects.get_for_model(Product)  # warm: not what this test is about
    seen: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(sender._meta.label)

    post_init.connect(receiver, weak=False, dispatch_uid="test:str")
    try:
        loaded.stock = 5
        loaded.save()
    finally:
        post_init.disconnect(dispatch_uid="test:str")
    assert [label for label in seen if label != "signaltrail.Event"] == []


@pytest.mark.django_db
def test_update_through_a_multi_valued_join_records_each_row_once() -> None:
    """Django updates the one product (and says 1) when the filter joins two
    of its tags; the trail must record one event for it, not one per tag."""
    product = Product.objects.create(name="Spade")
    product.tags.add(Tag.objects.create(name="garden"), Tag.objects.create(name="tools"))

    updated = Product.objects.filter(tags__name__in=["garden", "tools"]).update(stock=5)

    assert updated == 1
    updates = signaltrail.history(product).filter(action="update")
    assert list(updates.values_list("changes", flat=True)) == [{"stock": [0, 5]}]
