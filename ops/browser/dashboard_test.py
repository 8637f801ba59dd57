#!/usr/bin/env python3
"""The supervisor dashboard (/dashboard) in a real browser, against a real cluster.

ops/browser/run.sh installs what this needs (Debian's chromium and chromium-driver, Selenium in
a venv) and runs it; run it through that script.

Set-up: a fresh database `emporium_dash_<pid>_<random>`, a RabbitMQ virtual host of its own
(rabbitmqctl; without it the default vhost, with a loud warning), a unique bus namespace, a
block of 9 free ports (the registry, the seven other nodes, the gateway's public listener), a
state dir with a copy of config/, all handed to `ops/cluster.sh up` (one node per role, fault
injection allowed: EMPORIUM__CHAOS__ENABLED=true). Then headless Chromium (the system
chromedriver; Selenium Manager never downloads anything) opens the gateway's /dashboard.

Scenarios, in this order (each step prints one line with the time since the start):
  1. sign-in: the form is shown; a wrong password shows the API's message in #signin-error; the
     admin signs in and every node the registry lists (GET /registry/v1/instances) is in
     table#nodes, UP;
  2. a panic injected into an actor of the order node's own service: within 2 s the fault
     timeline has it (node, actor, kind panic, a non-empty flight record) and the actor's
     restart count went up by one;
  3. the product instance taken out of service from the services table, then put back UP: the
     page and the registry agree each time;
  4. the order node's log level set to debug: the nodes table and the node's own
     /admin/v1/supervision (cluster credential) say debug;
  5. the journal has those actions, by the admin, each ok;
  6. kill -9 of the payment node: the page marks it not UP within 5 s, EVICTED within 10 s,
     and the timeline has an eviction;
  7. (with --screenshots DIR) cluster.png, node.png, faults.png, trace.png, journal.png;
  8. access: a customer gets 403 from GET /api/v1/dashboard/snapshot (JSON error envelope), no
     token 401; the page tells a customer who signs in that the account is not an admin.

On a failure: failure.png, page.html, console.log and node-logs.txt (the last lines of each
node's log) are written into the state dir, which is kept, and the exit code is 1. Everything
else it made is removed at exit, also on SIGINT/SIGTERM: the cluster stopped (`ops/cluster.sh
down`), the browser quit, the database dropped, the vhost deleted, the state dir removed
(unless --keep or a failure).

    ops/browser/run.sh
    ops/browser/run.sh --screenshots /tmp/dashboard-shots
    EMPORIUM_BIN=target/debug/emporium ops/browser/run.sh --keep

The binary: EMPORIUM_BIN, else what ops/cluster.sh finds (PATH, $CARGO_TARGET_DIR/release, built).
Needs MariaDB (the mariadb client), RabbitMQ, curl (ops/cluster.sh), Python 3.11 and Selenium.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import benchkit as bk  # noqa: E402  (ClusterScript, Rabbitmqctl, MariaDb, free_port_block)
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("registry", "auth", "product", "inventory", "order", "payment", "notification", "gateway")
ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "dashboard-admin-password-0123"
CUSTOMER_PASSWORD = "correct horse battery staple"
ACTIONS = "/api/v1/dashboard/actions"

# Bounds of the waits (seconds).
PAGE_READY = 30.0      # the page signed in and showing every node
FAULT_WITHIN = 2.0     # an injected panic on the timeline, the restart counted
ACTION_WITHIN = 10.0   # an action's effect on the page and at its source
UNREACHABLE_WITHIN = 5.0
EVICTED_WITHIN = 10.0

STARTED = time.monotonic()
CLEANUPS: list = []  # (label, callable), run in reverse order at exit


class Failure(Exception):
    """A check that did not hold (or could not be made)."""


def log(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {text}", flush=True)


@contextmanager
def step(name: str):
    """One step: a line when it ends, with its own duration."""
    began = time.monotonic()
    try:
        yield
    except BaseException:
        log(f"FAIL  {name} (after {time.monotonic() - began:.1f}s)")
        raise
    log(f"ok    {name} ({time.monotonic() - began:.1f}s)")


def wait_for(what: str, condition, timeout: float, interval: float = 0.1):
    """Polls `condition` until it answers something true; raises Failure after `timeout` s with
    the last answer (or error). WebDriver errors (a re-rendered element, ...) count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except (WebDriverException, Failure, OSError, KeyError, ValueError, TypeError) as error:
            last = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if time.monotonic() >= deadline:
            raise Failure(f"{what}: not within {timeout:g}s (last seen: {str(last)[:600]})")
        time.sleep(interval)


