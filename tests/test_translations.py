"""signaltrail speaks Indonesian, completely, and its compiled catalog is the one shipped.

The package ships ``locale/id/LC_MESSAGES/django.po`` and the ``.mo`` Django
reads at run time. These tests catch the ways such a translation rots:

- a user-facing string added or changed in the code without re-running
  ``makemessages`` (its msgid is missing from the ``.po``, so it shows in English);
- an entry left empty or fuzzy (both show in English: msgfmt drops them);
- a translation that loses or renames a placeholder (``%(id)s``, ``{name}``),
  which raises KeyError or TypeError when the message is formatted;
- a ``.po`` edited without re-running ``compilemessages`` (the stale ``.mo`` is
  what users get);

and then check, end to end, that real pages and messages come out in Indonesian.
Updating the catalog, from ``src/signaltrail/``::

    django-admin makemessages -l id --add-location file
    django-admin compilemessages -l id
"""

from __future__ import annotations

import ast
import gettext
import io
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

import signaltrail
from signaltrail.exceptions import AppendOnlyError, RevertError
from signaltrail.models import Action, Event
from tests.testapp.models import Product

PACKAGE = Path(signaltrail.__file__).resolve().parent
MESSAGES = PACKAGE / "locale" / "id" / "LC_MESSAGES"
PO = MESSAGES / "django.po"
MO = MESSAGES / "django.mo"

# makemessages runs xgettext, msguniq and msgmerge; compiling runs msgfmt.
EXTRACT_TOOLS = ("xgettext", "msguniq", "msgmerge")
needs_extract_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in EXTRACT_TOOLS),
    reason="GNU gettext (xgettext, msguniq, msgmerge) is not installed: "
    "apt-get install gettext (.ci/run installs it)",
)
needs_msgfmt = pytest.mark.skipif(
    shutil.which("msgfmt") is None,
    reason="GNU gettext's msgfmt is not installed: apt-get install gettext (.ci/run installs it)",
)


# -- a small .po reader -------------------------------------------------------------


@dataclass
class Entry:
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # msgstr is index 0
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)


def read_po(path: Path) -> list[Entry]:
    """The entries of a .po file, header included (msgid "").

    Enough of the format for what makemessages writes: comments, flags,
    msgctxt, msgid, msgid_plural, msgstr / msgstr[n], continued lines and
    obsolete (``#~``) entries. An entry ends at a blank line, at a comment
    after its keywords, or where the next msgctxt/msgid begins.
    """
    entries: list[Entry] = []
    entry, seen = Entry(), set()  # seen: the keywords the current entry has
    target: tuple[str, int] | None = None

    def finish() -> None:
        nonlocal entry, seen, target
        if seen:
            entries.append(entry)
        entry, seen, target = Entry(), set(), None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
        if not line:
            finish()
        elif line.startswith("#"):
            if seen:
                finish()
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith('"'):
            assert target is not None, f"{path}: a continued line without keyword: {raw!r}"
            name, index = target
            value = ast.literal_eval(line)
            if name == "msgstr":
                entry.msgstr[index] += value
            else:
                setattr(entry, name, getattr(entry, name) + value)
        else:
            keyword, _, rest = line.partition(" ")
            match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
            name, index = ("msgstr", int(match[1])) if match else (keyword, 0)
            assert name in ("msgctxt", "msgid", "msgid_plural", "msgstr"), raw
            if name in ("msgctxt", "msgid") and "msgid" in seen:
                finish()
            seen.add(name)
            entry.obsolete = entry.obsolete or obsolete
            value = ast.literal_eval(rest)
            if name == "msgstr":
                entry.msgstr[index] = value
            else:
                setattr(entry, name, value)
            target = (name, index)
    finish()
    return entries


def messages(entries: list[Entry]) -> dict[tuple[str | None, str], Entry]:
    """The live entries (no header, no obsolete ones) by (msgctxt, msgid)."""
    return {e.key: e for e in entries if e.msgid and not e.obsolete}


