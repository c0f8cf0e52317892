"""Nobody but the doctor's own launch reads or drives the laptop's pages, in a real browser (issue 11).

`hemsync ui` runs as its own process and the doctor opens it as she does: the
owner-only launch file it writes, in Chromium. In the same browser, pages of
another origin (another port of 127.0.0.1, the same *site* to a browser, and
``localhost``, another site) try to read the pages (fetch with credentials, an
iframe, an image, a script) and to drive them (an auto-submitted form posting
a write, a fetch POST): every one of those requests is refused by the laptop
before any view runs, and nothing reaches the replica, its outbox or its access
log. A DNS-rebinding name that resolves to 127.0.0.1 (Chromium's
``--host-resolver-rules``, conftest.py) is refused by the Host check, even with
the launch secret. Another local process, without the launch's secret, gets 401.
"""

import http.server
import threading
import uuid

import pytest
import requests

from client_sync.replica import Replica
from client_sync.sync import sync
from tests.client.conftest import PERSONNUMMER, laptop
from tests.client.fake_server import FakeServer
from tests.live_ui import UiProcess

from .conftest import REBIND_NAME

READ = """<!doctype html><title>another site</title><body><script>
const laptop = "{laptop}";
async function attempt() {{
  const out = {{}};
  try {{ const r = await fetch(laptop + "/patients/{patient}", {{credentials: "include"}});
        out.fetch = "read " + (await r.text()).slice(0, 80); }} catch (e) {{ out.fetch = "refused"; }}
  try {{ const r = await fetch(laptop + "/patients/{patient}", {{credentials: "include", mode: "no-cors"}});
        out.fetch_no_cors = r.type; }} catch (e) {{ out.fetch_no_cors = "refused"; }}
  out.iframe = await new Promise(done => {{
    const frame = document.createElement("iframe");
    frame.onload = () => {{ try {{ done("read " + frame.contentDocument.body.innerText.slice(0, 80)); }}
                          catch (e) {{ done("refused"); }} }};
    frame.src = laptop + "/patients/{patient}"; document.body.appendChild(frame);
    setTimeout(() => done("never loaded"), 5000); }});
  out.img = await new Promise(done => {{
    const img = new Image(); img.onload = () => done("loaded"); img.onerror = () => done("refused");
    img.src = laptop + "/patients/{patient}"; }});
  out.script = await new Promise(done => {{
    const script = document.createElement("script"); script.onload = () => done("ran");
    script.onerror = () => done("refused"); script.src = laptop + "/today"; document.head.appendChild(script); }});
  try {{ await fetch(laptop + "/patients/{patient}/vitals", {{method: "POST", mode: "no-cors", credentials: "include",
        headers: {{"Content-Type": "application/x-www-form-urlencoded"}}, body: "pulse=77&csrf_token=guess"}});
        out.fetch_post = "sent"; }} catch (e) {{ out.fetch_post = "refused"; }}
  return out;
}}
window.attempts = attempt();
</script></body>"""

DRIVE = """<!doctype html><title>another site</title><body onload="document.forms[0].submit()">
<form method="post" action="{laptop}/requests/{request}/step">
<input name="step" value="accepted"><input name="csrf_token" value="guess"></form></body>"""


