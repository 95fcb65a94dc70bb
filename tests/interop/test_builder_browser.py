"""The Flow Builder in a real Chromium (Playwright): the bundled plans drawn with FILE:LINE on
every step, a new two-option menu on a new number built and saved without YAML, an empty
prompt shown on its node and not saved, a comment kept, and two editors' conflict; then on a
real ``ivr serve``: the saved menu answers SIPp's call, which presses 2 (RFC 4733) and takes
the branch the builder drew, shown by the trace API and highlighted in the live view."""
from __future__ import annotations

import difflib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from ivr.dialplan.loader import load_dialplans
from tests.interop.conftest import start_server
from tests.interop.peers import sipp
from tests.interop.test_dtmf_modes import PCMU_AND_EVENTS, pcap_scenario

pytestmark = pytest.mark.interop  # a real Chromium

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# BUILDER_SCREENSHOTS=DIR keeps the screenshots (the README's come from here); else tmp_path
SHOTS = os.environ.get("BUILDER_SCREENSHOTS")
PRESS_2 = Path("/usr/share/sip-tester/dtmf_2833_2.pcap")  # SIPp's RFC 4733 digit 2
ADMIN = {"X-API-Key": "admin-key-0123456789"}


@pytest.fixture
def server(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tests.api.builder_server", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), proc.stderr.read()
    yield f"http://127.0.0.1:{int(line.split()[1])}", tmp_path / "dialplans"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def browser():
    assert Path(CHROMIUM).exists(), "apt-get install -y chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def open_builder(browser, url):
    ctx = browser.new_context(extra_http_headers=ADMIN, viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url + "/builder")
    page.wait_for_selector("body[data-ready]", timeout=15_000)
    return page


def test_builder_needs_an_admin_key(server, browser):
    url, _ = server
    ctx = browser.new_context()
    assert ctx.new_page().goto(url + "/builder").status == 401
    ctx = browser.new_context(extra_http_headers={"X-API-Key": "user-key-0123456789"})
    assert ctx.new_page().goto(url + "/builder").status == 403


def test_sign_in_through_the_form_edit_and_save(server, browser):
    url, plans = server
    page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    assert page.goto(url + "/builder").status == 401  # the sign-in form, not JSON
    page.fill("#key", "not-the-key")
    page.click("#sign-in")
    assert "was not accepted" in page.locator("#sign-in-message").inner_text()
    page.fill("#key", ADMIN["X-API-Key"])
    page.click("#sign-in")
    page.wait_for_selector("body[data-ready]", timeout=15_000)
    cookie = [c for c in page.context.cookies() if c["name"] == "ivr_admin_key"][0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "ivr_admin_key" not in page.evaluate("document.cookie")  # the script cannot read it
    page.locator('[data-step="tollfree.yaml:51"]').click()
    page.fill('#form input[name="text"]', "Signed in and saved.")
    page.click("#apply-step")
    page.click("#save")
    page.locator("#status.saved").wait_for(timeout=10_000)  # the PUT went with the cookie
    assert '"Signed in and saved."' in (plans / "tollfree.yaml").read_text()
    page.click("#sign-out")
    assert "signed out" in page.locator("#sign-in-message").inner_text()
    assert page.goto(url + "/builder").status == 401
    assert page.errors == []


def test_graph_of_the_bundled_plans(server, browser, tmp_path):
    url, _ = server
    page = open_builder(browser, url)
    menu = page.locator('[data-step="tollfree.yaml:13"]')
    assert menu.get_attribute("data-verb") == "menu"
    assert page.locator('[data-flow="otp"]').get_attribute("class").endswith("unreachable")
    assert "unreachable" not in page.locator('[data-flow="main_menu"]').get_attribute("class")
    for flow in ("internal", "internal_busy", "internal_unavailable"):  # extensions' context
        assert "unreachable" not in page.locator(f'[data-flow="{flow}"]').get_attribute("class")
    for label in ("1", "2", "0", "on_failure", "then", "else", "on_busy"):
        assert page.locator(f'path[data-edge="{label}"]').count() >= 1, label
    assert page.errors == []
    menu.click()  # the toll-free menu's form, for the README's screenshot
    shots = Path(SHOTS) if SHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "builder-tollfree.png"))


def build_menu(page, prompt: str):
    page.select_option("#new-flow-file", "tollfree.yaml")
    page.fill("#new-flow-name", "two_options")
    page.select_option("#new-flow-verb", "menu")
    page.click("#add-flow")
    page.fill('#form input[name="prompt"]', prompt)
    page.locator("[data-option-flow]").first.select_option("sales")
    page.click("#add-option")
    page.locator("[data-option-key]").nth(1).fill("2")
    page.locator("[data-option-flow]").nth(1).select_option("support")
    page.click("#apply-step")
    page.select_option("#new-route-file", "tollfree.yaml")
    page.select_option("#new-route-kind", "number")
    page.fill("#new-route-value", "+15550007777")
    page.select_option("#new-route-flow", "two_options")
    page.click("#add-route")


