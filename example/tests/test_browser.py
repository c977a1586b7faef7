"""A person's path through the shop, in a real browser.

Playwright drives Debian's headless Chromium (/usr/bin/chromium); it never
downloads a browser. Skipped, saying why, where that browser is missing.
"""

import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
]


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, and Django then
    # refuses ORM calls from it (the test's own queries); Django's documented
    # switch for such a case. The live server answers from its own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_staff_edits_a_price_and_sees_it_with_its_actor_in_history_and_activity(
    live_server, make_user, make_product, tmp_path, page
):
    boss = make_user("boss", staff=True)
    boss.set_password("demo-password")
    boss.save()
    product = make_product(name="Hammer", price="12.50")
    shots = Path(os.environ.get("SHOP_SCREENSHOTS", tmp_path))  # keep them if asked to

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "demo-password")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}{product.get_absolute_url()}")
    page.click("text=Edit >> nth=0")
    page.fill("#id_price", "9.99")
    page.click("main button[type=submit]")

    page.wait_for_url(f"{live_server.url}{product.get_absolute_url()}")
    assert page.inner_text("#price") == "9.99"
    entry = page.locator("#history li.action-update").first
    assert entry.locator(".actor").inner_text() == "boss"
    assert entry.locator(".old").inner_text() == "12.50"
    assert entry.locator(".new").inner_text() == "9.99"
    page.screenshot(path=str(shots / "browser-product.png"), full_page=True)

    page.goto(f"{live_server.url}/activity/?actor=boss&action=update")
    row = page.locator("tr.event").first
    assert row.locator(".actor").inner_text() == "boss"
    assert "Hammer" in row.inner_text()
    assert row.locator(".old").inner_text() == "12.50"
    assert row.locator(".new").inner_text() == "9.99"
    page.screenshot(path=str(shots / "browser-activity.png"), full_page=True)

    product.refresh_from_db()
    assert product.price == Decimal("9.99")