def run_cleanups() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    while CLEANUPS:
        label, action = CLEANUPS.pop()
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the other clean-ups must still run
            try:
                print(f"ops/browser/dashboard_test.py: cleanup {label}: {error}", file=sys.stderr)
            except OSError:
                pass  # stderr is gone (a closed pipe): the clean-up goes on regardless


def on_signal(number, _frame):
    raise SystemExit(128 + number)


# ---------------------------------------------------------------------------------------------
# HTTP (standard library)


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 10.0):
    """(status, parsed JSON or text) of one request; status 0 when nothing answered."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, f"{type(error).__name__}: {error}"
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def error_message(answer) -> str | None:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return answer["error"].get("message")
    return None


def is_error_envelope(answer) -> bool:
    error = answer.get("error") if isinstance(answer, dict) else None
    return isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)


# ---------------------------------------------------------------------------------------------
# The cluster (ops/cluster.sh; the broker and MariaDB through benchkit)


class Cluster(bk.ClusterScript):
    """The nodes ops/cluster.sh runs with `env` in `state_dir`, and their endpoints."""

    def __init__(self, state_dir: Path, env: dict, registry_port: int, http_port: int):
        super().__init__(state_dir, env)
        self.registry_url = f"http://127.0.0.1:{registry_port}"
        self.gateway_url = f"http://127.0.0.1:{http_port}"

    def secret(self) -> str:
        return (self.state_dir / "cluster-secret").read_text().strip()

    def cluster_headers(self) -> dict:
        # actors/cluster/src/credential.rs: `Authorization: Cluster <secret>`.
        return {"Authorization": f"Cluster {self.secret()}"}

    def instances(self) -> list[dict]:
        """The registry's own list (GET /registry/v1/instances, cluster credential)."""
        status, answer = http("GET", f"{self.registry_url}/registry/v1/instances", headers=self.cluster_headers())
        if status != 200 or not isinstance(answer, list):
            raise Failure(f"GET /registry/v1/instances: {status} {str(answer)[:300]}")
        return answer

    def supervision(self, address: str) -> dict:
        """A node's own GET /admin/v1/supervision (cluster credential)."""
        status, answer = http("GET", f"http://{address}/admin/v1/supervision", headers=self.cluster_headers())
        if status != 200 or not isinstance(answer, dict):
            raise Failure(f"GET http://{address}/admin/v1/supervision: {status} {str(answer)[:300]}")
        return answer

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for role in ROLES:
            path = self.state_dir / "logs" / f"{role}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- last {len(tail)} lines of {path}\n" + "\n".join(line[:600] for line in tail))
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The browser


