# test/e2e/console_browser.py: the console's story in a real browser (headless Chromium through
# Selenium), run by test/e2e/console_browser.sh, which starts the shim; prints TAP lines.
#
# Environment (from console_browser.sh):
#   CONSOLE_URL    the console page (http://127.0.0.1:PORT/console/)
#   INTAKE_URL     the dialer endpoint (http://127.0.0.1:PORT/api/leads/from-dialer/)
#   CONSOLE_KEY    a console key's secret (its name: CONSOLE_KEY_NAME)
#   DIALER_KEY     the dialer key's secret (its name: DIALER_KEY_NAME)
#   RESULTS_DIR    where the screenshots go (test/results/console/)
#   PGHOST PGPORT PGUSER LEADINTAKE_DB   the database the shim writes to (psql checks)
# Run with Debian's /usr/bin/python3 (python3-selenium); chromedriver at /usr/bin/chromedriver.

import os
import re
import subprocess
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

ENV = os.environ
CONSOLE = ENV["CONSOLE_URL"]
INTAKE = ENV["INTAKE_URL"]
RESULTS = ENV["RESULTS_DIR"]
WIDE, NARROW, HEIGHT = 1280, 390, 900
PAGES = ["requests", "request", "failures", "agents", "setup", "health"]

N = 0
FAILED = 0


def ok(cond, desc, *diag):
    """One TAP assertion; the diagnostic lines only when it failed."""
    global N, FAILED
    N += 1
    print(("ok" if cond else "not ok") + f" {N} - {desc}", flush=True)
    if not cond:
        FAILED += 1
        for line in diag:
            for part in str(line).splitlines() or [""]:
                print(f"#   {part}", flush=True)
    return cond


def diag(msg):
    print(f"# {msg}", flush=True)


# ---------------------------------------------------------------- outside the browser

def curl(url, *args):
    """(status, body) of curl on URL."""
    out = subprocess.run(["curl", "-s", "--max-time", "20", "-w", "\n%{http_code}", *args, url],
                         capture_output=True, text=True, check=False)
    body, _, code = out.stdout.rpartition("\n")
    return code, body


def sql(query):
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-d", ENV["LEADINTAKE_DB"], "-c", query],
                         capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip()


# ---------------------------------------------------------------- the browser

def browser():
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDE},{HEIGHT}", "--lang=en-GB"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def js(d, script, *args):
    return d.execute_script(script, *args)


def wait(d, cond, seconds=10):
    """The condition's value once truthy, or None after SECONDS."""
    try:
        return WebDriverWait(d, seconds, poll_frequency=0.1).until(lambda _: cond())
    except TimeoutException:
        return None


def text(d, elem_id):
    return js(d, "const e = document.getElementById(arguments[0]); return e ? e.textContent : null",
              elem_id)


def status_line(d):
    return text(d, "status") or ""


def active_id(d):
    """The focused element: its id, else its href, else its label or text."""
    return js(d, "const a = document.activeElement; return a.id || a.getAttribute('href') || "
                 "a.getAttribute('aria-label') || a.textContent.trim()")


def press(d, *keys):
    ActionChains(d).send_keys(*keys).perform()


def request_rows(d):
    """The requests list as the page shows it: one dict per row, by column label."""
    return js(d, """return [...document.querySelectorAll('#req-rows tr')].map(tr =>
        Object.fromEntries([...tr.cells].map(td => [td.dataset.label, td.textContent.trim()])));""")


def go(d, route):
    d.get(CONSOLE + "#" + route)
    heading = "h-" + route.split("/")[0]
    wait(d, lambda: js(d, "const h = document.getElementById(arguments[0]);"
                          "return h && !h.closest('.view').hidden", heading))


def settled(d, route):
    """Each view's content once loaded (what its screenshot should show)."""
    checks = {
        "requests": "return document.querySelectorAll('#req-rows tr').length > 0",
        "request": "return document.querySelector('#request-body dl') !== null",
        "failures": "return !document.getElementById('fail-empty').hidden"
                    " || document.querySelectorAll('#fail-rows tr').length > 0",
        "agents": "return document.querySelectorAll('#agent-rows tr').length > 0",
        "setup": "return document.getElementById('setup-dispo').value !== ''",
        "health": "return document.querySelector('#health-chart svg') !== null",
    }
    return wait(d, lambda: js(d, checks[route.split("/")[0]]))


