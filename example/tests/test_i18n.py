"""The Indonesian translation is complete, up to date with the code, and compiled.

These use GNU gettext (msgfmt, xgettext), as `manage.py makemessages` and
`compilemessages` do; they are skipped, saying so, where it is not installed.
"""

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import EXAMPLE_DIR

PO = EXAMPLE_DIR / "locale" / "id" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")

needs_gettext = pytest.mark.skipif(
    not (shutil.which("msgfmt") and shutil.which("xgettext")),
    reason="GNU gettext is not installed (apt-get install gettext)",
)

# Words that are the same in both languages.
SAME_IN_BOTH = {"Email", "email", "emails", "Admin", "Model", "slug", "status", "tag"}


def entries(path):
    """{msgid: [msgstr, ...]} of a .po file (plural forms in order)."""
    found = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?) (".*")$', line)
            if match:
                key = match.group(1)
                fields[key] = ""
                line = match.group(2)
            fields[key] += ast.literal_eval(line)
        if fields.get("msgid"):
            found[fields["msgid"]] = [
                v for k, v in sorted(fields.items()) if k.startswith("msgstr")
            ]
    return found


@needs_gettext
def test_every_message_is_translated_and_none_is_fuzzy():
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+ translated messages\.\n", result.stderr), result.stderr
    assert "#, fuzzy" not in PO.read_text(encoding="utf-8")
    untranslated = {
        msgid: strs
        for msgid, strs in entries(PO).items()
        if not all(strs) or (strs[0] == msgid and msgid not in SAME_IN_BOTH)
    }
    assert untranslated == {}


@needs_gettext
def test_the_catalogue_has_every_string_of_the_code_and_no_stale_one(tmp_path):
    """makemessages on a copy of the project finds exactly the committed msgids."""
    copy = tmp_path / "example"
    shutil.copytree(
        EXAMPLE_DIR,
        copy,
        ignore=shutil.ignore_patterns(
            "tests", "media", "staticfiles", "__pycache__", "*.sqlite3*", ".pytest_cache"
        ),
    )
    result = subprocess.run(
        [sys.executable, str(copy / "manage.py"), "makemessages", "-l", "id", "--no-location"],
        cwd=copy,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shop.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    fresh = entries(copy / "locale" / "id" / "LC_MESSAGES" / "django.po")
    assert set(fresh) == set(entries(PO))


@needs_gettext
def test_the_compiled_catalogue_matches_the_po_file(tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(PO)], check=True)
    with MO.open("rb") as committed, compiled.open("rb") as fresh:
        assert (
            gettext.GNUTranslations(committed)._catalog == gettext.GNUTranslations(fresh)._catalog
        )