# %(name)s, %s, %r, %5.2f ... (not %%); and str.format fields: {name}, {0}, {}, {x!r:>5}.
PRINTF = re.compile(r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
BRACES = re.compile(r"(?<!\{)\{(?P<field>[^{}]*)\}(?!\})")


def placeholders(text: str) -> tuple[Counter[str], list[str], Counter[str]]:
    """(named %-placeholders, positional %-placeholders in order, {}-fields)."""
    named: Counter[str] = Counter()
    positional: list[str] = []
    for match in PRINTF.finditer(text):
        spec = match.group(0)
        if spec == "%%":
            continue
        if match.group("name") is not None:
            named[spec] += 1
        else:
            positional.append(spec)
    return named, positional, Counter(m.group(0) for m in BRACES.finditer(text))


# -- (1) the .po is complete, finished and consistent ----------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str | None, str], Entry]:
    """What makemessages finds in the package today, extracted from a scratch copy.

    The copy has an empty locale directory, so nothing is merged in: every
    translatable string of the code, and only those.
    """
    copy = tmp_path_factory.mktemp("extract") / "signaltrail"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "locale"))
    (copy / "locale").mkdir()
    # Run as the maintainers do, from the package directory without settings
    # (makemessages configures its own): never against this test run's state.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "id", "--add-location", "file"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return messages(read_po(copy / "locale" / "id" / "LC_MESSAGES" / "django.po"))


@pytest.fixture(scope="module")
def committed() -> list[Entry]:
    assert PO.is_file(), f"{PO} is missing"
    return read_po(PO)


def test_the_po_reader_reads_what_makemessages_writes(tmp_path: Path) -> None:
    """The checks below are only as good as the reader: prove it on each construct."""
    po = tmp_path / "sample.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: id\\n"\n\n'
        "#: a.py\n#, fuzzy, python-format\n"
        'msgid ""\n"Event %(id)s is "\n"gone."\nmsgstr "Peristiwa %(id)s hilang."\n\n'
        'msgctxt "month"\nmsgid "May"\nmsgstr "Mei"\n'
        'msgid "one"\nmsgid_plural "many"\nmsgstr[0] "satu"\nmsgstr[1] ""\n\n'
        '#~ msgid "old"\n#~ msgstr "lama"\n',
        encoding="utf-8",
    )
    header, long, may, plural, old = read_po(po)

    assert header.msgid == "" and "Language: id" in header.msgstr[0]
    assert (long.msgid, long.msgstr, long.flags) == (
        "Event %(id)s is gone.",
        {0: "Peristiwa %(id)s hilang."},
        {"fuzzy", "python-format"},
    )
    assert (may.key, may.msgstr) == (("month", "May"), {0: "Mei"})
    assert (plural.msgid_plural, plural.msgstr) == ("many", {0: "satu", 1: ""})
    assert old.obsolete and not long.obsolete
    assert list(messages([header, long, may, plural, old])) == [
        (None, "Event %(id)s is gone."),
        ("month", "May"),
        (None, "one"),
    ]
    assert placeholders("%(id)s of %(n)d: %s %r, 100%%, {name} {0!r}") == (
        Counter({"%(id)s": 1, "%(n)d": 1}),
        ["%s", "%r"],
        Counter({"{name}": 1, "{0!r}": 1}),
    )


@needs_extract_tools
def test_the_po_has_exactly_the_strings_of_the_code(extracted, committed) -> None:
    """A string missing from the .po shows in English; one the code lost is dead weight."""
    ours = messages(committed)
    missing = sorted(set(extracted) - set(ours), key=str)
    stale = sorted(set(ours) - set(extracted), key=str)

    assert extracted, "makemessages found no translatable string in the package"
    assert not missing, (
        f"msgids missing from {PO} (run makemessages, then translate them): {missing}"
    )
    assert not stale, f"msgids in {PO} that the code no longer has (run makemessages): {stale}"
    for key, entry in extracted.items():
        assert ours[key].msgid_plural == entry.msgid_plural, key