# ---------------------------------------------------------------- the story

def story(d):
    """The story up to the set-up page; agent9's failed request's id (None if it never came)."""
    key_name = ENV["CONSOLE_KEY_NAME"]

    # sign in
    d.get(CONSOLE)
    wait(d, lambda: not js(d, "return document.getElementById('view-signin').hidden"))
    d.find_element(By.ID, "signin-key").send_keys("not-a-console-key", Keys.ENTER)
    ok(wait(d, lambda: "does not open" in status_line(d)),
       "sign-in: a wrong key is refused with a message", status_line(d))
    field = d.find_element(By.ID, "signin-key")
    field.clear()
    field.send_keys(ENV["CONSOLE_KEY"], Keys.ENTER)
    signed = wait(d, lambda: text(d, "who-name") == key_name
                  and not js(d, "return document.getElementById('view-requests').hidden"))
    ok(signed, f"sign-in: the console key opens the requests list, signed in as {key_name}",
       f"status line: {status_line(d)}")
    if not signed:
        return None
    settled(d, "requests")

    # a request for an unknown agent appears live, without a reload
    js(d, "window.__notReloaded = true")
    code, body = curl(INTAKE + "?user=agent9&lead_id=B-AGENT9&phone_number=07700900123"
                      "&first_name=Nine&last_name=Agent",
                      "-H", "X-Dialer-Api-Key: " + ENV["DIALER_KEY"])
    sent = time.monotonic()
    ok(code == "404", "curl: a lead for agent9 (no such agent) is a 404", f"{code} {body}")
    row = wait(d, lambda: next((r for r in request_rows(d)
                                if r.get("Agent") == "agent9" and r.get("Status") == "404"),
                               None), 2)
    seen = time.monotonic() - sent
    ok(row and js(d, "return window.__notReloaded === true"),
       "requests: agent9's 404 appears in the list within 2 s, the page not reloaded",
       f"after {seen:.1f} s: rows {request_rows(d)[:3]}")
    if not row:
        row = wait(d, lambda: next((r for r in request_rows(d) if r.get("Agent") == "agent9"),
                                   None), 10)
        if not row:
            return None
    failed_id = row["Request"].lstrip("#")

    # its detail names the reason
    d.find_element(By.CSS_SELECTOR, f'#req-rows a[href="#request/{failed_id}"]').click()
    settled(d, "request")
    detail = text(d, "request-body") or ""
    ok("Agent with username 'agent9' not found" in detail and "B-AGENT9" in detail,
       "detail: names the reason (Agent with username 'agent9' not found) and shows the payload",
       detail[:500])
    ok(d.find_elements(By.ID, "replay-one") != [],
       "detail: an open failure offers 'Replay this request'")

    # add agent9 with the keyboard only: Shift+Tab back to the Agents link, Enter, then Tab
    # through the add form (a sensible order) and Enter
    for _ in range(15):
        if active_id(d) == "#agents":
            break
        press(d, Keys.SHIFT, Keys.TAB, Keys.SHIFT)
    ok(active_id(d) == "#agents", "keyboard: Shift+Tab from the detail reaches the Agents link",
       f"focus on {active_id(d)}")
    press(d, Keys.ENTER)
    settled(d, "agents")
    ok(active_id(d) == "h-agents", "keyboard: Enter opens the agents page, its heading focused",
       f"focus on {active_id(d)}")
    order = []
    for value in ("agent9", "Agent Nine", "9009", None):
        press(d, Keys.TAB)
        order.append(active_id(d))
        if value:
            press(d, value)
    ok(order == ["add-username", "add-display", "add-dialer", "Add agent"],
       "keyboard: Tab goes username, display name, dialer user id, 'Add agent'", f"got {order}")
    press(d, Keys.ENTER)
    added = wait(d, lambda: "Agent agent9 added" in status_line(d)
                 and "agent9" in (text(d, "agent-rows") or ""))
    ok(added and active_id(d) == "add-username",
       "keyboard: Enter adds agent9: listed, said in the status line, focus back on username",
       status_line(d), f"focus on {active_id(d)}")
    ok(sql("SELECT username || ' ' || display_name || ' ' || dialer_user_id || ' ' || active "
           "FROM leadintake.agents WHERE username = 'agent9'") == "agent9 Agent Nine 9009 true",
       "agents: agent9 is in leadintake.agents as typed",
       sql("SELECT * FROM leadintake.agents"))

    # edit an agent, deactivate and activate it (with the mouse: the keyboard had its step)
    d.find_element(By.CSS_SELECTOR, 'button[aria-label="Edit agent1"]').click()
    display = d.find_element(By.ID, "edit-display")
    display.clear()
    display.send_keys("Agent One, edited")
    d.find_element(By.ID, "edit-dialer").send_keys("1001", Keys.ENTER)
    saved = wait(d, lambda: "Agent agent1 saved" in status_line(d)
                 and active_id(d) == "Edit agent1")
    stored = sql("SELECT display_name || ' ' || dialer_user_id FROM leadintake.agents "
                 "WHERE username = 'agent1'")
    ok(saved and stored == "Agent One, edited 1001",
       "agents: Edit saves agent1's display name and dialer user id; focus back on its Edit",
       status_line(d), f"focus on {active_id(d)}", f"stored: {stored}")
    states = []
    for label in ("Deactivate agent1", "Activate agent1"):
        d.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]').click()
        wait(d, lambda: ("deactivated" if label.startswith("D") else "activated")
             in status_line(d))
        states.append(sql("SELECT active FROM leadintake.agents WHERE username = 'agent1'"))
    ok(states == ["f", "t"], "agents: Deactivate then Activate switch agent1's active",
       f"got {states}", status_line(d))

    # replay its failure group
    go(d, "failures")
    settled(d, "failures")
    groups = js(d, "return [...document.querySelectorAll('#fail-rows tr')].map(tr => "
                   "tr.textContent)")
    button = next((b for b in d.find_elements(By.CSS_SELECTOR, "#fail-rows button")
                   if "agent9" in b.get_attribute("aria-label")), None)
    ok(button is not None and any("agent9" in g for g in groups),
       "failures: agent9's failure is a group with 'Replay group'", f"groups: {groups}")
    if button is None:
        return failed_id
    button.click()
    replayed = wait(d, lambda: "Replayed 1 request: 1 succeeded" in status_line(d)
                    and "agent9" not in (text(d, "fail-rows") or ""), 15)
    ok(replayed,
       "failures: 'Replay group' replays 1, 1 succeeded; the group is gone", status_line(d),
       text(d, "fail-rows"))

    # the replay row: 201 for agent9, the original marked as replayed
    go(d, "requests")
    replay = wait(d, lambda: next((r for r in request_rows(d) if r.get("Source") == "replay"
                                   and r.get("Agent") == "agent9"), None))
    original = next((r for r in request_rows(d) if r["Request"] == "#" + failed_id), {})
    ok(replay and replay.get("Status") == "201" and "replayed as" in original.get("Error", ""),
       "requests: the replay row shows 201 for agent9; the original says 'replayed as #...'",
       f"replay {replay}", f"original {original}")
    filters(d, failed_id)
    ok(sql("SELECT count(*) FROM leadintake.leads l JOIN leadintake.agents a "
           "ON a.id = l.assigned_agent_id WHERE l.dialer_lead_id = 'B-AGENT9' "
           "AND a.username = 'agent9'") == "1",
       "database: the replay made the lead B-AGENT9, assigned to agent9",
       sql("SELECT id, dialer_lead_id FROM leadintake.leads"))

    setup_story(d)
    return failed_id


