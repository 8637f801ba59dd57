#!/usr/bin/env python3
"""Chaos run (issue #10, item 10): an Emporium cluster on MariaDB and RabbitMQ takes orders at a
steady rate while its processes are killed, then the books are checked.

Set-up: a fresh database `chaos_<random>`, a RabbitMQ virtual host `chaos-<random>` of its own
(rabbitmqctl; without it the default vhost, with a loud warning), a bus namespace, free ports, a
state dir and a copy of config/, all handed to `ops/cluster.sh up`, which starts one node per role.
Through the gateway the admin creates SKUS products with INITIAL units of stock each and BUYERS
customers register and sign in.

Load: RATE orders a second (1-2 SKUs, 1-2 units each; one in ten paid with the declined test card,
which must end CANCELLED), each with its own Idempotency-Key. A client retries the same request
with the same key on a refused or broken connection and on 502/503/504 (after Retry-After, at most
0.5 s), signs in again on 401, and gives up after 60 s.

Chaos, in this order while the load runs (--minutes: the cycle again until the time is up):
kill -9 of auth, product, inventory, order, payment, notification and gateway in turn, each
restarted at once with `ops/cluster.sh up ROLE` (which waits for readiness); `rabbitmqctl
stop_app`, 5 s, `start_app` (the whole broker: every vhost on it); the registry killed (-9) for
15 s, then restarted.

The run's inventory.reservation_ttl_millis is --reservation-ttl (45 s): a reservation the order
desk leaves to its expiry (the order was never stored: the client's retry made another) is
released before the checks instead of 15 minutes later.

Then the load stops; once nothing is pending, reserved or unsent (at most 60 s), every invariant
must hold:
  - every placed order accepted (201), every accepted order final (CONFIRMED or CANCELLED) and
    final within 30 s of its creation (orders.created_at_ms / updated_at_ms);
  - CONFIRMED exactly for the good card, CANCELLED for the declined one; no order duplicated
    (one order per Idempotency-Key, seen by the API and in the orders table);
  - stock conserved per SKU: available + reserved + committed = initial, reserved 0 (inventory API
    as admin; committed = units of the CONFIRMED orders, and the COMMITTED reservations in MariaDB);
    no reservation without an order still held past its expiry;
  - one payment per order (payments API as each buyer), SUCCEEDED for CONFIRMED, FAILED for CANCELLED;
  - one notification per event (notifications API and MariaDB: user.registered, order.created,
    order.confirmed, order.cancelled, payment.failed);
  - no 401 for an access token that has not expired (API.md: a dependency that is down is a 503);
  - no outbox row unsent (bus_outbox.sent_at IS NULL); nothing dead-lettered (the bus_dead_letter
    table and every `*.dlq` queue of the vhost).
A summary table follows; the exit code is 1 when an invariant fails, 2 when the run could not be
made. Everything it made is removed at exit (the cluster stopped, database dropped, vhost deleted,
state dir removed) unless --keep.

    python3 ops/chaos.py                    # the short mode, about 2 minutes (ops/test.sh)
    python3 ops/chaos.py --minutes 8        # the long mode: chaos cycles for 8 minutes
    EMPORIUM_BIN=target/debug/emporium python3 ops/chaos.py --rate 8 --markdown table.md

The binary: EMPORIUM_BIN, else what ops/cluster.sh finds (PATH, $CARGO_TARGET_DIR/release, built).
Python 3.11 standard library, ops/bench/benchkit.py, curl (ops/cluster.sh), the mariadb client,
rabbitmqctl.
"""

import argparse
import base64
import http.client
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
import benchkit as bk  # noqa: E402  (log, free_port, MariaDb; ends its children at exit)

ROOT = bk.ROOT
CLUSTER_SCRIPT = ROOT / "ops" / "cluster.sh"
ROLES_IN_TURN = ("auth", "product", "inventory", "order", "payment", "notification", "gateway")
ADMIN_PASSWORD = "chaos-admin-password-0123"
BUYER_PASSWORD = "correct horse battery"
GOOD_CARD = "tok_visa"
DECLINED_CARD = "tok_chargeDeclined"
RETRY_STATUSES = {0, 502, 503, 504}
CLIENT_RETRY_WINDOW = 60.0
FINAL_WITHIN_SECONDS = 30.0
SETTLE_SECONDS = 60.0
REGISTRY_DOWN_SECONDS = 15.0
BROKER_DOWN_SECONDS = 5.0
RESTART_WITHIN = 120.0
NOTIFIED_EVENTS = ("user.registered", "order.created", "order.confirmed", "order.cancelled", "payment.failed")
NOTIFIED_IN_CLAUSE = ",".join(f"'{kind}'" for kind in NOTIFIED_EVENTS)
log = bk.log

CLEANUPS: list = []  # (label, callable), run in reverse order at exit