def test_every_message_is_translated_and_none_is_fuzzy(committed) -> None:
    header = [e for e in committed if e.msgid == "" and e.msgctxt is None]
    assert len(header) == 1
    assert "fuzzy" not in header[0].flags, "a fuzzy header is dropped by msgfmt"
    assert "Language: id\n" in header[0].msgstr[0]
    assert "Plural-Forms: nplurals=1; plural=0;" in header[0].msgstr[0]

    live = messages(committed).values()
    assert live
    fuzzy = [e.msgid for e in live if "fuzzy" in e.flags]
    empty = [e.msgid for e in live if not e.msgstr or not all(e.msgstr.values())]
    assert not fuzzy, f"fuzzy entries (check the translation, then drop the flag): {fuzzy}"
    assert not empty, f"untranslated entries: {empty}"


def test_translations_keep_every_placeholder(committed) -> None:
    """A placeholder lost or renamed in a translation breaks its message when formatted."""
    wrong = []
    for entry in messages(committed).values():
        # One plural form in Indonesian: msgstr[0] stands for every count.
        source = placeholders(entry.msgid_plural or entry.msgid)
        for text in entry.msgstr.values():
            named, positional, braces = placeholders(text)
            if (named, positional, braces) != source:
                wrong.append((entry.msgid, text))
    assert not wrong, f"placeholders differ between msgid and msgstr: {wrong}"