def filters(d, failed_id):
    """Status 4xx lists only 4xx rows; a text finds agent9's requests; All again after."""
    Select(d.find_element(By.ID, "f-status")).select_by_value("4xx")
    only4 = wait(d, lambda: (lambda rows: rows and all(r["Status"].startswith("4") for r in rows)
                             and len(rows) >= 2)(request_rows(d)))
    Select(d.find_element(By.ID, "f-status")).select_by_value("all")
    d.find_element(By.ID, "f-q").send_keys("B-AGENT9")
    found = wait(d, lambda: (lambda ids: "#" + failed_id in ids and len(ids) == 2)(
        [r["Request"] for r in request_rows(d)]))
    d.find_element(By.ID, "f-q").clear()
    d.find_element(By.ID, "f-q").send_keys(" ", Keys.BACKSPACE)   # an input event: reload
    ok(only4 and found, "requests: status 4xx lists only 4xx rows; the text B-AGENT9 finds "
       "agent9's request and its replay", f"rows now: {request_rows(d)}")


def setup_story(d):
    go(d, "setup")
    settled(d, "setup")
    base = d.find_element(By.ID, "setup-base")
    base.clear()
    base.send_keys(INTAKE, Keys.ENTER)
    wait(d, lambda: js(d, "return document.getElementById('setup-dispo').value")
         .startswith(INTAKE + "?"))
    dispo = js(d, "return document.getElementById('setup-dispo').value")
    webform = js(d, "return document.getElementById('setup-webform').value")
    base_part, _, query = dispo.partition("?")
    params = [p.split("=", 1) for p in query.split("&")]
    odd = [p for p in params if len(p) != 2
           or not (p == ["api_key", "YOUR_KEY"] or p[1] == f"--A--{p[0]}--B--")]
    ok(base_part == INTAKE and ["api_key", "YOUR_KEY"] in params and len(params) > 20
       and not odd and webform.startswith(dispo),
       "set-up: the Dispo Call URL is the intake URL, api_key=YOUR_KEY and every field as "
       "--A--field--B--; the Web Form URL extends it",
       f"dispo: {dispo}", f"odd: {odd}", f"webform: {webform}")

    d.find_element(By.CSS_SELECTOR, 'button[data-copy="setup-dispo"]').click()
    said = wait(d, lambda: re.search(r"Dispo Call URL (copied|is selected)", status_line(d)))
    ok(said, "set-up: 'Copy Dispo Call URL' copies it (or selects it for Ctrl+C) and says so",
       status_line(d))

    # filled in as VICIdial would: each --A--x--B-- replaced (spaces as +), a blank field empty
    values = {"user": "agent9", "lead_id": "VD-1", "phone_code": "44",
              "phone_number": "7700900124", "first_name": "Vici", "last_name": "Dial",
              "comments": "call back after 5", "dispo": "INTRST"}
    filled = re.sub(r"--A--(\w+)--B--",
                    lambda m: urllib.parse.quote_plus(values.get(m.group(1), "")), dispo)
    filled = filled.replace("api_key=YOUR_KEY", "api_key=" + ENV["DIALER_KEY"])
    code, body = curl(filled)
    ok(code == "201", "set-up: the Dispo Call URL filled in as VICIdial does creates a lead (201)",
       f"{code} {body[:300]}")
    ok(sql("SELECT first_name || ' ' || last_name || ' ' || coalesce(comments, '') "
           "FROM leadintake.leads WHERE dialer_lead_id = 'VD-1'") == "Vici Dial call back after 5",
       "database: that lead is VD-1, Vici Dial, its comments with spaces",
       sql("SELECT id, dialer_lead_id FROM leadintake.leads"))

    # send a test lead
    key = d.find_element(By.ID, "test-key")
    key.clear()
    key.send_keys(ENV["DIALER_KEY_NAME"])
    wait(d, lambda: "agent9" in [o.get_attribute("value") for o in
                                 d.find_elements(By.CSS_SELECTOR, "#test-agent option")])
    Select(d.find_element(By.ID, "test-agent")).select_by_value("agent9")
    d.find_element(By.CSS_SELECTOR, "#test-form button[type=submit]").click()
    shown = wait(d, lambda: text(d, "test-status") == "201", 15)
    ok(shown and '"success": true' in (text(d, "test-body") or ""),
       "set-up: 'Send a test lead' shows the endpoint's 201 and its body",
       f"status {text(d, 'test-status')}", (text(d, "test-body") or "")[:300], status_line(d))
    ok(sql("SELECT count(*) FROM leadintake.leads WHERE dialer_lead_id = 'console-test'") == "1",
       "database: the test lead is the lead console-test",
       sql("SELECT id, dialer_lead_id FROM leadintake.leads"))