def test_new_menu_on_a_new_number_saved_without_yaml(server, browser):
    url, plans = server
    before = (plans / "tollfree.yaml").read_text()
    page = open_builder(browser, url)
    build_menu(page, "")  # the mistake first: an empty prompt
    page.click("#save")
    node = page.locator('.step.error[data-verb="menu"]')
    node.wait_for(timeout=10_000)
    assert "an empty prompt" in node.locator(".error-message").inner_text()
    assert "two_options" in node.evaluate("n => n.closest('.flow').dataset.flow")
    assert (plans / "tollfree.yaml").read_text() == before  # nothing saved
    page.locator('[data-flow="two_options"] .step').first.click()
    page.fill('#form input[name="prompt"]', "For sales press 1, for support press 2.")
    page.click("#apply-step")
    page.click("#save")
    page.locator("#status.saved").wait_for(timeout=10_000)
    after = (plans / "tollfree.yaml").read_text()
    assert "# 1 rings extension 2001" in after  # comments of the parts not edited stay
    assert after.startswith(before.split("flows:")[0].rstrip("\n"))
    plan, errors = load_dialplans([plans])
    assert errors == []
    route = [r for r in plan.routes if r.value == "+15550007777"][0]
    assert route.flow == "two_options"
    options = dict(plan.flows["two_options"].steps[0].args.options)
    assert options["2"].flow == "support" and options["1"].flow == "sales"
    assert page.errors == []


def test_two_editors_of_one_file_the_second_save_conflicts(server, browser):
    url, plans = server
    first, second = open_builder(browser, url), open_builder(browser, url)
    for page, text in ((first, "Bye from one."), (second, "Bye from two.")):
        page.locator('[data-step="tollfree.yaml:51"]').click()
        page.fill('#form input[name="text"]', text)
        page.click("#apply-step")
    first.click("#save")
    first.locator("#status.saved").wait_for(timeout=10_000)
    second.click("#save")
    second.locator("#status.conflict").wait_for(timeout=10_000)
    assert "changed by someone else" in second.locator("#status").inner_text()
    text = (plans / "tollfree.yaml").read_text()
    assert '"Bye from one."' in text and "Bye from two." not in text
    assert "# A toll-free demo menu" in text