@needs_msgfmt
def test_msgfmt_accepts_the_po(tmp_path: Path) -> None:
    """msgfmt --check: the header, and each python-format entry's format string."""
    result = subprocess.run(
        ["msgfmt", "--check", "-o", str(tmp_path / "check.mo"), str(PO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


# -- (2) the shipped .mo is the compiled .po -----------------------------------------


@needs_msgfmt
def test_the_mo_is_compiled_from_the_current_po(tmp_path: Path) -> None:
    """The .mo is what users get: compared as catalogs, not bytes (msgfmt versions differ)."""
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check-format", "-o", str(fresh), str(PO)], check=True)
    assert MO.is_file(), f"{MO} is missing (run compilemessages)"

    with MO.open("rb") as shipped_file, fresh.open("rb") as fresh_file:
        shipped = gettext.GNUTranslations(shipped_file)
        compiled = gettext.GNUTranslations(fresh_file)

    assert shipped._catalog == compiled._catalog, (
        f"{MO} is out of date: run compilemessages -l id in {PACKAGE}"
    )
    assert len(compiled._catalog) > 1  # more than the header


# -- (3) what users see, in Indonesian ------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_language():
    """LocaleMiddleware activates the request's language and never deactivates it:
    put back whatever was active so later tests still run in English."""
    with translation.override(translation.get_language()):
        yield


def test_model_and_app_labels_are_indonesian() -> None:
    from django.apps import apps

    with translation.override("id"):
        assert str(Event._meta.verbose_name) == "peristiwa"
        assert str(Event._meta.get_field("actor").verbose_name) == "pelaku"
        assert str(Event._meta.get_field("changes").verbose_name) == "perubahan"
        assert str(apps.get_app_config("signaltrail").verbose_name) == "Jejak audit"
        assert str(Action.UPDATE.label) == "pembaruan"
        assert str(Action.LOGIN_FAILED.label) == "gagal masuk"
    # The stored values are data: they never change with the language.
    assert Action.UPDATE.value == "update"
    with translation.override("en"):
        assert str(Event._meta.verbose_name) == "event"


def test_append_only_error_is_indonesian() -> None:
    with translation.override("id"), pytest.raises(AppendOnlyError) as excinfo:
        Event.objects.all().delete()
    assert str(excinfo.value) == (
        "Peristiwa audit hanya dapat ditambahkan: peristiwa tidak dapat dihapus."
    )


@pytest.mark.django_db
def test_revert_error_is_indonesian_and_keeps_its_values() -> None:
    product = Product.objects.create(name="Lamp", price="10.00")
    signaltrail.record("exported", obj=product)
    custom = signaltrail.history(product).get(action="exported")

    with translation.override("id"), pytest.raises(RevertError) as excinfo:
        signaltrail.revert(custom)

    assert str(excinfo.value) == "Peristiwa bertipe exported tidak dapat dikembalikan."


@pytest.fixture
def admin_client(client, django_user_model, settings):
    """A superuser's client on a site that picks the language per request."""
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(
        middleware.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
        "django.middleware.locale.LocaleMiddleware",
    )
    settings.MIDDLEWARE = middleware
    user = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("chosen_by", ["Accept-Language", "cookie"])
def test_admin_event_list_is_indonesian(admin_client, settings, chosen_by) -> None:
    product = Product.objects.create(name="Lamp", price="10.00")
    product.price = "12.50"
    product.save()
    if chosen_by == "cookie":
        admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "id"
        headers = {}
    else:
        headers = {"Accept-Language": "id"}

    response = admin_client.get(reverse("admin:signaltrail_event_changelist"), headers=headers)

    assert response.status_code == 200
    html = response.content.decode()
    # Django's own "Select %s to view" in Indonesian, with our verbose name in it.
    assert "<title>Pilih peristiwa untuk melihat |" in html
    assert "Jejak audit" in html  # the app, in the sidebar and breadcrumbs
    assert ">Aksi</a>" in html  # the action column's header
    assert ">pembaruan</td>" in html and ">pembuatan</td>" in html  # action labels
    assert "Berdasarkan aksi" in html  # the action filter's title
    assert '?action=update">pembaruan</a>' in html  # ...filtering on the stored value


@pytest.mark.django_db
def test_admin_event_detail_is_indonesian(admin_client) -> None:
    product = Product.objects.create(name="Lamp", price="10.00")
    product.price = "12.50"
    product.save()
    event = signaltrail.history(product).first()
    url = reverse("admin:signaltrail_event_change", args=[event.pk])

    html = admin_client.get(url, headers={"Accept-Language": "id"}).content.decode()

    assert "<th>bidang</th><th>nilai lama</th><th>nilai baru</th>" in html
    assert "<tr><td>price</td><td>10.00</td><td>12.50</td></tr>" in html  # data as stored
    assert "Pelaku" in html and "Perubahan" in html


@pytest.mark.django_db
def test_trail_verify_reports_in_indonesian() -> None:
    Product.objects.create(name="Lamp")
    out = io.StringIO()

    with translation.override("id"):
        call_command("trail", "verify", "--no-progress", stdout=out)

    total = Event.objects.count()
    assert f"Jejak audit utuh: {total} peristiwa terverifikasi." in out.getvalue()


def test_trail_signals_table_is_indonesian() -> None:
    out = io.StringIO()

    with translation.override("id"):
        call_command("trail", "signals", "--signal", "post_save", stdout=out)

    text = out.getvalue()
    for header in ("penerima", "didefinisikan di", "pengirim", "referensi"):
        assert header in text
    assert "kuat" in text  # signaltrail's own receivers are strong references


def test_trail_help_is_indonesian() -> None:
    """The help is built when the parser is, in the language active then."""
    from signaltrail.management.commands.trail import Command

    with translation.override("id"):
        text = Command().create_parser("manage.py", "trail").format_help()
    assert "Bekerja dengan jejak audit." in text
    assert "Periksa integritas jejak audit" in text  # the verify subcommand's help

    with translation.override("en"):
        assert "Work with the audit trail." in Command().create_parser("m", "trail").format_help()


@pytest.mark.django_db
def test_trail_errors_are_indonesian() -> None:
    from django.core.management import CommandError

    with translation.override("id"), pytest.raises(CommandError) as excinfo:
        call_command("trail", "verify", "--database", "nope")
    assert str(excinfo.value).startswith("Alias basis data 'nope' tidak dikenal.")