# ---------------------------------------------------------------- every page, both widths

def pages(d, request_id):
    os.makedirs(RESULTS, exist_ok=True)
    shots = []
    for width in (WIDE, NARROW):
        d.set_window_size(width, HEIGHT)
        for page in PAGES:
            route = f"request/{request_id}" if page == "request" else page
            go(d, route)
            settled(d, route)
            shot = os.path.join(RESULTS, f"{page}-{width}.png")
            d.save_screenshot(shot)
            shots.append(shot)
            if width == NARROW:
                sw, iw = js(d, "return [document.documentElement.scrollWidth, window.innerWidth]")
                ok(sw <= iw, f"{NARROW} px: the {page} page does not scroll sideways",
                   f"scrollWidth {sw} > innerWidth {iw}")
    d.set_window_size(WIDE, HEIGHT)
    ok(all(os.path.getsize(s) > 5000 for s in shots),
       f"screenshots of the {len(PAGES)} pages at {WIDE} and {NARROW} px in {RESULTS}")

    go(d, "health")
    settled(d, "health")
    bars = js(d, "return document.querySelectorAll('#health-chart svg g').length")
    facts = text(d, "health-facts") or ""
    ok(bars == 60 and re.search(r"Requests, last hour\s*[1-9]", facts),
       "health: a chart of 60 minutes, the last hour's requests counted",
       f"{bars} minute groups", facts)