class OtherSite:
    """A small web server of another origin on a loopback port of its own, serving the two pages above."""

    def __init__(self, pages):
        class Pages(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = pages.get(self.path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def launched(browser, tmp_path):
    """Dr Anna's `hemsync ui` process over her replica (a patient, a request assigned to her), opened by her browser
    through the launch file: (ui, browser context, replica path, patient id, request id)."""
    server = FakeServer()
    for name, role in (("Dr Anna", "doctor"), ("Nurse Cia", "nurse"), ("Disp Dan", "dispatcher")):
        server.add_user(name, role)
    (nurse, cn), (dispatcher, cd), (anna, ca) = (laptop(server, tmp_path, user, user) for user in (
        "u-nurse-cia", "u-disp-dan", "u-dr-anna"))
    patient_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    nurse.write("patient", patient_id, {"personnummer": PERSONNUMMER, "name": "Tolvan Tolvansson",
                                        "municipality": "Umeå"})
    nurse.write("visit_request", request_id, {"patient_id": patient_id, "urgency": "urgent", "reason": "Feber"})
    sync(nurse, client=cn)
    sync(dispatcher, client=cd)
    dispatcher.write("visit_request", request_id, {"assigned_doctor_id": "u-dr-anna", "status": "assigned"})
    sync(dispatcher, client=cd)
    sync(anna, client=ca)
    for replica in (nurse, dispatcher, anna):
        replica.close()
    path = tmp_path / "u-dr-anna.db"
    with UiProcess.hemsync_ui(path, open_browser=True) as ui:
        context = browser.new_context(locale="sv-SE")
        doctor = context.new_page()
        doctor.goto((tmp_path / f"hemsync-ui-{ui.port}.html").as_uri())  # what `hemsync ui` opened
        doctor.wait_for_url(f"{ui.base}/today")
        assert "Tolvan Tolvansson" in doctor.content()
        yield ui, context, path, patient_id, request_id
        context.close()


def written(path):
    """What the laptop holds that a page could add to: outbox rows, access-log entries, the request's status."""
    with Replica(path) as replica:
        [request] = replica.local_all("visit_request")
        return len(replica.outbox()), replica.access_count(), request.fields["status"]


@pytest.mark.parametrize("other_host", ["127.0.0.1", "localhost"])
def test_a_page_of_another_origin_in_the_doctors_browser_can_neither_read_nor_drive_the_pages(launched, other_host):
    ui, context, path, patient_id, request_id = launched
    before = written(path)
    site = OtherSite({"/read.html": READ.format(laptop=ui.base, patient=patient_id),
                      "/drive.html": DRIVE.format(laptop=ui.base, request=request_id)})
    sent, answers = [], []
    context.on("request", lambda r: sent.append(r.url.removeprefix(ui.base)) if r.url.startswith(ui.base) else None)
    context.on("response", lambda r: answers.append(r.status) if r.url.startswith(ui.base) else None)
    try:
        other = context.new_page()
        other.goto(f"http://{other_host}:{site.port}/read.html")
        attempts = other.evaluate("window.attempts")
        assert attempts == {"fetch": "refused", "fetch_no_cors": "opaque", "iframe": "refused", "img": "refused",
                            "script": "refused", "fetch_post": "sent"}
        other.goto(f"http://{other_host}:{site.port}/drive.html")
        other.wait_for_url(f"{ui.base}/requests/{request_id}/step")
        assert "Tolvan" not in other.content()
    finally:
        site.stop()
    # The browser did send every one of them (the cookie too: another port is the same site) ...
    assert sorted(sent) == sorted([f"/patients/{patient_id}"] * 4 + ["/today", f"/patients/{patient_id}/vitals",
                                                                   f"/requests/{request_id}/step"]), sent
    # ... and the laptop refused each before any view ran: nothing shown, nothing logged, nothing written.
    assert written(path) == before, (written(path), before)
    assert set(answers) == {403}, answers
    assert written(path) == before == (0, before[1], "assigned")


def test_a_dns_rebinding_name_for_127_0_0_1_is_refused_even_with_the_launch_secret(launched):
    ui, context, path, _, _ = launched
    before = written(path)
    page = context.new_page()
    for url in (ui.launch_url, f"{ui.base}/today"):
        rebound = url.replace("127.0.0.1", REBIND_NAME)
        assert page.goto(rebound).status == 403, rebound
        assert "Tolvan" not in page.content()
    assert written(path) == before


def test_another_local_process_without_the_launch_secret_gets_401_over_real_http(launched):
    ui, _, path, patient_id, request_id = launched
    before = written(path)
    guesses = [{}, {f"hemsync_laptop_{ui.port}": "eyJsYXVuY2giOiJ4In0.guess.guess"}]
    for cookies in guesses:
        for url in (f"{ui.base}/today", f"{ui.base}/patients/{patient_id}"):
            answer = requests.get(url, cookies=cookies, timeout=10)
            assert answer.status_code == 401 and "Tolvan" not in answer.text
        posted = requests.post(f"{ui.base}/requests/{request_id}/step", data={"step": "accepted"},
                               cookies=cookies, timeout=10)
        assert posted.status_code == 401
    assert requests.get(f"{ui.base}/launch?key=guess", timeout=10).status_code == 401
    assert written(path) == before