def start_browser(state_dir: Path) -> webdriver.Chrome:
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not driver_path:
        raise Failure("no chromedriver on PATH (apt-get install chromium-driver; ops/browser/run.sh does it)")
    options = webdriver.ChromeOptions()
    browser = shutil.which("chromium")
    if browser:
        options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900",
                     "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never a download
    service = Service(executable_path=driver_path, log_output=str(state_dir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    return driver


# Readers of the page's state, in the page (no stale elements, hidden views read alike).
NODES_JS = """
return Array.from(document.querySelectorAll('table#nodes tbody tr[data-node-id]')).map((row) => ({
  id: row.dataset.nodeId,
  status: row.querySelector('.node-status').textContent.trim(),
  level: row.querySelector('.node-log-level').textContent.trim(),
  evicted: row.classList.contains('evicted'),
}));"""
FAULTS_JS = """
return Array.from(document.querySelectorAll('#faults [data-fault-key]')).map((fault) => ({
  key: fault.dataset.faultKey, node: fault.dataset.nodeId, kind: fault.dataset.kind, actor: fault.dataset.actorPath,
  flight: fault.querySelectorAll('.flight-record tbody tr').length,
  expanded: fault.classList.contains('expanded'),
}));"""
ACTORS_JS = """
return Array.from(document.querySelectorAll('#node-detail tr[data-actor-path]')).map((row) => ({
  path: row.dataset.actorPath,
  restarts: row.querySelector('.actor-restarts').textContent.trim(),
  panicEnabled: !row.querySelector('button.inject-fault[data-fault="panic"]').disabled,
}));"""
INSTANCE_JS = """
const row = document.querySelector(`#services tr[data-instance-id="${CSS.escape(arguments[0])}"]`);
return row ? row.querySelector('.instance-status').textContent.trim() : null;"""
JOURNAL_JS = """
return Array.from(document.querySelectorAll('#journal tr[data-journal-id]')).map((row) => ({
  id: row.dataset.journalId,
  who: row.querySelector('.journal-who').textContent.trim(),
  action: row.querySelector('.journal-action').textContent.trim(),
  target: row.querySelector('.journal-target').textContent.trim(),
  result: row.querySelector('.journal-result').textContent.trim(),
  detail: row.querySelector('.journal-detail').textContent.trim(),
}));"""


class Page:
    """The dashboard in the browser."""

    def __init__(self, driver: webdriver.Chrome, url: str):
        self.driver = driver
        self.url = url

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def displayed(self, css: str) -> bool:
        return any(element.is_displayed() for element in self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';", css)

    def click(self, css: str, what: str | None = None, timeout: float = 10.0) -> None:
        """Clicks the (fresh) element of `css` once it is displayed and enabled, scrolled to the middle."""
        def attempt():
            element = self.driver.find_element(By.CSS_SELECTOR, css)
            if not element.is_displayed() or not element.is_enabled():
                return False
            self.js("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});", element)
            element.click()
            return True
        wait_for(f"click {what or css}", attempt, timeout)

    def tab(self, name: str) -> None:
        self.click(f"#tab-{name}", f"the {name} tab")
        wait_for(f"the {name} view shown", lambda: self.displayed(f"#view-{name}"), 5)

    def type_into(self, css: str, text: str) -> None:
        element = self.driver.find_element(By.CSS_SELECTOR, css)
        element.clear()
        element.send_keys(text)

    def nodes(self) -> dict:
        return {row["id"]: row for row in self.js(NODES_JS)}

    def faults(self) -> list[dict]:
        return self.js(FAULTS_JS)

    def open_node(self, node_id: str) -> None:
        self.tab("cluster")
        self.click(f'table#nodes tr[data-node-id="{node_id}"] td.node-id', f"the row of {node_id}")
        wait_for(f"#node-detail of {node_id}",
                 lambda: self.displayed("#node-detail") and self.js(
                     "return document.querySelector('#node-detail').dataset.nodeId") == node_id, 5)

    def console_log(self) -> str:
        try:
            entries = self.driver.get_log("browser")
        except WebDriverException as error:
            return f"(console log unavailable: {error})\n"
        return "".join(f"{entry.get('level')} {entry.get('source', '')} {entry.get('message')}\n" for entry in entries)


# ---------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, args):
        self.args = args
        suffix = uuid.uuid4().hex[:6]
        self.database_name = f"emporium_dash_{os.getpid()}_{suffix}"
        self.namespace = f"dash{os.getpid()}{suffix}"
        self.vhost = f"dash-{os.getpid()}-{suffix}"
        self.state_dir = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="emporium-dashboard-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.failed = False
        self.page: Page | None = None
        self.cluster: Cluster | None = None
        self.admin_token = ""
        # Facts learnt on the way.
        self.node_of_role: dict[str, dict] = {}   # role -> {"nodeId", "address"}
        self.product_instance = ""
        self.panic_actor = ""
        self.panic_fault_key = ""

    # -- set-up

    def set_up(self) -> None:
        args = self.args
        self.db = bk.MariaDb(args.mysql, client=("mariadb", "--protocol=tcp"))
        broker = bk.Rabbitmqctl()
        amqp_base = args.amqp.rstrip("/")
        if broker.usable:
            broker.run("add_vhost", self.vhost)
            CLEANUPS.append(("delete vhost", lambda: broker.run("delete_vhost", self.vhost, check=False)))
            broker.run("set_permissions", "-p", self.vhost, args.amqp_user, ".*", ".*", ".*")
            amqp_url = f"{amqp_base}/{self.vhost}"
        else:
            amqp_url = f"{amqp_base}/%2f"
            log(f"WARNING: {broker.why_not}: the run shares the default vhost, its queues kept apart only by "
                f"the bus namespace {self.namespace} (left behind at exit)")
        first_port = bk.free_port_block(9)  # the registry, seven nodes, the gateway's public listener
        registry_port, http_port = first_port, first_port + 8
        env = bk.ClusterScript.environment(self.state_dir, {
            "EMPORIUM_MYSQL_URL": f"{self.db.base_url}/{self.database_name}",
            "EMPORIUM_AMQP_URL": amqp_url,
            "EMPORIUM_BUS_NAMESPACE": self.namespace,
            "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "EMPORIUM_REGISTRY_PORT": str(registry_port),
            "EMPORIUM_NODE_PORT_BASE": str(registry_port + 1),
            "EMPORIUM_HTTP": f"127.0.0.1:{http_port}",
            "EMPORIUM__CHAOS__ENABLED": "true",
        })
        self.cluster = Cluster(self.state_dir, env, registry_port, http_port)
        CLEANUPS.append(("drop database", lambda: None if args.keep else self.db.query(
            f"DROP DATABASE IF EXISTS `{self.database_name}`")))
        CLEANUPS.append(("ops/cluster.sh down", lambda: self.cluster.script("down", timeout=120)))
        log(f"state dir {self.state_dir}, database {self.database_name}, namespace {self.namespace}, "
            f"registry 127.0.0.1:{registry_port}, gateway {self.cluster.gateway_url}")
        with step("ops/cluster.sh up (every role)"):
            self.cluster.script("up", timeout=900)

        with step("the registry lists every role; the gateway serves /dashboard"):
            def every_role():
                instances = self.cluster.instances()
                for instance in instances:
                    for role in instance.get("roles") or [instance.get("service")]:
                        self.node_of_role.setdefault(role, {"nodeId": instance["nodeId"], "address": instance["address"]})
                missing = [role for role in ROLES if role not in self.node_of_role]
                if missing:
                    raise Failure(f"roles not registered yet: {missing}")
                return True
            wait_for("every role registered", every_role, 30, interval=0.5)
            status, page = http("GET", f"{self.cluster.gateway_url}/dashboard")
            if status != 200 or "signin-form" not in str(page):
                raise Failure(f"GET /dashboard answers {status}, not the dashboard page: {str(page)[:200]}")
            status, answer = http("POST", f"{self.cluster.gateway_url}/api/v1/auth/login",
                                  {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            if status != 200:
                raise Failure(f"the admin cannot sign in through the API: {status} {answer}")
            self.admin_token = answer["accessToken"]

        with step("headless Chromium"):
            driver = start_browser(self.state_dir)
            CLEANUPS.append(("quit the browser", driver.quit))
            self.page = Page(driver, f"{self.cluster.gateway_url}/dashboard")

    # -- scenarios

    def sign_in(self) -> None:
        page = self.page
        with step("1. /dashboard shows the sign-in form"):
            page.driver.get(page.url)
            wait_for("#signin-form shown", lambda: page.displayed("#signin-form"), 10)
        with step("1. a wrong password shows the API's message in #signin-error"):
            status, answer = http("POST", f"{self.cluster.gateway_url}/api/v1/auth/login",
                                  {"email": ADMIN_EMAIL, "password": "not-the-password"})
            if status != 401:
                raise Failure(f"a wrong password: expected 401, got {status} {answer}")
            expected = error_message(answer)
            page.type_into("#signin-email", ADMIN_EMAIL)
            page.type_into("#signin-password", "not-the-password")
            page.click("#signin-submit")
            shown = wait_for("#signin-error", lambda: page.text("#signin-error"), 10)
            if expected and shown != expected:
                raise Failure(f"#signin-error shows {shown!r}, the API said {expected!r}")
        with step("1. the admin signs in: every registered node is in table#nodes, UP"):
            page.type_into("#signin-password", ADMIN_PASSWORD)
            page.click("#signin-submit")
            wait_for("the dashboard shown", lambda: page.displayed("table#nodes"), 10)
            expected_nodes = {instance["nodeId"] for instance in self.cluster.instances()}

            def all_up():
                shown = page.nodes()
                wrong = {node: shown.get(node, {}).get("status", "missing") for node in expected_nodes
                         if shown.get(node, {}).get("status") != "UP"}
                if wrong:
                    raise Failure(f"not UP on the page: {wrong}")
                return True
            wait_for(f"{len(expected_nodes)} nodes UP in table#nodes", all_up, PAGE_READY, interval=0.25)
            log(f"      nodes: {', '.join(sorted(expected_nodes))}")

    def inject_panic(self) -> None:
        page = self.page
        order = self.node_of_role["order"]["nodeId"]
        with step(f"2. the node view of {order} shows its supervision tree"):
            page.open_node(order)
            actors = wait_for("actor rows in #node-detail", lambda: page.js(ACTORS_JS), 10)
            paths = [actor["path"] for actor in actors]
            # An actor of the order service itself, not a bus consumer or relay, when there is one.
            own = [path for path in paths if path.startswith("order/")]
            plain = [path for path in own if not re.search(r"consumer|relay|outbox|bus", path)]
            candidates = plain or own or paths
            self.panic_actor = "order/desk" if "order/desk" in candidates else candidates[0]
            actor = next(actor for actor in actors if actor["path"] == self.panic_actor)
            if not actor["panicEnabled"]:
                raise Failure(f"the panic button of {self.panic_actor} is disabled: the node does not report "
                              f"chaosEnabled although EMPORIUM__CHAOS__ENABLED=true")
            before = int(actor["restarts"])
            known_faults = {fault["key"] for fault in page.faults()}
            log(f"      actor {self.panic_actor} (of {paths}), restarts {before}")
        with step(f"2. inject panic into {self.panic_actor}: timeline entry and restart within {FAULT_WITHIN:g}s"):
            row = f'#node-detail tr[data-actor-path="{self.panic_actor}"]'
            page.click(f'{row} button.inject-fault[data-fault="panic"]', "inject panic")
            clicked = time.monotonic()

            def new_panic():
                for fault in page.faults():
                    if (fault["key"] not in known_faults and fault["node"] == order and fault["kind"] == "panic"
                            and fault["actor"] == self.panic_actor):
                        if fault["flight"] < 1:
                            raise Failure(f"the panic {fault['key']} has an empty .flight-record")
                        return fault
                return None
            fault = wait_for(f"a panic of {order} {self.panic_actor} in #faults", new_panic, FAULT_WITHIN, interval=0.05)
            self.panic_fault_key = fault["key"]
            left = max(0.05, FAULT_WITHIN - (time.monotonic() - clicked))

            def restarted():
                now = next((a for a in page.js(ACTORS_JS) if a["path"] == self.panic_actor), None)
                if now and int(now["restarts"]) > before + 1:
                    raise Failure(f".actor-restarts went from {before} to {now['restarts']}, not up by one")
                return now and int(now["restarts"]) == before + 1
            wait_for(f".actor-restarts of {self.panic_actor} = {before + 1}", restarted, left, interval=0.05)
            log(f"      fault {fault['key']} with {fault['flight']} flight-record rows, "
                f"{time.monotonic() - clicked:.2f}s after the click")
        with step("2. the fault expands to its flight record on the faults view"):
            page.tab("faults")
            head = f'#faults [data-fault-key="{self.panic_fault_key}"] .fault-head'
            page.click(head, "the panic's timeline entry")
            wait_for("the flight record shown", lambda: page.displayed(
                f'#faults [data-fault-key="{self.panic_fault_key}"] .flight-record tbody tr'), 5)

    def instance_out_of_service(self) -> None:
        page = self.page
        instances = [i for i in self.cluster.instances() if i.get("service") == "product"]
        if not instances:
            raise Failure("the registry lists no product instance")
        self.product_instance = instances[0]["id"]
        page.tab("cluster")
        for status in ("OUT_OF_SERVICE", "UP"):
            with step(f"3. {self.product_instance} set {status} from the services table; the registry agrees"):
                row = f'#services tr[data-instance-id="{self.product_instance}"]'
                wait_for("the instance's other status", lambda: page.js(INSTANCE_JS, self.product_instance) not in (None, status), 5)
                page.click(f"{row} button.instance-toggle", f"the toggle of {self.product_instance}")
                wait_for(f"the page shows {status}", lambda: page.js(INSTANCE_JS, self.product_instance) == status, ACTION_WITHIN)

                def registry_agrees():
                    listed = next((i for i in self.cluster.instances() if i["id"] == self.product_instance), None)
                    return listed and listed["status"] == status
                wait_for(f"the registry lists {self.product_instance} {status}", registry_agrees, ACTION_WITHIN, interval=0.25)

    def log_level(self) -> None:
        page = self.page
        order = self.node_of_role["order"]
        with step(f"4. log level of {order['nodeId']} set to debug; the page and the node agree"):
            page.open_node(order["nodeId"])
            wait_for("#log-level shown", lambda: page.displayed("#log-level"), 5)
            Select(page.driver.find_element(By.CSS_SELECTOR, "#log-level")).select_by_value("debug")
            page.click("#apply-log-level", "Apply")
            wait_for("table#nodes shows debug", lambda: page.nodes().get(order["nodeId"], {}).get("level") == "debug",
                     ACTION_WITHIN)
            wait_for(f"{order['address']}/admin/v1/supervision reports logLevel debug",
                     lambda: str(self.cluster.supervision(order["address"]).get("logLevel", "")).strip().lower() == "debug",
                     ACTION_WITHIN, interval=0.25)

    def journal(self) -> None:
        page = self.page
        order = self.node_of_role["order"]["nodeId"]
        product_node = self.node_of_role["product"]["nodeId"]
        with step("5. the journal has the three actions, by the admin, ok"):
            page.tab("journal")

            def entries_present():
                rows = page.js(JOURNAL_JS)
                mine = [row for row in rows if row["action"] in ("inject_fault", "set_instance_status", "set_log_level")]
                wrong = [row for row in mine if row["who"] != ADMIN_EMAIL or row["result"] != "ok"]
                if wrong:
                    raise Failure(f"journal entries not by {ADMIN_EMAIL} or not ok: {wrong}")
                injected = [r for r in mine if r["action"] == "inject_fault" and order in r["target"]]
                statuses = [r for r in mine if r["action"] == "set_instance_status"
                            and (self.product_instance in r["target"] or product_node in r["target"])]
                levels = [r for r in mine if r["action"] == "set_log_level" and order in r["target"]]
                if injected and len(statuses) >= 2 and levels:
                    return True
                raise Failure(f"inject_fault {len(injected)}, set_instance_status {len(statuses)} (2 expected), "
                              f"set_log_level {len(levels)}; journal: {rows[:8]}")
            wait_for("the journal entries", entries_present, ACTION_WITHIN, interval=0.25)

    def kill_payment(self) -> None:
        page = self.page
        payment = self.node_of_role["payment"]["nodeId"]
        page.tab("cluster")
        known_faults = {fault["key"] for fault in page.faults()}
        wait_for(f"{payment} UP before the kill", lambda: page.nodes().get(payment, {}).get("status") == "UP", 5)
        pid = self.cluster.kill9("payment")
        killed = time.monotonic()
        log(f"      kill -9 payment (pid {pid})")
        def shown(evicted_only: bool):
            row = page.nodes().get(payment)
            if row is None:
                raise Failure(f"{payment} is not in table#nodes at all")
            wanted = ("EVICTED",) if evicted_only else ("UNREACHABLE", "EVICTED")
            if row["status"] in wanted and (row["evicted"] or row["status"] != "EVICTED"):
                return row["status"]
            raise Failure(f"{payment} is {row['status']}" + (" (not greyed out)" if row["status"] == "EVICTED" else ""))

        with step(f"6. {payment} not UP on the page within {UNREACHABLE_WITHIN:g}s"):
            status = wait_for(f"{payment} UNREACHABLE or EVICTED", lambda: shown(False), UNREACHABLE_WITHIN)
            log(f"      {status} {time.monotonic() - killed:.2f}s after the kill")
        with step(f"6. {payment} EVICTED (greyed out) within {EVICTED_WITHIN:g}s, an eviction on the timeline"):
            wait_for(f"{payment} EVICTED", lambda: shown(True), max(0.1, EVICTED_WITHIN - (time.monotonic() - killed)))
            log(f"      EVICTED {time.monotonic() - killed:.2f}s after the kill")
            wait_for(f"an eviction of {payment} in #faults", lambda: any(
                fault["key"] not in known_faults and fault["kind"] == "eviction" and fault["node"] == payment
                for fault in page.faults()), max(0.1, EVICTED_WITHIN - (time.monotonic() - killed)))

    def screenshots(self, directory: Path) -> None:
        page = self.page
        directory.mkdir(parents=True, exist_ok=True)
        order = self.node_of_role["order"]["nodeId"]

        def save(name: str) -> None:
            page.js("document.querySelectorAll('#toasts .toast').forEach((toast) => toast.remove())")
            page.driver.save_screenshot(str(directory / name))
            log(f"      wrote {directory / name}")

        with step("7. screenshot of the cluster view"):
            page.tab("cluster")
            page.js("window.scrollTo(0, 0)")
            wait_for("the charts drawn", lambda: page.js(
                "return document.querySelectorAll('#chart-requests polyline, #chart-requests circle').length"), 10)
            try:  # a picture with some history in its charts (half a minute of snapshots), if it comes soon
                wait_for("30 s of chart history", lambda: page.js(
                    "return Math.max(0, ...Array.from(document.querySelectorAll('#chart-requests polyline'), "
                    "(line) => line.getAttribute('points').split(' ').length)) >= 30"), 40, interval=0.5)
            except Failure as short:
                log(f"      (charts with less history: {short})")
            save("cluster.png")
        with step("7. screenshot of the node view, an actor's flight recorder open"):
            page.open_node(order)
            row = f'#node-detail tr[data-actor-path="{self.panic_actor}"]'
            if not page.displayed(f'#node-detail tr.flight-row[data-flight-for="{self.panic_actor}"]'):
                page.click(f"{row} td.path", f"the row of {self.panic_actor}")
            wait_for("the flight recorder open", lambda: page.displayed(
                f'#node-detail tr.flight-row[data-flight-for="{self.panic_actor}"]'), 5)
            page.js("window.scrollTo(0, 0)")
            save("node.png")
        with step("7. screenshot of the faults view, the panic expanded"):
            page.tab("faults")
            fault = f'#faults [data-fault-key="{self.panic_fault_key}"]'
            if not page.displayed(f"{fault} .flight-record"):
                page.click(f"{fault} .fault-head", "the panic's timeline entry")
            wait_for("the flight record shown", lambda: page.displayed(f"{fault} .flight-record"), 5)
            page.js("arguments[0].scrollIntoView({block: 'start'})", page.driver.find_element(By.CSS_SELECTOR, fault))
            save("faults.png")
        with step("7. screenshot of the trace view (a trace link of the panic, else of a flight recorder)"):
            page.click(self.find_trace_link(), "a trace link")
            wait_for("the trace loaded", lambda: page.displayed("#trace-view") and (
                page.js("return document.querySelectorAll('#trace-view .span-row, #trace-view .trace-log').length")
                or "Loading" not in page.text("#trace-view")), 10)
            problem = page.text("#trace-view .signin-error")
            if problem:
                raise Failure(f"the trace view shows an error: {problem}")
            save("trace.png")
        with step("7. screenshot of the journal"):
            page.tab("journal")
            save("journal.png")

    def find_trace_link(self) -> str:
        """The CSS of a trace link on screen: the panic's (its entry or its flight record), another
        fault's, else one in a node's flight recorders (the sign-ins made traced messages in auth)."""
        page = self.page
        page.tab("faults")
        fault = f'#faults [data-fault-key="{self.panic_fault_key}"]'
        for css in (f"{fault} .fault-head .trace-link", f"{fault} .trace-link", "#faults .fault-head .trace-link"):
            if page.displayed(css):
                return css
        for role in ("auth", "order", "gateway", "product", "inventory", "notification", "registry"):
            page.open_node(self.node_of_role[role]["nodeId"])
            for actor in page.js(ACTORS_JS):
                flight = f'#node-detail tr.flight-row[data-flight-for="{actor["path"]}"]'
                if not page.displayed(flight):
                    page.click(f'#node-detail tr[data-actor-path="{actor["path"]}"] td.path', f"the row of {actor['path']}")
                    wait_for(f"the flight recorder of {actor['path']}", lambda: page.displayed(flight), 5)
                if page.displayed(f"{flight} .trace-link"):
                    log(f"      the panic has no trace id: a trace of {actor['path']} instead")
                    return f"{flight} .trace-link"
        raise Failure("no trace link anywhere: not on the faults, not in any actor's flight recorder")

    def access(self) -> None:
        page = self.page
        gateway = self.cluster.gateway_url
        with step("8. no token: 401 with the error envelope"):
            status, answer = http("GET", f"{gateway}/api/v1/dashboard/snapshot")
            if status != 401 or not is_error_envelope(answer):
                raise Failure(f"GET /api/v1/dashboard/snapshot without a token: {status} {str(answer)[:300]}")
        with step("8. a customer: 403 with the error envelope"):
            name = f"dash{uuid.uuid4().hex[:8]}"
            email = f"{name}@example.com"
            status, answer = http("POST", f"{gateway}/api/v1/auth/register", {
                "username": name, "email": email, "fullName": "Dashboard Customer", "password": CUSTOMER_PASSWORD})
            if status != 201:
                raise Failure(f"registering a customer: {status} {answer}")
            status, answer = http("POST", f"{gateway}/api/v1/auth/login", {"email": email, "password": CUSTOMER_PASSWORD})
            if status != 200:
                raise Failure(f"the customer's sign-in: {status} {answer}")
            token = answer["accessToken"]
            status, answer = http("GET", f"{gateway}/api/v1/dashboard/snapshot", headers={"Authorization": f"Bearer {token}"})
            if status != 403 or not is_error_envelope(answer):
                raise Failure(f"GET /api/v1/dashboard/snapshot as a customer: {status} {str(answer)[:300]}")
        with step("8. the page tells a customer the account is not an admin"):
            page.click("#signout", "Sign out")
            wait_for("#signin-form shown", lambda: page.displayed("#signin-form"), 5)
            page.type_into("#signin-email", email)
            page.type_into("#signin-password", CUSTOMER_PASSWORD)
            page.click("#signin-submit")
            wait_for("'not an admin' in #signin-error", lambda: "not an admin" in page.text("#signin-error")
                     and page.displayed("#signin-form"), 10)

    # -- failure evidence

    def keep_evidence(self) -> None:
        self.failed = True
        out = self.state_dir
        if self.page:
            try:
                self.page.driver.save_screenshot(str(out / "failure.png"))
                (out / "page.html").write_text(self.page.driver.page_source)
            except WebDriverException as error:
                print(f"ops/browser/dashboard_test.py: no screenshot: {error}", file=sys.stderr)
            (out / "console.log").write_text(self.page.console_log())
        if self.cluster:
            tails = self.cluster.log_tails()
            (out / "node-logs.txt").write_text(tails)
            print(self.cluster.log_tails(lines=8), file=sys.stderr)
        print(f"ops/browser/dashboard_test.py: evidence in {out} (failure.png, page.html, console.log, "
              f"node-logs.txt, logs/)", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshots", metavar="DIR",
                        help="save cluster.png, node.png, faults.png, trace.png and journal.png into DIR")
    parser.add_argument("--mysql", default=os.environ.get("EMPORIUM_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
                        help="the MariaDB server (no database; default $EMPORIUM_TEST_MYSQL_URL or root@127.0.0.1:3306)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="the RabbitMQ server (no vhost)")
    parser.add_argument("--amqp-user", default="guest", help="the user of --amqp, given the run's vhost")
    parser.add_argument("--state-dir", help="where ops/cluster.sh keeps its state (default a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the state dir and the database")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run = Run(args)
    # Registered first, so it runs last (the cluster is down by then); kept on a failure.
    CLEANUPS.append(("remove state dir", lambda: None if args.keep or run.failed else shutil.rmtree(
        run.state_dir, ignore_errors=True)))
    try:
        run.set_up()
        run.sign_in()
        run.inject_panic()
        run.instance_out_of_service()
        run.log_level()
        run.journal()
        run.kill_payment()
        if args.screenshots:
            run.screenshots(Path(args.screenshots).resolve())
        run.access()
        log("ops/browser/dashboard_test.py: every check passed")
        return 0
    except (Failure, RuntimeError, WebDriverException, subprocess.TimeoutExpired, OSError) as error:
        print(f"ops/browser/dashboard_test.py: FAILED: {error}", file=sys.stderr)
        if not isinstance(error, Failure):
            traceback.print_exc()
        run.keep_evidence()
        return 1
    except SystemExit as stop:
        print(f"ops/browser/dashboard_test.py: interrupted (exit {stop.code}): cleaning up", file=sys.stderr)
        return int(stop.code or 1)
    finally:
        run_cleanups()


if __name__ == "__main__":
    sys.exit(main())