def run_cleanups() -> None:
    while CLEANUPS:
        label, action = CLEANUPS.pop()
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the other clean-ups must still run
            print(f"ops/chaos.py: cleanup {label}: {error}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# HTTP through the gateway


class Api:
    """One keep-alive connection to the gateway; not shared between threads. `call` answers
    (status, parsed JSON or text, headers); status 0 when the connection failed or broke."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.connection = None

    def call(self, method: str, path: str, body=None, token: str | None = None, headers: dict | None = None):
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        # A kept-alive connection the server closed meanwhile (its idle timeout) fails at once;
        # a request that may be repeated is then sent again once on a new connection, as HTTP
        # clients do, so that "connection" failures are real ones.
        repeatable = method in ("GET", "PUT") or "Idempotency-Key" in all_headers
        for attempt in (1, 2):
            reused = self.connection is not None
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.connection.request(method, path, body=data, headers=all_headers)
                response = self.connection.getresponse()
                raw = response.read()
                status, response_headers = response.status, {k.lower(): v for k, v in response.getheaders()}
                if response_headers.get("connection", "").lower() == "close":
                    self.close()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected) as error:
                self.close()
                if not (reused and repeatable and attempt == 1):
                    return 0, f"{type(error).__name__}: {error}", {}
            except (OSError, http.client.HTTPException) as error:
                self.close()
                return 0, f"{type(error).__name__}: {error}", {}
        try:
            return status, (json.loads(raw) if raw else None), response_headers
        except ValueError:
            return status, raw.decode(errors="replace"), response_headers

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def must(self, method: str, path: str, expected: int, body=None, token: str | None = None, within: float = 60.0):
        """`call` until it answers `expected` (retrying the statuses of RETRY_STATUSES for at most
        `within` s); raises with the last answer otherwise."""
        deadline = time.monotonic() + within
        while True:
            status, answer, _ = self.call(method, path, body, token)
            if status == expected:
                return answer
            if status not in RETRY_STATUSES or time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path}: expected {expected}, got {status} {answer}")
            time.sleep(0.2)

    def pages(self, path: str, token: str) -> list:
        """Every item of a paged list (`items`, `totalPages`), 100 a page."""
        items, page = [], 0
        separator = "&" if "?" in path else "?"
        while True:
            answer = self.must("GET", f"{path}{separator}page={page}&size=100", 200, token=token)
            items.extend(answer["items"])
            page += 1
            if page >= answer.get("totalPages", 0):
                return items


def error_code(answer) -> str:
    """The `error.code` of an error answer, else a short text."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("code"))
    return str(answer)[:60]


def seconds_left(token: str) -> float:
    """Seconds until the access token `token` expires (its `exp` claim), read without checking
    its signature; 0 when it cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - time.time()
    except (IndexError, ValueError, KeyError, TypeError):
        return 0.0


def error_message(answer) -> str:
    """The `error.message` of an error answer, else a short text."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("message"))[:160]
    return str(answer)[:160]


# ---------------------------------------------------------------------------------------------
# The cluster (ops/cluster.sh), the broker (rabbitmqctl), MariaDB


class Cluster(bk.ClusterScript):
    """The nodes ops/cluster.sh runs with `env` in `state_dir`, and their logs."""

    def error_lines(self) -> dict:
        """Per role: its log lines at level ERROR, and the panics."""
        counts = {}
        for role in ("registry",) + ROLES_IN_TURN:
            path = self.state_dir / "logs" / f"{role}.log"
            errors = panics = 0
            try:
                with open(path, errors="replace") as lines:
                    for line in lines:
                        errors += '"level":"ERROR"' in line
                        panics += "panicked" in line
            except OSError:
                pass
            counts[role] = (errors, panics)
        return counts


class Broker(bk.Rabbitmqctl):
    """RabbitMQ through rabbitmqctl, when it can be used by this user."""

    def stop_app(self) -> None:
        self.run("stop_app")

    def start_app(self) -> None:
        self.run("start_app")
        self.run("await_startup", timeout=180)

    def queues(self, vhost: str) -> dict:
        """{queue name: messages} of `vhost`."""
        done = self.run("list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "messages")
        out = {}
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out[parts[0]] = int(parts[1])
        return out


class Database(bk.MariaDb):
    """The run's database through the `mariadb` client."""

    def __init__(self, server_url: str, name: str):
        super().__init__(server_url, client=("mariadb", "--protocol=tcp"))
        self.name = name

    def rows(self, sql: str) -> list[list[str]]:
        return self.query(sql, self.name)

    def scalar(self, sql: str) -> int:
        rows = self.rows(sql)
        return int(rows[0][0]) if rows and rows[0] and rows[0][0] not in ("", "NULL") else 0

    def drop(self) -> None:
        self.query(f"DROP DATABASE IF EXISTS `{self.name}`")


# ---------------------------------------------------------------------------------------------
# Load


@dataclass
class Buyer:
    """A customer and its current access token."""
    username: str
    email: str
    token: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sign_in(self, api: Api) -> None:
        answer = api.must("POST", "/api/v1/auth/login", 200, {"email": self.email, "password": BUYER_PASSWORD})
        self.token = answer["accessToken"]


@dataclass
class PlacedOrder:
    """One order the client placed, with everything its requests got."""
    key: str
    buyer: Buyer
    body: dict
    card: str
    placed_at: float
    order_id: str | None = None
    other_ids: set = field(default_factory=set)  # ids answered for the same key besides order_id
    attempts: int = 0
    final_status: int | None = None
    final_code: str = ""
    done_at: float | None = None


class Load:
    """RATE orders a second, placed by WORKERS threads (each with its own connection) that retry
    with the same Idempotency-Key."""

    def __init__(self, gateway: tuple[str, int], buyers: list[Buyer], skus: list[str], rate: float, workers: int = 24):
        self.gateway = gateway
        self.buyers = buyers
        self.skus = skus
        self.rate = rate
        self.tickets: queue.Queue = queue.Queue()
        self.orders: list[PlacedOrder] = []
        self.retries: Counter = Counter()
        # 401 answers to a token that had not expired: (monotonic time, error message).
        self.valid_tokens_refused: list[tuple[float, str]] = []
        # Per retry reason: when each retry was (monotonic), and the first error message.
        self.retry_times: dict[str, list[float]] = defaultdict(list)
        self.first_message: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.random = random.Random(20260)
        self.threads = [threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)]
        self.threads += [threading.Thread(target=self._work, name=f"worker-{n}", daemon=True) for n in range(workers)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Stops placing new orders and waits for the ones in flight (bounded by the retry window)."""
        self.stopping.set()
        deadline = time.monotonic() + CLIENT_RETRY_WINDOW + 30
        for thread in self.threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))

    def _dispatch(self) -> None:
        started = time.monotonic()
        count = 0
        while not self.stopping.is_set():
            count += 1
            lines = self.random.sample(self.skus, self.random.choice((1, 1, 2)))
            card = DECLINED_CARD if self.random.random() < 0.1 else GOOD_CARD
            order = PlacedOrder(
                key=f"chaos-{uuid.uuid4()}",
                buyer=self.random.choice(self.buyers),
                body={"items": [{"sku": sku, "quantity": self.random.choice((1, 2))} for sku in lines],
                      "currency": "USD", "payment": {"method": "card", "token": card}},
                card=card,
                placed_at=time.monotonic(),
            )
            with self.lock:
                self.orders.append(order)
            self.tickets.put(order)
            self.stopping.wait(max(0.0, started + count / self.rate - time.monotonic()))
        for _ in self.threads:
            self.tickets.put(None)

    def _work(self) -> None:
        api = Api(*self.gateway)
        while True:
            order = self.tickets.get()
            if order is None:
                return
            self._place(api, order)

    def _place(self, api: Api, order: PlacedOrder) -> None:
        deadline = order.placed_at + CLIENT_RETRY_WINDOW
        while True:
            order.attempts += 1
            token = order.buyer.token
            status, answer, headers = api.call("POST", "/api/v1/orders", order.body, token,
                                               {"Idempotency-Key": order.key})
            if status == 201:
                order_id = answer["id"]
                if order.order_id is None:
                    order.order_id = order_id
                elif order_id != order.order_id:
                    order.other_ids.add(order_id)
                order.final_status, order.done_at = 201, time.monotonic()
                return
            retry = status in RETRY_STATUSES
            if status == 401:
                retry = True
                if seconds_left(token) > 5:
                    with self.lock:
                        self.valid_tokens_refused.append((time.monotonic(), error_message(answer)))
                with order.buyer.lock:
                    if order.buyer.token == token:
                        try:
                            order.buyer.sign_in(api)
                        except RuntimeError as error:
                            log(f"sign-in of {order.buyer.username} failed: {error}")
            reason = "connection" if status == 0 else f"{status} {error_code(answer)}"
            with self.lock:
                self.retries[reason] += 1
                self.retry_times[reason].append(time.monotonic())
                self.first_message.setdefault(reason, error_message(answer))
            if not retry or time.monotonic() > deadline:
                order.final_status, order.final_code, order.done_at = status, reason, time.monotonic()
                return
            try:
                pause = min(0.5, float(headers.get("retry-after", 0.2)))
            except ValueError:
                pause = 0.2
            time.sleep(max(0.05, pause))


# ---------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, args):
        self.args = args
        self.started = time.monotonic()
        self.events: list[tuple[float, str]] = []
        self.warnings: list[str] = []
        suffix = uuid.uuid4().hex[:8]
        self.database_name = f"chaos_{suffix}"
        self.namespace = f"chaos{suffix}"
        self.vhost = f"chaos-{suffix}"
        self.broker = Broker()
        self.state_dir = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="emporium-chaos-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.skus = [f"CHAOS-{n}" for n in range(1, args.skus + 1)]
        self.buyers: list[Buyer] = []
        self.load: Load | None = None
        self.restart_seconds: dict[str, list[float]] = defaultdict(list)

    def event(self, text: str) -> None:
        self.events.append((time.monotonic() - self.started, text))
        log(text)

    # -- set-up

    def set_up(self) -> None:
        args = self.args
        server_url = args.mysql.rstrip("/")
        self.db = Database(server_url, self.database_name)
        amqp_base = args.amqp.rstrip("/")
        if self.broker.usable:
            self.broker.run("add_vhost", self.vhost)
            CLEANUPS.append(("delete vhost", lambda: None if args.keep else self.broker.run("delete_vhost", self.vhost,
                                                                                             check=False)))
            self.broker.run("set_permissions", "-p", self.vhost, args.amqp_user, ".*", ".*", ".*")
            amqp_url = f"{amqp_base}/{self.vhost}"
        else:
            self.vhost = "/"
            amqp_url = f"{amqp_base}/%2f"
            self.warnings.append(f"{self.broker.why_not}: the run shares the default vhost (its queues are only "
                                 f"kept apart by EMPORIUM_BUS_NAMESPACE), the broker is not restarted and the "
                                 f"dead-letter queues are not checked")
        registry_port = bk.free_port_block(8)
        self.http_port = bk.free_port()
        env = bk.ClusterScript.environment(self.state_dir, {
            "EMPORIUM_MYSQL_URL": f"{server_url}/{self.database_name}",
            "EMPORIUM_AMQP_URL": amqp_url,
            "EMPORIUM_BUS_NAMESPACE": self.namespace,
            "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "EMPORIUM_REGISTRY_PORT": str(registry_port),
            "EMPORIUM_HTTP": f"127.0.0.1:{self.http_port}",
            # A reservation the order desk "left to its expiry" (its order was never stored) holds
            # stock until then: short enough to be released before the checks.
            "EMPORIUM__INVENTORY__RESERVATION_TTL_MILLIS": str(int(args.reservation_ttl * 1000)),
        })
        self.cluster = Cluster(self.state_dir, env)
        CLEANUPS.append(("drop database", lambda: None if self.args.keep else self.db.drop()))
        CLEANUPS.append(("ops/cluster.sh down", lambda: self.cluster.script("down", timeout=120)))
        log(f"state dir {self.state_dir}, database {self.database_name}, vhost {self.vhost}, "
            f"namespace {self.namespace}, registry port {registry_port}, gateway 127.0.0.1:{self.http_port}")
        started = time.monotonic()
        self.cluster.script("up", timeout=600)
        self.event(f"cluster up in {time.monotonic() - started:.1f} s (ops/cluster.sh up)")

        api = Api("127.0.0.1", self.http_port)
        self.admin_token = api.must("POST", "/api/v1/auth/login", 200,
                                    {"email": "admin@emporium.local", "password": ADMIN_PASSWORD})["accessToken"]
        for sku in self.skus:
            api.must("POST", "/api/v1/products", 201, {
                "sku": sku, "name": f"Chaos {sku}", "description": "stock under chaos", "price": "3.25",
                "currency": "USD", "category": "chaos", "attributes": {}}, self.admin_token)
            api.must("PUT", f"/api/v1/inventory/{sku}", 200,
                     {"available": self.args.initial, "reorderLevel": 0, "reorderQuantity": 0}, self.admin_token)
        for n in range(self.args.buyers):
            buyer = Buyer(username=f"chaos{n}", email=f"chaos{n}@example.com")
            api.must("POST", "/api/v1/auth/register", 201, {"username": buyer.username, "email": buyer.email,
                                                            "fullName": f"Chaos Buyer {n}", "password": BUYER_PASSWORD})
            buyer.sign_in(api)
            self.buyers.append(buyer)
        self.event(f"seeded {len(self.skus)} SKUs x {self.args.initial} units and {len(self.buyers)} buyers")

    # -- chaos

    def steady(self, seconds: float) -> None:
        time.sleep(seconds)

    def kill_and_restart(self, role: str, down_for: float = 0.0) -> None:
        pid = self.cluster.kill9(role)
        self.event(f"kill -9 {role} (pid {pid})")
        if down_for:
            time.sleep(down_for)
        started = time.monotonic()
        self.restart(role)
        took = time.monotonic() - started
        self.restart_seconds[role].append(took)
        self.event(f"{role} restarted and ready in {took:.1f} s (pid {self.cluster.pid(role)})")

    def restart(self, role: str) -> None:
        """`ops/cluster.sh up ROLE`, again while it fails (the broker or the database may be down
        for reasons of their own: other runs share them), for at most RESTART_WITHIN s."""
        deadline = time.monotonic() + RESTART_WITHIN
        while True:
            try:
                self.cluster.script("up", role, timeout=180)
                return
            except RuntimeError as error:
                if time.monotonic() > deadline:
                    raise
                reason = str(error).strip().splitlines()[-1]
                self.event(f"WARNING: {role} did not restart ({reason}); trying again")
                self.warnings.append(f"{role} needed more than one `ops/cluster.sh up {role}`: {reason}")
                time.sleep(2)

    def restart_broker(self) -> None:
        if not self.broker.usable:
            self.warnings.append(f"RabbitMQ was NOT restarted: {self.broker.why_not}")
            self.event("WARNING: skipping the broker restart (rabbitmqctl unusable)")
            return
        self.broker.stop_app()
        CLEANUPS.append(("rabbitmqctl start_app", self.broker.start_app))
        self.event("rabbitmqctl stop_app")
        time.sleep(BROKER_DOWN_SECONDS)
        started = time.monotonic()
        self.broker.start_app()
        CLEANUPS.pop()
        self.event(f"rabbitmqctl start_app (broker up again in {time.monotonic() - started:.1f} s)")
        deadline = time.monotonic() + 60
        while subprocess.run([str(CLUSTER_SCRIPT), "status"], env=self.cluster.env, capture_output=True,
                             timeout=60).returncode != 0:
            if time.monotonic() > deadline:
                self.event("WARNING: not every node is ready 60 s after the broker came back")
                return
            time.sleep(0.5)
        self.event(f"every node ready again {time.monotonic() - started:.1f} s after start_app")

    def cycle(self, gap: float) -> None:
        for role in ROLES_IN_TURN:
            self.kill_and_restart(role)
            self.steady(gap)
        self.restart_broker()
        self.steady(gap)
        self.kill_and_restart("registry", down_for=REGISTRY_DOWN_SECONDS)
        self.steady(gap)

    def chaos(self) -> None:
        self.load = Load(("127.0.0.1", self.http_port), self.buyers, self.skus, self.args.rate)
        self.load.start()
        self.event(f"load started: {self.args.rate:g} orders/s")
        self.steady(self.args.gap)
        ends = time.monotonic() + self.args.minutes * 60
        cycles = 0
        while True:
            cycles += 1
            self.event(f"chaos cycle {cycles}")
            self.cycle(self.args.gap)
            if time.monotonic() >= ends:
                break
        self.load.stop()
        self.cycles = cycles
        self.event(f"load stopped: {len(self.load.orders)} orders placed")

    # -- checks

    def settle(self) -> dict:
        """Waits (at most SETTLE_SECONDS) until no order is pending, nothing is reserved and the
        outbox is empty; answers the last observation."""
        deadline = time.monotonic() + max(SETTLE_SECONDS, self.args.reservation_ttl + 5)
        while True:
            seen = {
                "pending": self.db.scalar("SELECT COUNT(*) FROM orders WHERE status = 'PENDING_PAYMENT'"),
                "reserved": self.db.scalar("SELECT COALESCE(SUM(reserved), 0) FROM inventory_stock"),
                "unsent": self.db.scalar("SELECT COUNT(*) FROM bus_outbox WHERE sent_at IS NULL"),
                "unnotified": self.db.scalar(
                    "SELECT COUNT(*) FROM bus_outbox o LEFT JOIN notifications n ON n.event_id = o.event_id "
                    f"WHERE n.id IS NULL AND o.routing_key IN ({NOTIFIED_IN_CLAUSE})"),
            }
            if not any(seen.values()) or time.monotonic() > deadline:
                return seen
            time.sleep(0.5)

    def check(self) -> list[tuple[str, str, str, str]]:
        started = time.monotonic()
        seen = self.settle()
        self.event(f"settled in {time.monotonic() - started:.1f} s: {seen}")
        api = Api("127.0.0.1", self.http_port, timeout=30)
        rows = []

        def row(name: str, expected: str, measured: str, ok: bool | None) -> None:
            rows.append((name, expected, measured, "-" if ok is None else ("pass" if ok else "FAIL")))

        placed = self.load.orders
        accepted = [order for order in placed if order.order_id]
        not_accepted = Counter(order.final_code for order in placed if not order.order_id)
        row("orders placed", f"{self.args.rate:g}/s", f"{len(placed)} ({sum(self.load.retries.values())} retries: "
            + ", ".join(f"{reason} x{n}" for reason, n in self.load.retries.most_common(6)) + ")", None)
        row("orders accepted", "all placed", f"{len(accepted)}"
            + (f"; not accepted: {dict(not_accepted)}" if not_accepted else ""), len(accepted) == len(placed))

        refused = self.load.valid_tokens_refused
        row("valid tokens refused", "0 (API.md: 503 while a dependency is down)", f"{len(refused)}" + (
            f", {refused[0][0] - self.started:.0f}-{refused[-1][0] - self.started:.0f} s into the run: "
            f"{refused[0][1]}" if refused else ""), not refused)

        # The orders as their buyers see them, and in the database.
        api_orders = {}
        for buyer in self.buyers:
            buyer.sign_in(api)
            for order in api.pages("/api/v1/orders", buyer.token):
                api_orders[order["id"]] = order
        db_orders = {r[0]: (r[1], int(r[2]), int(r[3])) for r in self.db.rows(
            "SELECT id, status, created_at_ms, updated_at_ms FROM orders")}
        final = [o for o in accepted if api_orders.get(o.order_id, {}).get("status") in ("CONFIRMED", "CANCELLED")]
        latencies = sorted(db_orders[o.order_id][2] - db_orders[o.order_id][1]
                           for o in final if o.order_id in db_orders)
        slowest = latencies[-1] / 1000 if latencies else 0.0
        not_final = [o.order_id for o in accepted if o not in final]
        late = [oid for oid, (status, created, updated) in db_orders.items()
                if status != "PENDING_PAYMENT" and updated - created > FINAL_WITHIN_SECONDS * 1000]
        row("orders final", f"all accepted, each within {FINAL_WITHIN_SECONDS:.0f} s",
            f"{len(final)} of {len(accepted)}; slowest {slowest:.1f} s, p99 "
            f"{(latencies[int(len(latencies) * 0.99)] / 1000 if latencies else 0):.1f} s"
            + (f"; not final: {not_final[:5]}" if not_final else "") + (f"; late: {late[:5]}" if late else ""),
            not not_final and not late)
        confirmed = sum(1 for o in api_orders.values() if o["status"] == "CONFIRMED")
        cancelled = sum(1 for o in api_orders.values() if o["status"] == "CANCELLED")
        for card, status, count in ((GOOD_CARD, "CONFIRMED", confirmed), (DECLINED_CARD, "CANCELLED", cancelled)):
            paid_with = [o for o in accepted if o.card == card]
            wrong = [f"{o.order_id} {api_orders.get(o.order_id, {}).get('status')}" for o in paid_with
                     if api_orders.get(o.order_id, {}).get("status") != status]
            row(f"orders {status.lower()}", f"{len(paid_with)} ({card})",
                str(count) + (f"; not {status}: {wrong[:4]}" if wrong else ""), count == len(paid_with) and not wrong)

        # One order per Idempotency-Key: no order that no key was answered with, no key answered
        # with two orders, no order row without its key.
        key_of_order = {r[1]: r[0] for r in self.db.rows("SELECT idempotency_key, order_id FROM order_idempotency_keys")}
        known_ids = {o.order_id for o in accepted}
        given_up_keys = {o.key for o in placed if not o.order_id}
        unanswered = sorted(set(db_orders) - known_ids)
        made_for_given_up = [oid for oid in unanswered if key_of_order.get(oid) in given_up_keys]
        unexpected = sorted(set(unanswered) - set(made_for_given_up)) + sorted(set(api_orders) - set(db_orders))
        unkeyed = sorted(set(db_orders) - set(key_of_order))
        answered_twice = [(o.key, o.order_id, sorted(o.other_ids)) for o in accepted if o.other_ids]
        duplicates = len(unexpected) + len(unkeyed) + len(answered_twice)
        detail = (f"{len(db_orders)} order rows, {len(key_of_order)} idempotency keys, {len(known_ids)} keys answered"
                  + (f", {len(made_for_given_up)} made for keys the client gave up on" if made_for_given_up else ""))
        if duplicates:
            detail += (f"; orders no key was answered with: {unexpected[:4]}; rows without a key: {unkeyed[:4]}; "
                       f"keys answered with two orders: {answered_twice[:3]}")
        row("orders duplicated", "0", f"{duplicates} ({detail})", duplicates == 0)

        # Stock: available + reserved + committed = initial, per SKU.
        committed_api = Counter()
        for order in api_orders.values():
            if order["status"] == "CONFIRMED":
                for item in order["items"]:
                    committed_api[item["sku"]] += item["quantity"]
        committed_db = Counter({r[0]: int(r[1]) for r in self.db.rows(
            "SELECT l.sku, SUM(l.quantity) FROM inventory_reservation_lines l JOIN inventory_reservations r "
            "ON r.order_id = l.order_id WHERE r.status = 'COMMITTED' GROUP BY l.sku")})
        stock_problems = []
        for sku in self.skus:
            stock = api.must("GET", f"/api/v1/inventory/{sku}", 200, token=self.admin_token)
            total = stock["available"] + stock["reserved"] + committed_api[sku]
            if total != self.args.initial or stock["reserved"] != 0 or committed_db[sku] != committed_api[sku]:
                stock_problems.append(f"{sku}: available {stock['available']} + reserved {stock['reserved']} + "
                                      f"committed {committed_api[sku]} (db {committed_db[sku]}) = {total}")
        row("stock conserved", f"avail+reserved+committed = {self.args.initial} per SKU, reserved 0",
            "; ".join(stock_problems) if stock_problems else
            f"{len(self.skus)} SKUs, {sum(committed_api.values())} units committed", not stock_problems)
        # Reservations whose order was never stored (the order desk left them to their expiry).
        orphans = Counter({r[0]: int(r[1]) for r in self.db.rows(
            "SELECT r.status, COUNT(*) FROM inventory_reservations r LEFT JOIN orders o ON o.id = r.order_id "
            "WHERE o.id IS NULL GROUP BY r.status")})
        overdue = self.db.rows(
            "SELECT r.order_id FROM inventory_reservations r LEFT JOIN orders o ON o.id = r.order_id "
            "WHERE o.id IS NULL AND r.status = 'RESERVED' AND r.expires_at_ms < "
            "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - 5000")
        row("reservations without order", f"released by expiry ({self.args.reservation_ttl:g} s)",
            f"{sum(orphans.values())}: {dict(orphans) or 'none'}" + (f"; past expiry: {overdue[:4]}" if overdue else ""),
            not overdue)

        # Payments: one per order, as each buyer sees them.
        payments = defaultdict(list)
        for buyer in self.buyers:
            for payment in api.pages("/api/v1/payments", buyer.token):
                payments[payment["orderId"]].append(payment["status"])
        payment_problems = []
        for order_id, order in api_orders.items():
            want = {"CONFIRMED": ["SUCCEEDED"], "CANCELLED": ["FAILED"]}.get(order["status"])
            if payments.get(order_id, []) != want:
                payment_problems.append(f"{order_id} {order['status']}: {payments.get(order_id, [])}")
        payment_problems += [f"{oid}: payment of no known order" for oid in set(payments) - set(api_orders)]
        row("payments", "one per order", f"{sum(len(p) for p in payments.values())} for {len(api_orders)} orders"
            + (f"; {len(payment_problems)} wrong: {payment_problems[:4]}" if payment_problems else ""),
            not payment_problems)

        # Notifications: one per event, by the API (per kind) and in the database (per event id).
        kinds = Counter()
        repeated_event_ids = []
        for buyer in self.buyers:
            notes = api.pages("/api/v1/notifications", buyer.token)
            kinds.update(note["kind"] for note in notes)
            per_event = Counter(note["eventId"] for note in notes)
            repeated_event_ids += [event_id for event_id, n in per_event.items() if n > 1]
        expected_kinds = Counter({"user.registered": len(self.buyers), "order.created": len(api_orders),
                                  "order.confirmed": confirmed, "order.cancelled": cancelled,
                                  "payment.failed": cancelled})
        off_by_db = self.db.rows(
            "SELECT o.event_id, o.routing_key, COUNT(n.id) FROM bus_outbox o LEFT JOIN notifications n "
            f"ON n.event_id = o.event_id WHERE o.routing_key IN ({NOTIFIED_IN_CLAUSE}) GROUP BY o.event_id, o.routing_key "
            "HAVING COUNT(n.id) <> 1")
        events_in_outbox = self.db.scalar(f"SELECT COUNT(*) FROM bus_outbox WHERE routing_key IN ({NOTIFIED_IN_CLAUSE})")
        notes_in_db = self.db.scalar("SELECT COUNT(*) FROM notifications")
        notes_ok = (kinds == expected_kinds and not repeated_event_ids and not off_by_db and events_in_outbox > 0
                    and notes_in_db == events_in_outbox)
        row("notifications", "one per event", f"{notes_in_db} for {events_in_outbox} events "
            f"({sum(kinds.values())} seen by the buyers, the rest the admin's)"
            + ("" if kinds == expected_kinds else f"; by kind {dict(kinds)} expected {dict(expected_kinds)}")
            + (f"; event ids notified twice: {repeated_event_ids[:4]}" if repeated_event_ids else "")
            + (f"; events without exactly one: {off_by_db[:4]}" if off_by_db else ""), notes_ok)

        unsent = self.db.rows("SELECT service, COUNT(*), MIN(created_at), MAX(attempts) FROM bus_outbox "
                              "WHERE sent_at IS NULL GROUP BY service")
        total_outbox = self.db.scalar("SELECT COUNT(*) FROM bus_outbox")
        row("stuck outbox rows", "0", (f"{sum(int(r[1]) for r in unsent)}: {unsent}" if unsent
                                        else f"0 of {total_outbox} rows unsent"), not unsent)

        dead_db = self.db.scalar("SELECT COUNT(*) FROM bus_dead_letter")
        if self.broker.usable:
            dead_queues = {name: n for name, n in self.broker.queues(self.vhost).items() if name.endswith(".dlq")}
            dead = dead_db + sum(dead_queues.values())
            full = ", ".join(f"{name} {n}" for name, n in dead_queues.items() if n)
            row("dead letters", "0", f"{dead} ({len(dead_queues)} dead-letter queues" + (f": {full}" if full else "")
                + f"; bus_dead_letter table {dead_db})", dead == 0)
        else:
            row("dead letters", "0", f"table {dead_db}; WARNING: dead-letter queues not checked", dead_db == 0)
        return rows


def windows(times: list[float], gap: float = 3.0) -> str:
    """Sorted times as spans "12-15, 40" (a new span after `gap` s without one)."""
    spans: list[list[float]] = []
    for at in times:
        if spans and at - spans[-1][1] <= gap:
            spans[-1][1] = at
        else:
            spans.append([at, at])
    return ", ".join(f"{a:.0f}" if round(a) == round(b) else f"{a:.0f}-{b:.0f}" for a, b in spans)


def print_summary(run: Run, rows: list, markdown_path: str | None, command: str) -> None:
    header = ("Check", "Expected", "Measured", "Result")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    print()
    for line in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    for warning in run.warnings:
        print(f"WARNING: {warning}")
    restarts = ", ".join(f"{role} {max(times):.1f} s" for role, times in run.restart_seconds.items())
    errors = {role: counts for role, counts in run.cluster.error_lines().items() if any(counts)}
    print(f"chaos cycles: {run.cycles}; slowest restart until ready: {restarts}")
    print("retries by reason: when (seconds into the run), and the first message:")
    for reason, count in run.load.retries.most_common():
        spans = windows([at - run.started for at in sorted(run.load.retry_times[reason])])
        print(f"  {reason} x{count} at {spans}: {run.load.first_message[reason]}")
    print("timeline (seconds into the run): " + "; ".join(f"{at:.0f} {text}" for at, text in run.events
                                                           if not text.startswith("chaos cycle")))
    print("ERROR log lines / panics per role: " + (", ".join(f"{r} {e}/{p}" for r, (e, p) in errors.items()) or "none"))
    print()
    if markdown_path:
        info = bk.machine_info()
        lines = [f"`{command}` ({info['date']}, {info['nproc']} x {info['model']}, {info['commit']}):", "",
                 "| check | expected | measured | result |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(cell.replace('|', '/') for cell in r)} |" for r in rows]
        lines += ["", f"Chaos cycles: {run.cycles}; slowest restart until ready: {restarts}. "
                  f"Orders at {run.args.rate:g}/s from {run.args.buyers} buyers on {len(run.skus)} SKUs."]
        lines += [f"WARNING: {warning}" for warning in run.warnings]
        Path(markdown_path).write_text("\n".join(lines) + "\n")
        log(f"wrote {markdown_path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="long mode: repeat the chaos cycle until this many minutes have passed (default: one cycle)")
    parser.add_argument("--rate", type=float, default=5.0, help="orders a second (default 5)")
    parser.add_argument("--gap", type=float, default=None,
                        help="seconds of steady load after each step (default 4, 10 with --minutes)")
    parser.add_argument("--buyers", type=int, default=6)
    parser.add_argument("--skus", type=int, default=4)
    parser.add_argument("--initial", type=int, default=100000, help="units of stock per SKU")
    parser.add_argument("--reservation-ttl", type=float, default=45.0,
                        help="inventory.reservation_ttl_millis of the run, in seconds (default 45)")
    parser.add_argument("--mysql", default=os.environ.get("EMPORIUM_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
                        help="the MariaDB server (no database)")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="the RabbitMQ server (no vhost)")
    parser.add_argument("--amqp-user", default="guest", help="the user of --amqp, given the run's vhost")
    parser.add_argument("--state-dir", help="where ops/cluster.sh keeps its state (default a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the state dir and the database")
    parser.add_argument("--markdown", help="also write the summary as a markdown table to this file")
    args = parser.parse_args()
    if args.gap is None:
        args.gap = 10.0 if args.minutes else 4.0
    command = " ".join(["python3", "ops/chaos.py", *sys.argv[1:]])

    run = Run(args)
    # Registered before set_up adds its own, so it runs last: the cluster is down by then.
    CLEANUPS.append(("remove state dir", lambda: None if args.keep else shutil.rmtree(run.state_dir, ignore_errors=True)))
    try:
        try:
            run.set_up()
            run.chaos()
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
            if run.load:
                run.load.stopping.set()
            print(f"ops/chaos.py: the run could not be made: {error}", file=sys.stderr)
            for role in ("registry",) + ROLES_IN_TURN:
                path = run.state_dir / "logs" / f"{role}.log"
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-5:]
                    print(f"--- last lines of {role}.log\n" + "\n".join(line[:400] for line in tail), file=sys.stderr)
            return 2
        try:
            rows = run.check()
        except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError) as error:
            print(f"ops/chaos.py: the checks could not be made: {error!r}", file=sys.stderr)
            return 2
        print_summary(run, rows, args.markdown, command)
        failed = [r[0] for r in rows if r[3] == "FAIL"]
        if failed:
            print(f"ops/chaos.py: FAILED: {', '.join(failed)} (logs: {run.state_dir}/logs"
                  + ("" if args.keep else ", removed at exit: run with --keep to keep them") + ")")
            return 1
        print("ops/chaos.py: every invariant holds")
        return 0
    finally:
        run_cleanups()


if __name__ == "__main__":
    sys.exit(main())
