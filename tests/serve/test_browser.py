"""One real browser: Debian's chromium, headless, driven by Playwright, uploads a photo and finds the overlay.

No ``playwright install``: the system browser is used through ``executable_path``
(CI installs it with apt). Every request to another host is blocked and
recorded, which also checks that the page needs no network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.filterwarnings("ignore::Warning"),
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


def test_upload_shows_overlay_legend_and_timing(demo_server, street_jpeg, tmp_path, bomb_png):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    base = demo_server.url.rstrip("/")
    blocked: list[str] = []

    def only_this_server(route):
        url = route.request.url
        if url.startswith(base) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_api.sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.route("**/*", only_this_server)
            page.goto(demo_server.url)
            page.locator("#photo input[type=file]").set_input_files(str(street_jpeg))
            overlay = page.locator("#overlay img")
            overlay.wait_for(state="visible", timeout=60_000)
            # The overlay comes inside the result, not as a second request for a file.
            assert (overlay.get_attribute("src") or "").startswith("data:image/jpeg;base64,")
            assert (page.locator("#segmap img").get_attribute("src") or "").startswith("data:image/png;base64,")
            # The overlay image really loaded (a broken image has naturalWidth 0).
            page.wait_for_function("() => { const i = document.querySelector('#overlay img');"
                                   " return i && i.complete && i.naturalWidth === 1024; }", timeout=30_000)
            page.locator("#summary").get_by_text("ms").first.wait_for(timeout=30_000)
            assert "%" in page.locator("#legend").inner_text()
            page.wait_for_function("() => !document.querySelector('#summary').classList.contains('busy')",
                                   timeout=30_000)  # the run's busy mark is cleared after the result
            assert page.locator("#segmap img").count() == 1
            # Moving the opacity re-blends the last result into a new overlay.
            before = overlay.get_attribute("src")
            page.locator("#opacity input[type=number]").fill("0.9")
            page.locator("#opacity input[type=number]").press("Enter")
            page.wait_for_function("(old) => { const i = document.querySelector('#overlay img');"
                                   " return i && i.getAttribute('src') !== old; }", arg=before, timeout=30_000)
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            # A bad upload gets its reason shown on the page (the server refuses it from its header).
            bomb = tmp_path / "huge_header.png"
            bomb.write_bytes(bomb_png(3000, 2000))
            page.goto(demo_server.url)  # a fresh page: its upload box is empty again
            page.locator("#photo input[type=file]").set_input_files(str(bomb))
            toast = page.locator("[data-testid=toast-text]").filter(has_text="above the limit of 4 MP")
            toast.first.wait_for(state="visible", timeout=60_000)
            assert "huge_header.png" in toast.first.inner_text()
            # The run's busy mark on the timing box is cleared after an error too.
            page.wait_for_function("() => !document.querySelector('#summary').classList.contains('busy')",
                                   timeout=30_000)
        finally:
            browser.close()
    assert blocked == [], f"the page tried to reach other hosts: {blocked}"
