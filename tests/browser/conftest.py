"""Browser tests: headless Debian Chromium driven by Playwright against the real server on loopback.

Skipped, with the reason, where Chromium or Playwright is missing; with
HEMSYNC_REQUIRE_BROWSER=1 (.ci/run) a missing browser fails instead. The demo
region is seeded and every demo person gets the password :data:`PASSWORD`.
"""

import datetime as dt
import json
import os
import pathlib
import uuid

import pytest
from click.testing import CliRunner

from client_sync.cli import cli
from schema.clock import utcnow
from schema.identity import make_test_personnummer
from server import passwords, seed
from server.writes import WriteApplier
from tests.live_server import start_live_server

CHROMIUM = pathlib.Path("/usr/bin/chromium")
#: A name of someone else's that resolves to 127.0.0.1, as a DNS-rebinding attack makes its own name do
#: (tests/browser/test_laptop_guard.py); nothing else resolves differently.
REBIND_NAME = "rebind.test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--host-resolver-rules=MAP {REBIND_NAME} 127.0.0.1"]
PASSWORD = "ett långt lösenord för test"
ROOT = pathlib.Path(__file__).resolve().parents[2]
# var/ by default, so a test run leaves the tracked copies in docs/screenshots alone;
# HEMSYNC_SCREENSHOTS=docs/screenshots refreshes those.
SCREENSHOTS = ROOT / os.environ.get("HEMSYNC_SCREENSHOTS", "var/screenshots")
SCRIPT_NAME = "<script>alert(1)</script>"


def _missing():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium, or a skip (a failure under HEMSYNC_REQUIRE_BROWSER=1) when there is none."""
    missing = _missing()
    if missing:
        if os.environ.get("HEMSYNC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required (HEMSYNC_REQUIRE_BROWSER=1) but {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Region:
    """The seeded demo region on a live server: people by seed key, and helpers to sign in and write."""

    def __init__(self, server):
        self.server, self.store, self.url = server, server.store, server.url
        self.ids = seed.demo_users()

    def user(self, key):
        """The demo person with this seed key (``nurse-halmstad``, ``dispatcher-lena``)."""
        return self.store.get_user(self.ids[key])

    def patient_named(self, name):
        """The id of the (first) patient with this name."""
        return next(p.id for p in self.store.get_records("patient", self.store.patients_in(seed.MUNICIPALITIES))
                    if p.state["fields"]["name"]["value"] == name)

    def write(self, key, record_type, record_id, fields):
        """Write as a demo person through the one write path (as the seed does)."""
        with self.store.transaction():
            writes = WriteApplier(self.store, self.server.app.config["HEMSYNC"], {"id": "browser-test"},
                                  self.user(key), utcnow())
            writes.write(record_type, record_id, fields)
            writes.finish()

    def request_with_reason(self, reason):
        """The id of the visit request with this reason."""
        return next(r.id for r in self.store.records_of_patients("visit_request", self.store.patients_in(
            seed.MUNICIPALITIES)) if r.state["fields"]["reason"]["value"] == reason)

    def sign_in(self, browser, key):
        """A new browser page signed in as the demo person ``key``."""
        page = browser.new_context(locale="sv-SE", viewport={"width": 1280, "height": 900}).new_page()
        page.goto(self.url + "/sign-in")
        page.get_by_label("HSA-id").fill(self.user(key)["hsa_id"])
        page.get_by_label("Lösenord").fill(PASSWORD)
        page.get_by_role("button", name="Logga in").click()
        return page


class Laptop:
    """A demo person's field laptop: a real replica file driven through the ``hemsync`` CLI, enrolled on the server."""

    def __init__(self, region, key, folder):
        self.replica = str(folder / f"{key}.db")
        _, token = region.server.enroll(region.ids[key], f"{key} laptop")
        self("login", "--server", region.url, token=token)

    def __call__(self, *args, token=None):
        """Run ``hemsync --replica FILE ARGS --json``; return its JSON (login reads the token from stdin)."""
        result = CliRunner().invoke(cli, ["--replica", self.replica, *args, "--json"], input=token and token + "\n")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def demo_region(folder):
    """A live server with the demo region, every person with :data:`PASSWORD`, and a patient named like a script."""
    server = start_live_server(folder, escalation_interval=0)
    try:
        seed.seed_demo(server.store, server.app.config["HEMSYNC"])
        region = Region(server)
        admin = region.user("admin-per")
        for user_id in region.ids.values():
            passwords.set_password(server.store, user_id, PASSWORD, admin)
        region.write("nurse-halmstad", "patient", str(uuid.uuid4()), {
            "personnummer": make_test_personnummer(dt.date(1940, 1, 7), 912), "name": SCRIPT_NAME,
            "municipality": "Halmstad", "access_notes": seed.TEST_NOTE})
    except BaseException:
        server.stop()
        raise
    return region


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """The demo region on a live server shared by a module's tests (see :func:`demo_region`)."""
    region = demo_region(tmp_path_factory.mktemp("browser"))
    yield region
    region.server.stop()


def screenshot(page, name):
    """Save the page as <HEMSYNC_SCREENSHOTS>/<name>.png (var/screenshots; the README shows docs/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