def get_json(url: str, path: str):
    request = urllib.request.Request(url + path, headers=ADMIN)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def finished_trace(url: str, call_id: str, timeout: float = 15.0) -> dict:
    """The call's trace once its CDR is written (the leg has ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, trace = get_json(url, f"/v1/builder/trace/{call_id}")
        if status == 200 and trace["source"] == "cdr":
            return trace
        time.sleep(0.2)
    raise AssertionError(f"no CDR for {call_id}: {status} {trace}")


def test_a_call_to_the_new_number_takes_the_branch_the_builder_drew(tmp_path, browser):
    assert PRESS_2.exists(), "apt-get install -y sip-tester"
    plans = tmp_path / "dialplans"
    shutil.copytree(ROOT / "tests" / "data" / "builder_plans", plans)
    server = start_server(tmp_path, dialplans=plans, extra=["--speech-engine", "off"],
                          env={"IVR_API_KEY": ADMIN["X-API-Key"]})
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        page = open_builder(browser, url)
        build_menu(page, "For sales press 1, for support press 2.")
        page.click("#save")
        page.locator("#status.saved").wait_for(timeout=10_000)  # saved and reloaded
        scenario = pcap_scenario(tmp_path, PRESS_2, PCMU_AND_EVENTS, wait_ms=2500)
        r = sipp(tmp_path, server.sip, scenario=scenario, service="+15550007777", timeout=30)
        assert r.returncode == 0, str(r)
        call_id = next(line.split(":", 1)[1].strip() for line in r.messages.splitlines()
                       if line.startswith("Call-ID:"))
        trace = finished_trace(url, call_id)
        assert trace["route"] == "number:+15550007777" and trace["digits"] == ["2"]
        flows = [(s["flow"], s["verb"]) for s in trace["steps"]]
        assert flows[:2] == [("two_options", "menu"), ("support", "say")], trace
        menu = trace["steps"][0]
        assert menu["notes"] == ["pressed 2 → support"]
        # the live view: pick the call, its path is highlighted on the graph the builder drew
        page.click("#trace-refresh")
        page.wait_for_selector(f'#trace-pick option[value="{call_id}"]', state="attached",
                               timeout=10_000)
        page.select_option("#trace-pick", call_id)
        page.click("#trace-show")
        node = page.locator(f'.step.visited[data-step="{menu["step"]}"]')
        node.wait_for(timeout=10_000)
        assert node.get_attribute("data-verb") == "menu"
        assert node.evaluate("n => n.closest('.flow').dataset.flow") == "two_options"
        assert node.locator(".trace-note").inner_text() == "pressed 2 → support"
        support = page.locator(f'.step.visited[data-step="{trace["steps"][1]["step"]}"]')
        assert support.evaluate("n => n.closest('.flow').dataset.flow") == "support"
        sales = page.locator('[data-flow="sales"] .step.visited')
        assert sales.count() == 0  # the branch not taken stays plain
        shots = Path(SHOTS) if SHOTS else tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "builder-call-trace.png"))
        assert page.errors == []
    finally:
        server.stop()


def test_business_hours_changed_in_a_form_and_checked(server, browser):
    url, plans = server
    page = open_builder(browser, url)
    page.locator('[data-flow="front_desk"] .step[data-verb="time"]').click()
    rows = page.locator("#hours-rows .hours-row")
    assert rows.count() == 1  # when: {days: mon-fri, hours: "09:00-17:00"}, as a form
    checked = [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
               if rows.first.locator(f'[data-day="{d}"]').is_checked()]
    assert checked == ["mon", "tue", "wed", "thu", "fri"]
    assert rows.first.locator("[data-hours-from]").input_value() == "09:00"
    assert rows.first.locator("[data-hours-to]").input_value() == "17:00"
    assert page.locator("#holidays").input_value() == "01-01, 07-04, 12-25"
    # the mistake first: an empty range on Saturday is the checker's error on the node
    page.click("#add-hours")
    sat = rows.nth(1)
    for d in ("mon", "tue", "wed", "thu", "fri"):
        sat.locator(f'[data-day="{d}"]').uncheck()
    sat.locator('[data-day="sat"]').check()
    sat.locator("[data-hours-from]").fill("10:00")
    sat.locator("[data-hours-to]").fill("10:00")
    page.click("#apply-step")
    before = (plans / "business.yaml").read_text()
    page.click("#save")
    node = page.locator('.step.error[data-verb="time"]')
    node.wait_for(timeout=10_000)
    assert "empty range" in node.locator(".error-message").inner_text()
    assert (plans / "business.yaml").read_text() == before
    # fixed: Saturday 10 to 2, weekdays from 08:30, a new holiday, another time zone
    page.locator('[data-flow="front_desk"] .step[data-verb="time"]').click()
    rows.nth(1).locator("[data-hours-to]").fill("14:00")
    rows.first.locator("[data-hours-from]").fill("08:30")
    page.fill("#holidays", "01-01, 07-04, 11-27, 12-25")
    page.fill('#form input[name="timezone"]', "Europe/London")
    page.click("#apply-step")
    page.click("#save")
    page.locator("#status.saved").wait_for(timeout=10_000)
    text = (plans / "business.yaml").read_text()
    assert text.startswith("# A DID with business hours")  # comments kept
    assert '"Thank you for calling during business hours.' in text  # other steps untouched
    plan, errors = load_dialplans([plans])
    assert errors == []  # the checker still validates what the form wrote
    args = plan.flows["front_desk"].steps[1].args
    assert args.timezone[0] == "Europe/London"
    rules = [(sorted(r.days), r.hours) for r in args.when]
    assert rules == [([0, 1, 2, 3, 4], ((510, 1020),)), ([5], ((600, 840),))]
    assert [(h.month, h.day) for h in args.holidays] == [(1, 1), (7, 4), (11, 27), (12, 25)]
    assert "days: mon-fri" in text and "days: sat" in text
    assert page.errors == []


PRESS_3 = Path("/usr/share/sip-tester/dtmf_2833_3.pcap")  # SIPp's RFC 4733 digit 3


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) between two versions of a file."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return ([d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")])


def test_done_when_a_manager_adds_a_menu_option_and_changes_opening_hours(tmp_path, browser):
    """Issue 20's "Done when", as someone who has never seen YAML: from the bundled plans,
    sign in with the form, give the toll-free menu a choice 3 that goes to a new flow saying
    the opening hours, open the business line at 08:00 instead of 09:00, press Save changes
    (never Apply: typed edits are applied on their own), see what was saved; the next call
    (SIPp pressing 3) takes the new choice, and the YAML diff is only the changed lines."""
    assert PRESS_3.exists(), "apt-get install -y sip-tester"
    plans = tmp_path / "dialplans"
    shutil.copytree(ROOT / "dialplans", plans, ignore=shutil.ignore_patterns("*.md"))
    before = {f: (plans / f).read_text() for f in ("tollfree.yaml", "business.yaml")}
    server = start_server(tmp_path, dialplans=plans, extra=["--speech-engine", "off"],
                          env={"IVR_API_KEY": ADMIN["X-API-Key"]})
    shots = Path(SHOTS) if SHOTS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    try:
        url = f"http://127.0.0.1:{server.http_port}"
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(url + "/builder")
        page.screenshot(path=str(shots / "builder-sign-in.png"))
        page.fill("#key", ADMIN["X-API-Key"])
        page.click("#sign-in")
        page.wait_for_selector("body[data-ready]", timeout=15_000)
        # the menu's form speaks plain words, the YAML keys stay the inputs' names
        page.locator('[data-flow="main_menu"] .step[data-verb="menu"]').click()
        form = page.locator("#form")
        assert "Menu: the caller presses a key" in form.inner_text()
        assert "What the caller hears" in form.locator('[data-field="prompt"]').inner_text()
        assert "on_failure" not in form.locator('[data-field="on_failure"]').inner_text()
        # a new flow that says something
        page.select_option("#new-flow-file", "tollfree.yaml")
        page.fill("#new-flow-name", "opening_hours")
        page.select_option("#new-flow-verb", label="Say a sentence (say)")
        page.click("#add-flow")
        page.fill('#form input[name="text"]', "We are open Monday to Friday, 8 to 5.")
        page.select_option("#insert-verb", label="Hang up (hangup)")
        page.click("#insert-after")  # the typed sentence is kept (applied first)
        assert "unreachable" in page.locator('[data-flow="opening_hours"]').get_attribute("class")
        # choice 3 of the toll-free menu goes there
        page.locator('[data-flow="main_menu"] .step[data-verb="menu"]').click()
        page.click("#add-option")
        page.locator("[data-option-key]").last.fill("3")
        page.locator("[data-option-flow]").last.select_option("opening_hours")
        page.screenshot(path=str(shots / "builder-menu-option.png"))
        # opening hours of the business line: from 08:00
        page.locator('[data-flow="front_desk"] .step[data-verb="time"]').click()
        page.locator("#hours-rows .hours-row").first.locator("[data-hours-from]").fill("08:00")
        assert "Not saved yet" in page.locator("#status").inner_text()
        page.click("#save")
        page.locator("#status.saved").wait_for(timeout=10_000)
        status = page.locator("#status").inner_text()
        assert "Saved tollfree.yaml: flow main_menu changed; new flow opening_hours." in status
        assert "Saved business.yaml: flow front_desk changed." in status
        assert "The next call uses it" in status
        assert "unreachable" not in page.locator('[data-flow="opening_hours"]').get_attribute(
            "class")
        page.screenshot(path=str(shots / "builder-saved.png"))
        # the YAML stays clean: only the changed lines differ, every comment kept
        tollfree, business = ((plans / f).read_text() for f in ("tollfree.yaml", "business.yaml"))
        removed, added = changed_lines(before["tollfree.yaml"], tollfree)
        assert removed == []
        assert added[0] == '          "3": opening_hours'
        assert added[1:] == tollfree.splitlines()[-len(added) + 1:]  # the new flow, at the end
        assert added[1:3] == ["  opening_hours:", "    - say:"] and added[-1] == "    - hangup"
        assert '"We are open Monday to Friday, 8 to 5."' in added[3]  # typed, never "Apply"d
        assert changed_lines(before["business.yaml"], business) == (
            ['        when: {days: mon-fri, hours: "09:00-17:00"}'],
            ['        when: {days: mon-fri, hours: "08:00-17:00"}'])
        for name, text in (("tollfree.yaml", tollfree), ("business.yaml", business)):
            comments = [line for line in before[name].splitlines() if line.lstrip().startswith("#")]
            assert all(c in text.splitlines() for c in comments), name
        plan, errors = load_dialplans([plans])
        assert errors == []
        rule = plan.flows["front_desk"].steps[1].args.when[0]
        assert rule.hours == ((480, 1020),)
        # the next call: SIPp presses 3 while the menu speaks (after the greeting), hangs up
        # a second later, while the new flow speaks
        scenario = pcap_scenario(tmp_path, PRESS_3, PCMU_AND_EVENTS, wait_ms=1000)
        scenario.write_text(scenario.read_text().replace(
            '<pause milliseconds="500"/>', '<pause milliseconds="4500"/>', 1))
        r = sipp(tmp_path, server.sip, scenario=scenario, service="+18005550100", timeout=40)
        assert r.returncode == 0, str(r)
        call_id = next(line.split(":", 1)[1].strip() for line in r.messages.splitlines()
                       if line.startswith("Call-ID:"))
        trace = finished_trace(url, call_id)
        assert trace["digits"] == ["3"], trace
        flows = [(s["flow"], s["verb"]) for s in trace["steps"]]
        menu = flows.index(("main_menu", "menu"))
        assert flows[menu + 1] == ("opening_hours", "say"), trace
        assert trace["steps"][menu]["notes"] == ["pressed 3 → opening_hours"]
        assert page.errors == []
    finally:
        server.stop()