def finish(d):
    d.get(CONSOLE + "#requests")
    d.refresh()   # a page load: the first Tab goes to the skip link
    settled(d, "requests")
    press(d, Keys.TAB)
    first = active_id(d)
    press(d, Keys.ENTER)
    ok(first == "skip" and active_id(d) == "h-requests",
       "keyboard: the first Tab reaches the skip link; Enter moves to the view's heading",
       f"first Tab: {first}; after Enter: {active_id(d)}")

    d.find_element(By.ID, "sign-out").click()
    back = wait(d, lambda: not js(d, "return document.getElementById('view-signin').hidden")
                and "Signed out" in status_line(d))
    d.get(CONSOLE + "#agents")
    still_out = wait(d, lambda: not js(d, "return document.getElementById('view-signin').hidden"))
    ok(back and still_out, "sign-out: back to the sign-in form, and a reload stays signed out",
       status_line(d))
    d.save_screenshot(os.path.join(RESULTS, f"signin-{WIDE}.png"))
    d.set_window_size(NARROW, HEIGHT)
    d.save_screenshot(os.path.join(RESULTS, f"signin-{NARROW}.png"))
    sw, iw = js(d, "return [document.documentElement.scrollWidth, window.innerWidth]")
    ok(sw <= iw, f"{NARROW} px: the sign-in page does not scroll sideways",
       f"scrollWidth {sw} > innerWidth {iw}")
    d.set_window_size(WIDE, HEIGHT)
    # the page's own errors: a CSP violation or a script error (not the 401s the page expects)
    bad = [e["message"] for e in d.get_log("browser")
           if "Content Security Policy" in e["message"]
           or (e["level"] == "SEVERE" and e.get("source") == "javascript")]
    ok(not bad, "browser log: no Content-Security-Policy violation, no script error", *bad)


def main():
    d = browser()
    try:
        # the request page's screenshots: agent9's failure, its reasons, its replay
        pages(d, story(d) or "1")
        finish(d)
    except Exception as exc:  # a broken story is a failed assertion, with the reason
        ok(False, "the story ran to its end", f"{type(exc).__name__}: {exc}")
        try:
            d.save_screenshot(os.path.join(RESULTS, "failure.png"))
        except Exception:
            pass
    finally:
        d.quit()
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
