#!/usr/bin/env python3
"""Orders end to end (issue 6): the order saga on a multi-node cluster with MariaDB and RabbitMQ,
through the gateway, against the raw limit of the same SQL issued by a bare loop.

Set-up, as nodes/tests/orders.rs (`Cluster::start`) does it, all on 127.0.0.1:

  - a fresh MariaDB database `bench_orders_<random>` (dropped at the end), a fresh RabbitMQ
    vhost (`rabbitmqctl add_vhost` / `set_permissions`, deleted at the end), the MongoDB-compatible
    test server (ops/mongodb/start.sh with a state dir of its own, stopped at the end);
  - a registry (own copy of config/) and one node per role: auth, product, inventory, order,
    payment, notification, gateway (`--role R --registry URL --listen 127.0.0.1:0 --data-dir D`,
    the gateway with `--http 127.0.0.1:PORT`; env EMPORIUM_MYSQL_URL, EMPORIUM_AMQP_URL,
    EMPORIUM_MONGODB_URL, EMPORIUM_ADMIN_PASSWORD, EMPORIUM_CLUSTER_SECRET);
  - through the gateway: the admin creates N products (`POST /api/v1/products`) with a large
    stock (`PUT /api/v1/inventory/{sku}`); U users register and sign in.

Measured:

  1. For each client concurrency (default 8 and 32): that many Python threads, each on its own
     keep-alive connection, place orders (`POST /api/v1/orders`, a random user, 1-3 distinct
     random SKUs, 1-2 units each, card `tok_visa`) for a fixed time. Recorded: the POST's
     latency (p50/p99), and orders/s until every order placed is final: orders placed / (the
     last order's CONFIRMED/CANCELLED time in the database - the first POST). The time from
     POST to CONFIRMED: for every order, from the database (`orders.updated_at_ms` - the
     client's send time, one clock), and for a sample (every Kth order) by polling
     `GET /api/v1/orders/{id}` through the gateway every 50 ms. Also the time until every effect
     is stored (stock committed, payments and both notifications per order).
  2. VmRSS of every node process: idle (5 s after the cluster is ready, before anything is asked
     of it), sampled every 0.5 s during the runs (max), and VmHWM.
  3. The raw limit, in the same run and database, with the nodes stopped:
     ops/bench/orders/raw (a bare sqlx loop, its own cargo project) issues per order the SQL
     transactions of the saga (reservation, order + outbox, payment + outbox + inbox, order
     confirmation + outbox + inbox, stock commit + outbox + inbox, two notifications + inbox)
     and the relays' outbox statements, at several concurrencies; its best orders/s is the
     limit. Goals (issue 14): system / raw >= 80 %; POST p99 <= 100 ms at 8 and 32 clients; 0
     errors; RSS per node <= 30 MiB idle and <= 50 MiB under the order load.

Before building and measuring, the script waits (every 30 s, at most --wait-minutes) until no
other ops/bench/{gateway,inventory,cluster}.py runs: the machine has 2 cores. Server settings
(innodb_flush_log_at_trx_commit and others) are read and reported, never changed.

Prints progress every second and a summary table, and replaces the section
"## Orders end to end (issue 6)" of docs/BENCHMARKS.md. Python 3.11 standard library, the
`mariadb` and `rabbitmqctl` clients and cargo.

    python3 ops/bench/orders.py --rev HEAD        # build and measure a clean export of a commit
    python3 ops/bench/orders.py                   # the binary as it is (built if missing)
    python3 ops/bench/orders.py --concurrency 8,32 --duration 25 --raw-concurrency 8,32,64
    python3 ops/bench/orders.py --json out.json; python3 ops/bench/orders.py --report-from out.json

The binary is built with `cargo build --release -p emporium --features test-services` in a target
dir of this script's own (--target-dir, default ~/.cache/emporium/orders-target, seeded from a copy
of ~/.cache/emporium/target/release), from an export outside any target dir (see
Bench.ensure_binary for why), and copied into the run's temp dir so that another build cannot swap
it mid-run. The raw loop is built with
CARGO_TARGET_DIR=~/.cache/emporium/bench-raw-target. Every child process is ended at exit,
the database and the vhost are dropped, the Mongo server stopped; every wait is bounded.
"""

import argparse
import atexit
import datetime
import hashlib
import http.client
import json
import os
import random
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402  (helpers shared by ops/bench: log, HTTP, /proc, MariaDB, docs)

ROOT = bk.ROOT
SECTION = "## Orders end to end (issue 6)"

# Seconds a fresh cluster idles before its idle RSS (figure 7) is read.
IDLE_SECONDS = 5.0
BUILD_COMMAND = bk.BUILD_COMMAND
RAW_DIR = ROOT / "ops" / "bench" / "orders" / "raw"
SECRET = "bench-orders-secret-0123456789abcdef"
ADMIN_PASSWORD = "bench-admin-password-0123"
USER_PASSWORD = "correct horse battery"
ROLES = ("auth", "product", "inventory", "order", "payment", "notification", "gateway")
OTHER_BENCHES = r"ops/bench/(gateway|inventory|cluster)\.py"
SERVER_VARIABLES = ("version", "innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "innodb_buffer_pool_size",
                    "innodb_log_file_size", "innodb_flush_method", "innodb_doublewrite", "tx_isolation",
                    "max_connections")
STATUS_COUNTERS = ("Com_commit", "Com_rollback", "Innodb_data_fsyncs", "Innodb_log_writes", "Innodb_deadlocks",
                   "Innodb_row_lock_waits", "Questions")
log = bk.log

CLEANUPS: list = []  # (label, callable), run in reverse order at exit


def run_cleanups() -> None:
    while CLEANUPS:
        label, action = CLEANUPS.pop()
        try:
            action()
        except Exception as error:  # noqa: BLE001 - cleanup must go on
            print(f"cleanup {label}: {error}", file=sys.stderr)


atexit.register(run_cleanups)


# ---------------------------------------------------------------------------------------------
# MariaDB, RabbitMQ, MongoDB


class MariaDb(bk.MariaDb):
    """The `mariadb` command-line client (over TCP) against the server of `url`
    (mysql://user[:pw]@host[:port]), with the benchmark's own database once `create` made it."""

    def __init__(self, url: str):
        super().__init__(url, client=("mariadb", "--protocol=tcp"))

    def scalar(self, sql: str) -> str | None:
        rows = self.query(sql)
        return rows[0][0] if rows and rows[0] else None

    def create(self) -> str:
        name = f"bench_orders_{secrets.token_hex(4)}"
        self.query(f"CREATE DATABASE {name}")
        self.database = name
        CLEANUPS.append((f"drop database {name}", lambda: self.query(f"DROP DATABASE IF EXISTS {name}", "mysql")))
        return f"{self.base_url}/{name}"

    def variables(self, names: tuple[str, ...] = SERVER_VARIABLES, database: str | None = "mysql") -> dict:
        return super().variables(names, database)

    def status(self, names: tuple[str, ...] = STATUS_COUNTERS, database: str | None = "mysql") -> dict[str, int]:
        """Server-wide counters (every database on the server counts; ours is the only busy one)."""
        return super().status(names, database)


def rabbit_vhost() -> str:
    name = f"bench-orders-{secrets.token_hex(4)}"
    for args in (["add_vhost", name], ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        if args[0] == "add_vhost":
            CLEANUPS.append((f"delete vhost {name}", lambda: subprocess.run(
                ["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=120)))
    return f"amqp://guest:guest@127.0.0.1:5672/{name}"


def start_mongodb(tmp: Path) -> tuple[str, int | None]:
    """ops/mongodb/start.sh with a state dir of our own (a shared one would stop someone else's
    server); answers the URL and the server's pid."""
    state = tmp / "mongodb-state"
    env = dict(os.environ, EMPORIUM_MONGODB_STATE=str(state))
    stop = ROOT / "ops" / "mongodb" / "stop.sh"
    CLEANUPS.append(("stop the MongoDB-compatible server",
                     lambda: subprocess.run([str(stop), "--quiet"], env=env, timeout=60)))
    done = subprocess.run([str(ROOT / "ops" / "mongodb" / "start.sh"), "--watch-pid", str(os.getpid())],
                          capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"ops/mongodb/start.sh failed: {done.stderr.strip()[-2000:]}")
    line = done.stdout.strip().splitlines()[-1]
    url = line.split("=", 1)[1]
    pid = None
    try:
        pid = int((state / "pid").read_text().strip())
    except (OSError, ValueError):
        pass
    return url, pid


# ---------------------------------------------------------------------------------------------
# Nodes


class Node(bk.Node):
    """A node started with `args` as given (plus `--node-id`), the orders secret and
    bench.node_env."""

    tail_lines = 20

    def __init__(self, bench: "Bench", node_id: str, args: list[str], env: dict):
        self.node_id = node_id
        self.log_path = bench.tmp / f"{node_id}.log"
        self._log = open(self.log_path, "wb")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EMPORIUM_CLUSTER_SECRET": SECRET, **env,
                    **bench.node_env}
        self.proc = subprocess.Popen([str(bench.binary), *args, "--node-id", node_id], env=full_env, cwd=bench.tmp,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        bk.CHILDREN.append(self.proc)
        self.listen = None

    def wait_started(self, within: float = 60.0, every: float = 0.02) -> "Node":
        return super().wait_started(within, every)

    def wait_ready(self, within: float = 60.0) -> "Node":
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node_id} exited with {self.proc.returncode}:\n{self.tail()}")
            return bk.get(self.url("/health/ready"), 5, secret=SECRET)[0] == 200
        bk.wait_until(f"{self.node_id} ready", ready, within, every=0.1)
        return self


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="emporium-bench-orders-"))
        CLEANUPS.append(("remove the temp dir", self.remove_tmp))
        self.target_dir = Path(os.path.expanduser(args.target_dir))
        self.binary = self.target_dir / "release" / "emporium"
        self.source = ROOT
        self.source_label = None
        self.nodes: dict[str, Node] = {}
        self.raw_binary = None
        self.node_env = dict(item.split("=", 1) for item in (args.node_env or []))

    def remove_tmp(self) -> None:
        for node in self.nodes.values():
            if node.proc.poll() is None:
                node.proc.kill()
        if self.args.keep_logs:
            log(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def seed_target_dir(self) -> None:
        """A new target dir starts as a copy of the shared one's release dir (third-party crates
        stay fresh; the workspace crates, whose recorded sources are elsewhere, are rebuilt)."""
        shared = Path(os.path.expanduser("~/.cache/emporium/target/release"))
        if (self.target_dir / "release").exists() or not shared.is_dir():
            return
        log(f"seeding {self.target_dir} with a copy of {shared}")
        self.target_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(shared), str(self.target_dir / "release")], check=True, timeout=1800)

    def ensure_binary(self) -> None:
        self.seed_target_dir()
        if self.args.rev:
            # A clean export of one commit: uncommitted work in the tree neither breaks the build
            # nor ends up in the figures. Exported OUTSIDE the target dir: cargo records the sources
            # of a crate built from inside the target dir relative to the target dir, and the
            # workspace crates' unit hashes do not depend on where the workspace is, so after a
            # build from $TARGET/bench-src/A a build from $TARGET/bench-src/B checks A's files,
            # finds them unchanged and calls B's crates fresh: B's binary would be A's.
            self.source, sha = bk.export_commit(
                self.args.rev, Path(os.path.expanduser("~/.cache/emporium/bench-src-outside-target")))
            self.source_label = f"commit {sha} (clean export)"
        if self.args.build or self.args.rev or not self.binary.exists():
            bk.build_emporium(self.source, self.target_dir).check_returncode()
        # Our own copy: another script's build must not replace the binary under the nodes.
        copy = self.tmp / "emporium"
        shutil.copy2(self.binary, copy)
        self.built = datetime.datetime.fromtimestamp(self.binary.stat().st_mtime, datetime.timezone.utc)
        self.binary_sha = hashlib.sha256(copy.read_bytes()).hexdigest()[:12]
        self.binary = copy

    def ensure_raw(self) -> None:
        target = Path(os.path.expanduser("~/.cache/emporium/bench-raw-target"))
        command = ["cargo", "build", "--release", "--manifest-path", str(RAW_DIR / "Cargo.toml")]
        log(f"building the raw loop: CARGO_TARGET_DIR={target} {' '.join(command)}")
        env = dict(os.environ, CARGO_TARGET_DIR=str(target))
        subprocess.run(command, cwd=RAW_DIR, env=env, check=True, timeout=3600)
        self.raw_binary = self.tmp / "orders-raw"
        shutil.copy2(target / "release" / "orders-raw", self.raw_binary)

    def start_cluster(self, mysql_url: str, amqp_url: str, mongodb_url: str) -> str:
        config_dir = self.tmp / "config"
        shutil.copytree(self.source / "config", config_dir)
        registry_port = bk.free_port()
        registry = Node(self, "orders-registry", ["--role", "registry", "--listen", f"127.0.0.1:{registry_port}",
                                                  "--config-dir", str(config_dir),
                                                  "--data-dir", str(self.tmp / "data-registry")], {})
        self.nodes["registry"] = registry
        registry.wait_started().wait_ready()
        gateway_port = bk.free_port()
        env = {"EMPORIUM_MYSQL_URL": mysql_url, "EMPORIUM_AMQP_URL": amqp_url, "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
               "EMPORIUM_MONGODB_URL": f"{mongodb_url.rstrip('/')}/bench_orders_{gateway_port}"}
        for role in ROLES:
            args = ["--role", role, "--registry", registry.url(""), "--listen", "127.0.0.1:0",
                    "--data-dir", str(self.tmp / f"data-{role}")]
            if role == "gateway":
                args += ["--http", f"127.0.0.1:{gateway_port}"]
            # One after the other, as the test does: nodes started together on a fresh database
            # race in the migrations (1062 duplicate entry '1000001' in _sqlx_migrations).
            self.nodes[role] = Node(self, f"orders-{role}", args, env).wait_started()
        for role in ROLES:
            self.nodes[role].wait_ready()
        address = bk.wait_until("the gateway's address",
                                lambda: self.nodes["gateway"].log_field("gateway listening", "http"), 30)
        return f"http://{address}"

    def stop_cluster(self) -> None:
        for name in list(ROLES) + ["registry"]:
            node = self.nodes.get(name)
            if node:
                node.sigterm()


# ---------------------------------------------------------------------------------------------
# HTTP through the gateway


class Client:
    """One keep-alive connection to the gateway (one per thread)."""

    def __init__(self, base: str, timeout: float = 30.0):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.connection = None
        self.reconnects = 0

    def call(self, method: str, path: str, token: str | None = None, body=None):
        """(status, JSON or text, seconds). A keep-alive connection the server closed while idle
        is opened again once (the request never reached the server)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
                took = time.perf_counter() - started
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                self.connection.close()
                self.connection = None
                self.reconnects += 1
                if attempt == 0:
                    continue
                return 0, str(error), time.perf_counter() - started
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                self.connection = None
                return 0, str(error), time.perf_counter() - started
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return response.status, parsed, took
        return 0, "unreachable", 0.0

    def close(self):
        if self.connection:
            self.connection.close()


def expect(status: int, wanted: int, body, what: str):
    if status != wanted:
        raise RuntimeError(f"{what}: expected {wanted}, got {status}: {str(body)[:300]}")
    return body


def sign_in(client: Client, email: str, password: str) -> str:
    status, body, _ = client.call("POST", "/api/v1/auth/login", None, {"email": email, "password": password})
    return expect(status, 200, body, f"login {email}")["accessToken"]


def set_up_shop(base: str, args) -> dict:
    """Products with a large stock, users signed in; answers skus, prices and tokens."""
    client = Client(base)
    admin = bk.wait_until("the admin signs in", lambda: _try_sign_in(client, "admin@emporium.local", ADMIN_PASSWORD),
                          60, every=0.5)
    skus, prices = [], {}
    for index in range(args.products):
        sku = f"BENCH-{index + 1:03d}"
        price = f"{5 + index}.{(index * 37) % 100:02d}"
        status, body, _ = client.call("POST", "/api/v1/products", admin, {
            "sku": sku, "name": f"Bench product {index + 1}", "description": "A thing to order", "price": price,
            "currency": "USD", "category": "bench", "attributes": {}})
        expect(status, 201, body, f"create {sku}")
        status, body, _ = client.call("PUT", f"/api/v1/inventory/{sku}", admin, {
            "available": args.stock, "reorderLevel": 0, "reorderQuantity": 0})
        expect(status, 200, body, f"stock {sku}")
        skus.append(sku)
        prices[sku] = price
    log(f"  {len(skus)} products with {args.stock:,} units each")
    users = []
    run = secrets.token_hex(3)
    for index in range(args.users):
        name = f"bench{run}u{index:03d}"
        status, body, _ = client.call("POST", "/api/v1/auth/register", None, {
            "username": name, "email": f"{name}@example.com", "fullName": "Bench User", "password": USER_PASSWORD})
        expect(status, 201, body, f"register {name}")
        users.append({"email": f"{name}@example.com"})
    sign_in_all(client, users)
    client.close()
    log(f"  {len(users)} users registered and signed in")
    return {"skus": skus, "prices": prices, "users": users, "admin": admin}


def _try_sign_in(client: Client, email: str, password: str) -> str | None:
    status, body, _ = client.call("POST", "/api/v1/auth/login", None, {"email": email, "password": password})
    return body["accessToken"] if status == 200 else None


def sign_in_all(client: Client, users: list[dict]) -> None:
    for user in users:
        user["token"] = sign_in(client, user["email"], USER_PASSWORD)
        user["signedInAt"] = time.monotonic()


# ---------------------------------------------------------------------------------------------
# /proc sampling


class Sampler(threading.Thread):
    """VmRSS of every node every 0.5 s; keeps the max per node (and per phase)."""

    def __init__(self, pids: dict[str, int]):
        super().__init__(daemon=True)
        self.pids = pids
        self.max_rss = {name: 0 for name in pids}
        self.phase_max = {name: 0 for name in pids}
        self.last = {name: 0 for name in pids}
        # VmRSS = RssAnon (heap, stacks) + RssFile (the binary's pages in use) + RssShmem, at the max.
        self.split_at_max: dict[str, dict] = {}
        self.stop_event = threading.Event()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            try:
                status = bk.proc_status(pid)
                rss = bk.kib(status["VmRSS"])
            except (OSError, KeyError, ValueError):
                continue
            if rss > self.max_rss[name]:
                self.split_at_max[name] = {key: bk.kib(status[key]) / 1024 for key in ("RssAnon", "RssFile", "RssShmem")
                                           if key in status}
                self.split_at_max[name]["threads"] = int(status.get("Threads", "0"))
            self.last[name] = rss
            self.max_rss[name] = max(self.max_rss[name], rss)
            self.phase_max[name] = max(self.phase_max[name], rss)

    def reset_phase(self) -> None:
        self.phase_max = {name: 0 for name in self.pids}

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            self.sample()


def log_lines(paths: dict[str, Path]) -> dict[str, int]:
    out = {}
    for name, path in paths.items():
        try:
            with open(path, "rb") as lines:
                out[name] = sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 20), b""))
        except OSError:
            pass
    return out


def hwm(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = bk.kib(bk.proc_status(pid)["VmHWM"]) / 1024
        except (OSError, KeyError, ValueError):
            pass
    return out


def node_metrics(node: "Node") -> str:
    """The node's Prometheus text (cluster listener, cluster credential); "" when unavailable."""
    status, text = bk.get(node.url("/metrics"), 10, secret=SECRET)
    return text if status == 200 and isinstance(text, str) else ""


def histogram_delta(before: dict, after: dict) -> dict:
    """Mean and bucket-bound p50/p99 of what was recorded between two snapshots."""
    count = after["count"] - before["count"]
    if count <= 0:
        return {"count": 0}
    buckets = sorted((le, after["buckets"][le] - before["buckets"].get(le, 0.0)) for le in after["buckets"])

    def bound(fraction: float) -> float:
        for le, cumulative in buckets:
            if cumulative >= fraction * count:
                return le
        return float("inf")
    return {"count": count, "meanMs": (after["sum"] - before["sum"]) / count * 1000,
            "p50BoundMs": bound(0.50) * 1000, "p99BoundMs": bound(0.99) * 1000}


def call_sites(node: "Node") -> dict[str, dict]:
    """The node's resilience counters per target service (`/admin/v1/supervision`)."""
    status, tree = bk.get(node.url("/admin/v1/supervision"), 10, secret=SECRET)
    if status != 200 or not isinstance(tree, dict):
        return {}
    keys = ("numCalls", "numFailures", "numRetries", "numRejected", "numBreakerOpened")
    return {site.get("service", "?"): {key: site.get(key, 0) for key in keys}
            for site in tree.get("callSites", []) if isinstance(site, dict)}


GATEWAY_POST = ("emporium_http_request_duration_seconds", {"listener": "public", "method": "POST",
                                                           "route": "/api/v1/orders"})


# ---------------------------------------------------------------------------------------------
# One load phase


class Phase:
    def __init__(self, base: str, shop: dict, db: MariaDb, sampler: Sampler, concurrency: int, duration: float,
                 sample_every: int, cpu_pids: dict[str, int], label: str, gateway: "Node",
                 log_paths: dict[str, Path] | None = None, order_node: "Node | None" = None,
                 max_lines: int = 3, max_quantity: int = 2):
        self.base, self.shop, self.db, self.sampler, self.gateway = base, shop, db, sampler, gateway
        self.log_paths = log_paths or {}
        self.order_node = order_node
        self.poll_requests = 0
        self.concurrency, self.duration, self.sample_every = concurrency, duration, sample_every
        self.cpu_pids, self.label = cpu_pids, label
        self.max_lines, self.max_quantity = max_lines, max_quantity
        self.records: list[tuple] = []  # (send epoch ms, seconds, status, order id or error)
        self.lock = threading.Lock()
        self.stop_placing = threading.Event()
        self.stop_polling = threading.Event()
        self.sample_queue: list[tuple] = []  # (order id, token, send monotonic)
        self.sample_results: list[float] = []
        self.sample_skipped = 0
        self.reconnects = 0
        self.placed = 0

    def order_body(self, rng: random.Random) -> dict:
        skus = rng.sample(self.shop["skus"], rng.randint(1, self.max_lines))
        return {"items": [{"sku": sku, "quantity": rng.randint(1, self.max_quantity)} for sku in skus],
                "currency": "USD", "payment": {"method": "card", "token": "tok_visa"}}

    def worker(self, index: int) -> None:
        rng = random.Random(index * 7919 + int(time.time()))
        client = Client(self.base)
        users = self.shop["users"]
        count = 0
        while not self.stop_placing.is_set():
            user = users[rng.randrange(len(users))]
            body = self.order_body(rng)
            sent_ms = time.time() * 1000.0
            sent_mono = time.monotonic()
            status, answer, took = client.call("POST", "/api/v1/orders", user["token"], body)
            order_id = answer.get("id") if status == 201 and isinstance(answer, dict) else None
            if order_id:
                detail = order_id
            elif isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                detail = str(answer["error"].get("code"))
            else:
                detail = str(answer)[:80]
            with self.lock:
                self.records.append((sent_ms, took, status, detail, time.time() * 1000.0))
                self.placed += 1 if order_id else 0
                count += 1
                if order_id and count % self.sample_every == 0:
                    if len(self.sample_queue) < 64:
                        self.sample_queue.append((order_id, user["token"], sent_mono))
                    else:
                        self.sample_skipped += 1
        with self.lock:
            self.reconnects += client.reconnects
        client.close()

    def poller(self) -> None:
        """Polls the sampled orders every 50 ms until each is final."""
        client = Client(self.base)
        while not self.stop_polling.is_set():
            tick = time.monotonic()
            with self.lock:
                pending = list(self.sample_queue)
            done = []
            for order_id, token, sent_mono in pending:
                status, body, _ = client.call("GET", f"/api/v1/orders/{order_id}", token)
                self.poll_requests += 1
                if status == 200 and isinstance(body, dict) and body.get("status") != "PENDING_PAYMENT":
                    self.sample_results.append(time.monotonic() - sent_mono)
                    done.append(order_id)
            if done:
                with self.lock:
                    self.sample_queue = [entry for entry in self.sample_queue if entry[0] not in done]
            if not pending and self.stop_placing.is_set():
                break
            time.sleep(max(0.0, 0.05 - (time.monotonic() - tick)))
        client.close()

    def db_counts(self, since_ms: int) -> dict:
        rows = self.db.query(f"SELECT status, COUNT(*) FROM orders WHERE created_at_ms >= {since_ms} GROUP BY status")
        return {row[0]: int(row[1]) for row in rows}

    def run(self) -> dict:
        log(f"{self.label}: {self.concurrency} clients placing orders for {self.duration:.0f} s "
            f"(1-{self.max_lines} random SKUs of {len(self.shop['skus'])}, 1-{self.max_quantity} units each, "
            f"{len(self.shop['users'])} users; every {self.sample_every}th order polled)")
        self.sampler.reset_phase()
        since_ms = int(time.time() * 1000) - 5
        metrics_before = bk.histogram(node_metrics(self.gateway), *GATEWAY_POST)
        status_before = self.db.status()
        sites_before = call_sites(self.order_node) if self.order_node else {}
        lines_before = log_lines(self.log_paths)
        cpu = bk.CpuWindow(self.cpu_pids, cpu_seconds=bk.process_cpu_seconds, switches=False)
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.concurrency)]
        poller = threading.Thread(target=self.poller, daemon=True)
        started = time.monotonic()
        for thread in threads:
            thread.start()
        poller.start()
        last_count, last_index = 0, 0
        deadline = started + self.duration
        while time.monotonic() < deadline:
            time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
            with self.lock:
                window = self.records[last_index:]
                last_index = len(self.records)
                placed = self.placed
                errors = sum(1 for record in self.records if record[2] != 201)
            latencies = [record[1] for record in window if record[2] == 201]
            counts = self.db_counts(since_ms)
            rss = " ".join(f"{name[:5]}={kb / 1024:.0f}" for name, kb in self.sampler.last.items() if name != "registry")
            print(f"  [{time.monotonic() - started:5.1f} s] placed {placed:6d} (+{placed - last_count:4d}/s)  "
                  f"errors {errors}  POST p50 {bk.percentile(latencies, 0.5) * 1000:6.1f} ms "
                  f"p99 {bk.percentile(latencies, 0.99) * 1000:6.1f} ms  | db: final "
                  f"{counts.get('CONFIRMED', 0) + counts.get('CANCELLED', 0):6d} pending "
                  f"{counts.get('PENDING_PAYMENT', 0):5d} | RSS MiB {rss}", flush=True)
            last_count = placed
        self.stop_placing.set()
        for thread in threads:
            thread.join(timeout=60)
        placing_ended = time.monotonic()
        ok = [record for record in self.records if record[2] == 201]
        log(f"  stopped placing: {len(ok)} orders placed, {len(self.records) - len(ok)} errors; "
            f"waiting until every order is final")
        # Every order placed final.
        drain_deadline = time.monotonic() + self.args_drain
        while True:
            counts = self.db_counts(since_ms)
            total = sum(counts.values())
            pending = counts.get("PENDING_PAYMENT", 0)
            if total >= len(ok) and pending == 0:
                break
            if time.monotonic() > drain_deadline:
                raise RuntimeError(f"orders still pending {self.args_drain:.0f} s after the load stopped: {counts}")
            print(f"  [{time.monotonic() - started:5.1f} s] draining: {pending} pending, "
                  f"{total - pending} final of {len(ok)}", flush=True)
            time.sleep(0.5)
        all_final = time.monotonic()
        cpu_result = cpu.finish()
        self.gateway_post = histogram_delta(metrics_before, bk.histogram(node_metrics(self.gateway), *GATEWAY_POST))

        self.stop_polling.set()
        poller.join(timeout=30)
        # Every effect stored: stock committed, payments, two notifications per order, outbox sent.
        effects_deadline = time.monotonic() + 120
        while True:
            reserved = int(self.db.scalar("SELECT COALESCE(SUM(reserved), 0) FROM inventory_stock") or 0)
            payments = int(self.db.scalar(f"SELECT COUNT(*) FROM payments WHERE created_at_ms >= {since_ms}") or 0)
            notes = int(self.db.scalar(f"SELECT COUNT(*) FROM notifications WHERE created_at_ms >= {since_ms} "
                                       "AND kind IN ('order.created', 'order.confirmed', 'order.cancelled')") or 0)
            unsent = int(self.db.scalar("SELECT COUNT(*) FROM bus_outbox WHERE sent_at IS NULL") or 0)
            if reserved == 0 and payments >= len(ok) and notes >= 2 * len(ok) and unsent == 0:
                break
            if time.monotonic() > effects_deadline:
                log(f"  effects incomplete after 120 s: reserved {reserved}, payments {payments}, "
                    f"notifications {notes}, unsent outbox rows {unsent}")
                break
            time.sleep(0.5)
        # Counted once every effect is stored, so that they cover the whole saga of these orders.
        status_after = self.db.status()
        self.status_delta = {name: status_after.get(name, 0) - status_before.get(name, 0) for name in status_after}
        lines_after = log_lines(self.log_paths)
        self.log_lines = {name: lines_after[name] - lines_before.get(name, 0) for name in lines_after}
        sites_after = call_sites(self.order_node) if self.order_node else {}
        self.call_sites = {service: {key: value - sites_before.get(service, {}).get(key, 0)
                                     for key, value in counters.items()}
                           for service, counters in sites_after.items()}
        return self.result(ok, since_ms, cpu_result, placing_ended - started, all_final - started)

    args_drain = 300.0

    def result(self, ok: list[tuple], since_ms: int, cpu: dict, placing_secs: float, final_secs: float) -> dict:
        rows = self.db.query(f"SELECT id, status, updated_at_ms FROM orders WHERE created_at_ms >= {since_ms}")
        final_at = {row[0]: (row[1], int(row[2])) for row in rows}
        to_final = []
        statuses: dict[str, int] = {}
        for sent_ms, _took, _status, order_id, _answered in ok:
            status, at = final_at.get(order_id, ("MISSING", 0))
            statuses[status] = statuses.get(status, 0) + 1
            if at:
                to_final.append((at - sent_ms) / 1000.0)
        first_post = min(record[0] for record in self.records)
        last_answer = max(record[4] for record in ok)
        last_final = max(at for _, at in final_at.values())
        effects = self.db.query(
            "SELECT (SELECT MAX(updated_at_ms) FROM inventory_reservations WHERE created_at_ms >= "
            f"{since_ms}), (SELECT MAX(created_at_ms) FROM notifications WHERE created_at_ms >= {since_ms})")[0]
        last_effect = max(int(value) for value in effects if value not in ("NULL", ""))
        latencies = [record[1] for record in ok]
        errors: dict[str, int] = {}
        for record in self.records:
            if record[2] != 201:
                key = f"{record[2]} {record[3]}"
                errors[key] = errors.get(key, 0) + 1
        wall = (last_final - first_post) / 1000.0
        result = {
            "concurrency": self.concurrency,
            "durationSecs": self.duration,
            "numOrders": len(ok),
            "numErrors": len(self.records) - len(ok),
            "errors": errors,
            "statuses": statuses,
            "reconnects": self.reconnects,
            "wallToLastFinalSecs": wall,
            "ordersPerSecond": len(ok) / wall if wall > 0 else 0.0,
            "placedPerSecond": len(ok) / ((last_answer - first_post) / 1000.0),
            "drainSecs": (last_final - last_answer) / 1000.0,
            "wallToLastEffectSecs": (last_effect - first_post) / 1000.0,
            "postP50Ms": bk.percentile(latencies, 0.50) * 1000,
            "postP99Ms": bk.percentile(latencies, 0.99) * 1000,
            "postMeanMs": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
            "postMaxMs": max(latencies) * 1000 if latencies else float("nan"),
            "toFinalP50Ms": bk.percentile(to_final, 0.50) * 1000,
            "toFinalP99Ms": bk.percentile(to_final, 0.99) * 1000,
            "toFinalMaxMs": max(to_final) * 1000 if to_final else float("nan"),
            "sampleN": len(self.sample_results),
            "sampleSkipped": self.sample_skipped,
            "sampleP50Ms": bk.percentile(self.sample_results, 0.50) * 1000,
            "sampleP99Ms": bk.percentile(self.sample_results, 0.99) * 1000,
            "pollRequests": self.poll_requests,
            "gatewayPost": self.gateway_post,
            "serverStatus": self.status_delta,
            "orderCallSites": self.call_sites,
            "logLinesPerOrder": {name: count / max(1, len(ok)) for name, count in self.log_lines.items()},
            "rssMaxMiB": {name: kb / 1024 for name, kb in self.sampler.phase_max.items()},
            "cpu": {"cores": cpu["cores"], "machineBusyCores": cpu["machineBusyCores"],
                    "otherCores": cpu["otherCores"], "wallSeconds": cpu["wallSeconds"],
                    "cpuMsPerOrder": {name: seconds * 1000 / max(1, len(ok))
                                      for name, seconds in cpu["cpuSeconds"].items()}},
        }
        log(f"  {self.label}: {result['numOrders']} orders ({statuses}), {result['ordersPerSecond']:.1f} orders/s "
            f"until all final ({wall:.1f} s from the first POST), POST p50 {result['postP50Ms']:.1f} ms "
            f"p99 {result['postP99Ms']:.1f} ms, POST->final p50 {result['toFinalP50Ms']:.0f} ms "
            f"p99 {result['toFinalP99Ms']:.0f} ms (sample of {result['sampleN']} polled: p50 "
            f"{result['sampleP50Ms']:.0f} ms p99 {result['sampleP99Ms']:.0f} ms)")
        cores = " ".join(f"{name}={value:.2f}" for name, value in cpu["cores"].items())
        log(f"  CPU cores during the phase: {cores}; machine busy {cpu['machineBusyCores']:.2f}, "
            f"others {cpu['otherCores']:.2f}")
        return result


def warm_up(base: str, shop: dict, db: MariaDb, count: int, clients: int = 8) -> None:
    """`count` orders from `clients` threads, then waits until they are final."""
    since_ms = int(time.time() * 1000) - 5
    lock = threading.Lock()
    state = {"placed": 0, "errors": 0}

    def worker(index: int) -> None:
        rng = random.Random(index)
        client = Client(base)
        while True:
            with lock:
                if state["placed"] + state["errors"] >= count:
                    break
            user = shop["users"][rng.randrange(len(shop["users"]))]
            skus = rng.sample(shop["skus"], rng.randint(1, 3))
            status, _, _ = client.call("POST", "/api/v1/orders", user["token"], {
                "items": [{"sku": sku, "quantity": rng.randint(1, 2)} for sku in skus], "currency": "USD",
                "payment": {"method": "card", "token": "tok_visa"}})
            with lock:
                state["placed" if status == 201 else "errors"] += 1
        client.close()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    def all_final():
        pending = int(db.scalar(f"SELECT COUNT(*) FROM orders WHERE created_at_ms >= {since_ms} "
                                "AND status = 'PENDING_PAYMENT'") or 0)
        unsent = int(db.scalar("SELECT COUNT(*) FROM bus_outbox WHERE sent_at IS NULL") or 0)
        reserved = int(db.scalar("SELECT COALESCE(SUM(reserved), 0) FROM inventory_stock") or 0)
        return pending == 0 and unsent == 0 and reserved == 0
    bk.wait_until("the warm-up orders final", all_final, 120, every=0.5)
    log(f"  warm-up: {state['placed']} orders placed and final, {state['errors']} errors")


def envelope_sizes(db: MariaDb, raw_started: str) -> dict:
    """Mean envelope length per event type, of the system's rows and of the raw loop's."""
    sizes: dict[str, dict] = {}
    for kind, is_raw, mean in db.query(
            f"SELECT routing_key, created_at >= '{raw_started}', AVG(LENGTH(envelope)) FROM bus_outbox "
            "GROUP BY routing_key, created_at >= '" + raw_started + "'"):
        sizes.setdefault(kind, {})["raw" if is_raw == "1" else "system"] = float(mean)
    return sizes


# ---------------------------------------------------------------------------------------------
# The raw loop


def run_raw(bench: Bench, db: MariaDb, mysql_url: str, skus: list[str], users: list[str], concurrency: int,
            duration: float, cpu_pids: dict[str, int]) -> dict:
    args = [str(bench.raw_binary), "--url", mysql_url, "--skus", ",".join(skus), "--users", ",".join(users),
            "--concurrency", str(concurrency), "--duration", str(duration), "--warmup", "2"]
    log(f"raw loop c={concurrency}: {duration:.0f} s after a 2 s warm-up")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bk.CHILDREN.append(proc)
    status_before = db.status()
    cpu = bk.CpuWindow(cpu_pids, cpu_seconds=bk.process_cpu_seconds, switches=False)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    err_lines: list[str] = []
    out_lines: list[str] = []

    def pump_stderr():
        for line in proc.stderr:
            err_lines.append(line)
            print(line.rstrip(), flush=True)

    def pump_stdout():
        out_lines.extend(proc.stdout)
    pumps = [threading.Thread(target=pump_stderr, daemon=True), threading.Thread(target=pump_stdout, daemon=True)]
    for pump in pumps:
        pump.start()
    try:
        proc.wait(timeout=duration + 180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError("the raw loop did not finish in time")
    for pump in pumps:
        pump.join(timeout=5)
    out = "".join(out_lines)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    raw_seconds = (children_after.ru_utime + children_after.ru_stime
                   - children_before.ru_utime - children_before.ru_stime)
    cpu_result = cpu.finish({"raw": raw_seconds})
    if proc.returncode != 0:
        raise RuntimeError(f"the raw loop failed ({proc.returncode}): {''.join(err_lines)[-2000:]}")
    status_after = db.status()
    result = json.loads(out.strip().splitlines()[-1])
    result["serverStatus"] = {name: status_after.get(name, 0) - status_before.get(name, 0) for name in status_after}
    result["cpu"] = {"cores": cpu_result["cores"], "machineBusyCores": cpu_result["machineBusyCores"],
                     "otherCores": cpu_result["otherCores"]}
    log(f"  raw c={concurrency}: {result['numOrders']} orders, {result['ordersPerSecond']:.1f} orders/s, "
        f"T1+T2 p50 {result['placeP50Micros'] / 1000:.1f} ms p99 {result['placeP99Micros'] / 1000:.1f} ms, "
        f"all 7 p50 {result['chainP50Micros'] / 1000:.1f} ms, errors {result['numErrors']} {result['errors'] or ''}")
    return result


# ---------------------------------------------------------------------------------------------
# Waiting for the machine


def wait_for_other_benchmarks(max_minutes: float) -> str:
    deadline = time.monotonic() + max_minutes * 60
    waited = False
    while True:
        done = subprocess.run(["pgrep", "-af", OTHER_BENCHES], capture_output=True, text=True)
        others = [line for line in done.stdout.splitlines() if str(os.getpid()) != line.split()[0]]
        if not others:
            return "waited for other benchmarks" if waited else "no other benchmark running"
        if time.monotonic() > deadline:
            log(f"other benchmarks still running after {max_minutes:.0f} min; measuring anyway: {others}")
            return f"other benchmarks still running: {'; '.join(others)}"
        log(f"another benchmark runs ({others[0][:120]}); checking again in 30 s")
        waited = True
        time.sleep(30)


# ---------------------------------------------------------------------------------------------
# Report


def load_rss(results: dict) -> dict[str, float]:
    """Max VmRSS per node over the order phases (the set-up's sign-ins left out)."""
    out: dict[str, float] = {}
    for phase in results.get("phases", []):
        for name, value in (phase.get("rssMaxMiB") or {}).items():
            out[name] = max(out.get(name, 0.0), value)
    return out


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    out = []
    phases = results.get("phases", [])
    raw = results.get("raw", [])
    best_raw = max(raw, key=lambda r: r["ordersPerSecond"]) if raw else None
    if phases:
        out.append(("1. Orders/s until every order is final, clients " +
                    " / ".join(str(p["concurrency"]) for p in phases), "-",
                    " / ".join(f"{p['ordersPerSecond']:,.1f}" for p in phases), "-"))
    if best_raw:
        out.append(("2. Raw limit: the same SQL from a bare loop, orders/s at " +
                    " / ".join(str(r["concurrency"]) for r in raw) + " in flight", "-",
                    " / ".join(f"{r['ordersPerSecond']:,.1f}" for r in raw), "-"))
    if phases and best_raw:
        best = max(phases, key=lambda p: p["ordersPerSecond"])
        ratio = best["ordersPerSecond"] / best_raw["ordersPerSecond"]
        out.append((f"3. System / raw limit (best {best['ordersPerSecond']:,.1f} at {best['concurrency']} clients / "
                    f"best raw {best_raw['ordersPerSecond']:,.1f} at {best_raw['concurrency']})", ">= 80 %",
                    f"{ratio * 100:.0f} %", bk.yes(ratio >= 0.80)))
    for p in phases:
        out.append((f"4. POST /api/v1/orders p50 / p99, {p['concurrency']} clients "
                    f"(at {p['placedPerSecond']:,.1f} orders/s placed)", "p99 <= 100 ms",
                    f"{p['postP50Ms']:.1f} / {p['postP99Ms']:.1f} ms", bk.yes(p["postP99Ms"] <= 100)))
    if phases:
        out.append(("4b. Errors (answers other than 201), clients " + " / ".join(str(p["concurrency"]) for p in phases),
                    "0", " / ".join(str(p["numErrors"]) for p in phases),
                    bk.yes(all(p["numErrors"] == 0 for p in phases))))
    for p in phases:
        out.append((f"5. POST to CONFIRMED p50 / p99, {p['concurrency']} clients: every order (database) / "
                    f"polled sample", "-",
                    f"{p['toFinalP50Ms']:,.0f} / {p['toFinalP99Ms']:,.0f} ms; sample of {p['sampleN']}: "
                    f"{p['sampleP50Ms']:,.0f} / {p['sampleP99Ms']:,.0f} ms", "-"))
    rss = load_rss(results)
    if rss:
        names = [name for name in ROLES if name in rss]
        worst = max(rss[name] for name in names)
        out.append(("6. Max RSS during the order phases, " + " / ".join(names) + " (registry " +
                    f"{rss.get('registry', 0):.1f})", "<= 50 MiB each",
                    " / ".join(f"{rss[name]:.1f}" for name in names) + " MiB", bk.yes(worst <= 50)))
    idle = results.get("rssIdleMiB") or {}
    if idle:
        names = [name for name in ROLES if name in idle]
        worst = max(idle[name] for name in names)
        out.append((f"7. RSS idle, {IDLE_SECONDS:g} s after the cluster is ready, " + " / ".join(names) +
                    f" (registry {idle.get('registry', 0):.1f})", "<= 30 MiB each",
                    " / ".join(f"{idle[name]:.1f}" for name in names) + " MiB", bk.yes(worst <= 30)))
    return out


def gateway_view(p: dict) -> str:
    g = p.get("gatewayPost") or {}
    if not g.get("count"):
        return ""
    return (f"The gateway's own histogram of the POST (request in to response out, {g['count']:,.0f} requests): "
            f"mean {g['meanMs']:.1f} ms, p50 <= {g['p50BoundMs']:g} ms, p99 <= {g['p99BoundMs']:g} ms "
            "(bucket bounds). ")


def server_view(status: dict, orders: int) -> str:
    if not status or not orders:
        return ""
    per = lambda name: status.get(name, 0) / orders  # noqa: E731
    return (f"MariaDB per order: {per('Com_commit'):.1f} commits, {per('Innodb_data_fsyncs'):.1f} fsyncs, "
            f"{per('Innodb_log_writes'):.1f} log writes, {per('Questions'):.0f} statements; "
            f"{status.get('Innodb_deadlocks', 0)} deadlocks, {status.get('Innodb_row_lock_waits', 0):,} row lock waits. ")


def sites_view(sites: dict | None) -> str:
    if not sites:
        return ""
    return "The order node's call sites (calls / failures / retries / breaker openings): " + ", ".join(
        f"{service} {c['numCalls']:,} / {c['numFailures']} / {c['numRetries']} / {c['numBreakerOpened']}"
        for service, c in sorted(sites.items()) if c.get("numCalls")) + ". "


def fmt_cores(cores: dict) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in sorted(cores.items(), key=lambda kv: -kv[1]))


def markdown(results: dict, info: dict, command: str) -> str:
    variables = results.get("serverVariables", {})
    lines = [
        SECTION,
        "",
        f"Measured {info['date']} on `{info['commit']}` with `{command}` (release build: "
        f"`CARGO_TARGET_DIR={results.get('targetDir', '?')} {' '.join(BUILD_COMMAND)}`; binary "
        f"`{info.get('binary', '?')}`; raw loop `ops/bench/orders/raw`, "
        "`CARGO_TARGET_DIR=~/.cache/emporium/bench-raw-target cargo build --release`).",
        "",
        f"Machine: {info['nproc']} cores, {info['model']}, {info['kernel']}. Everything runs on this one machine: "
        "the Python load generator, the registry and seven single-role nodes, MariaDB "
        f"{variables.get('version', '?')}, RabbitMQ and the MongoDB-compatible test server (Python). "
        f"Load before the system runs: `{results.get('loadBefore', '?')}`; before the raw runs: "
        f"`{results.get('loadBeforeRaw', '?')}` ({results.get('othersNote', '')})."
        + (f" Extra environment of every node: `{' '.join(f'{k}={v}' for k, v in results['nodeEnv'].items())}`."
           if results.get("nodeEnv") else ""),
        "",
        f"MariaDB as found, not changed: innodb_flush_log_at_trx_commit="
        f"{variables.get('innodb_flush_log_at_trx_commit', '?')}, sync_binlog={variables.get('sync_binlog', '?')}, "
        f"log_bin={variables.get('log_bin', '?')}, innodb_flush_method={variables.get('innodb_flush_method', '?')}, "
        f"innodb_doublewrite={variables.get('innodb_doublewrite', '?')}, "
        f"innodb_buffer_pool_size={variables.get('innodb_buffer_pool_size', '?')}, "
        f"{variables.get('tx_isolation', '?')}.",
        "",
        "| Figure | Goal | Measured | Met? |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    shop = results.get("shop", {})
    lines += [
        "",
        "How it is measured (all on 127.0.0.1):",
        "",
        "- Set-up as `Cluster::start` in nodes/tests/orders.rs: a fresh MariaDB database, a fresh RabbitMQ vhost, "
        "the MongoDB-compatible server (ops/mongodb/start.sh, catalog only), a registry and one node per role "
        "(auth, product, inventory, order, payment, notification, gateway), log level `info` as configured. "
        f"Through the gateway the admin creates {shop.get('products', '?')} products with "
        f"{shop.get('stock', 0):,} units each, and {shop.get('users', '?')} users register and sign in. "
        f"Warm-up: {results.get('warmupOrders', 0)} orders at 8 clients, discarded.",
        "- Figures 1, 4, 5: for each client count, that many Python threads (one keep-alive connection each) "
        f"place orders for {results.get('duration', '?')} s: `POST /api/v1/orders` as a random user, 1-3 distinct "
        "random SKUs of 1-2 units, card `tok_visa`. Orders/s = orders placed / (the time the last of them became "
        "CONFIRMED in the database (`orders.updated_at_ms`) - the first POST). POST latency: the client's, send to "
        "answer read. POST to CONFIRMED: for every order, `updated_at_ms` minus the client's send time (one clock); "
        f"and for every {results.get('sampleEvery', '?')}th order, `GET /api/v1/orders/{{id}}` every 50 ms "
        "until it is final (so up to 50 ms late). Phases run one after the other; each waits until its orders are "
        "final and every effect is stored (stock committed, one payment and two notifications per order, outbox "
        "sent) before the next one.",
        "- Figure 2: the nodes stopped, `ops/bench/orders/raw` runs against the same database (its tables, the "
        "same products' stock rows, the same users): per order, the seven transactions of the saga with the "
        "services' statements in their order (T1 reservation: reservation lookup, stock take per line, "
        "reservation + lines, outbox row, two stock reads per line; T2 order + items + outbox row; T3 inbox check, "
        "payment lookup, payment insert + update, outbox row, inbox row; T4 inbox check, order update, order and "
        "items read, outbox row, inbox row; T5 inbox check, reservation read, reservation update, stock update "
        "per line, outbox row, inbox row; T6 and T7 the two notifications: inbox check, notification lookup, "
        "recipient read, insert, inbox row), plus one relay task per publishing service running the relay's "
        "`SELECT ... LIMIT 256` / `UPDATE ... sent_at` woken by commits. No HTTP, actors, broker or catalog read "
        "(MongoDB, not SQL); every consumer transaction holds one event (the services' consumers may batch up "
        "to 64). One pool of (orders in flight + 3) connections; 2 s warm-up; the best rate is the limit.",
        "- Figure 6: `VmRSS` of each node from `/proc/<pid>/status` every 0.5 s; the max over the order phases (the "
        "whole run's max, set-up included, is in the details). Figure 7: `VmRSS` of each node "
        f"{IDLE_SECONDS:g} s after the cluster is ready, before the set-up (no product, user or order yet).",
    ]
    details = []
    for p in results.get("phases", []):
        details.append(
            f"- {p['concurrency']} clients: {p['numOrders']:,} orders ({', '.join(f'{k} {v}' for k, v in p['statuses'].items())}), "
            f"{p['numErrors']} errors{' ' + str(p['errors']) if p['errors'] else ''}; placed at {p['placedPerSecond']:,.1f}/s for "
            f"{p['durationSecs']:.0f} s, last order final {p['drainSecs']:.2f} s after the last POST answer, "
            f"{p['wallToLastFinalSecs']:.1f} s from the first POST; last effect stored at "
            f"{p['wallToLastEffectSecs']:.1f} s. POST mean {p['postMeanMs']:.1f} ms, max {p['postMaxMs']:.0f} ms; "
            f"POST to final max {p['toFinalMaxMs']:,.0f} ms. " + gateway_view(p) + f"The sample poller made "
            f"{p.get('pollRequests', 0):,} GETs. " + server_view(p.get("serverStatus"), p["numOrders"])
            + "Log lines per order: " + ", ".join(f"{name} {value:.1f}" for name, value in
                                                  sorted((p.get("logLinesPerOrder") or {}).items(),
                                                         key=lambda kv: -kv[1]) if value >= 0.05)
            + ". " + sites_view(p.get("orderCallSites"))
            + f"CPU (cores, phase average): "
            f"{fmt_cores(p['cpu']['cores'])}; whole machine {p['cpu']['machineBusyCores']:.2f} of "
            f"{info['nproc']}, other processes {p['cpu']['otherCores']:.2f}. CPU per order: "
            + ", ".join(f"{name} {value:.2f} ms" for name, value in
                        sorted(p['cpu']['cpuMsPerOrder'].items(), key=lambda kv: -kv[1])) + ".")
    for r in results.get("raw", []):
        details.append(
            f"- Raw loop, {r['concurrency']} orders in flight (pool {r['pool']}): {r['numOrders']:,} orders in "
            f"{r['elapsedSeconds']:.1f} s = {r['ordersPerSecond']:,.1f}/s; T1+T2 (the POST's share) p50 "
            f"{r['placeP50Micros'] / 1000:.1f} ms p99 {r['placeP99Micros'] / 1000:.1f} ms; all seven p50 "
            f"{r['chainP50Micros'] / 1000:.1f} ms p99 {r['chainP99Micros'] / 1000:.1f} ms; relays "
            f"{r['relayRows']:,} rows in {r['relayBatches']:,} batches; errors {r['numErrors']}{' ' + str(r['errors']) if r['errors'] else ''}. "
            + server_view(r.get("serverStatus"), r.get("numOrdersWithWarmup", r["numOrders"])) +
            f"CPU (cores): {fmt_cores(r['cpu']['cores'])}; machine {r['cpu']['machineBusyCores']:.2f}.")
    if "rssMaxMiB" in results:
        details.append("- RSS max over the whole run, set-up (registrations and sign-ins) included / VmHWM at the end "
                       "(MiB): " + ", ".join(
            f"{name} {results['rssMaxMiB'][name]:.1f} / {results.get('hwmMiB', {}).get(name, float('nan')):.1f}"
            for name in ["registry", *ROLES] if name in results["rssMaxMiB"]) + ".")
    if results.get("rssSplitAtMax"):
        details.append("- At each node's max over the whole run, RssAnon / RssFile (MiB; RssFile is the binary's code and data pages "
                       "in use) and threads: " + ", ".join(
                           f"{name} {split.get('RssAnon', 0):.1f} / {split.get('RssFile', 0):.1f}, "
                           f"{split.get('threads', 0)} threads"
                           for name in ["registry", *ROLES] if (split := results["rssSplitAtMax"].get(name))) + ".")
    if results.get("envelopeBytes"):
        details.append("- Mean outbox envelope size by event type (bytes), system / raw: " + ", ".join(
            f"{kind} {sizes.get('system', 0):.0f} / {sizes.get('raw', 0):.0f}"
            for kind, sizes in sorted(results["envelopeBytes"].items())) + ".")
    return bk.section_text(lines, details, results.get("notes"))


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="build and measure this commit from a clean export (e.g. HEAD)")
    parser.add_argument("--build", action="store_true", help="rebuild the release binary from the tree first")
    parser.add_argument("--target-dir", default="~/.cache/emporium/orders-target",
                        help="CARGO_TARGET_DIR of the emporium build (default: this script's own, seeded from "
                             "~/.cache/emporium/target; see ensure_binary for why not the shared one)")
    parser.add_argument("--mysql", default=os.environ.get("EMPORIUM_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--stock", type=int, default=10_000_000)
    parser.add_argument("--concurrency", default="4,8,32", help="client threads per phase, e.g. 8,32")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of placing orders per phase")
    parser.add_argument("--sample-every", type=int, default=20, help="poll every Kth order of each client")
    parser.add_argument("--warmup", type=int, default=100, help="orders placed and discarded first")
    parser.add_argument("--raw-concurrency", default="8,32,64")
    parser.add_argument("--raw-duration", type=float, default=20.0)
    parser.add_argument("--no-raw", action="store_true")
    parser.add_argument("--wait-minutes", type=float, default=20.0,
                        help="wait at most this long for other ops/bench scripts to finish (0: do not wait)")
    parser.add_argument("--node-env", action="append", metavar="KEY=VALUE",
                        help="an extra environment variable for every node (experiments, e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--notes", help="a file whose text is appended to the docs section")
    parser.add_argument("--report-from", metavar="JSON", help="measure nothing: table and docs from a saved run")
    args = parser.parse_args()
    command = bk.command_line("orders.py")

    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        if args.notes:
            saved["results"]["notes"] = Path(args.notes).read_text()
        bk.print_table(rows(saved["results"]))
        if not args.no_docs:
            bk.write_section(markdown(saved["results"], saved["machine"], saved["command"]), SECTION,
                             temp_suffix=".md.orders.tmp", source=args.report_from)
        return 0

    info = bk.machine_info()
    results: dict = {"duration": args.duration, "sampleEvery": args.sample_every, "warmupOrders": args.warmup,
                     "shop": {"products": args.products, "stock": args.stock, "users": args.users}}
    log(f"machine: {info['nproc']} x {info['model']}, {info['kernel']}")
    results["othersNote"] = wait_for_other_benchmarks(args.wait_minutes) if args.wait_minutes > 0 else "not checked"
    bench = Bench(args)
    db = MariaDb(args.mysql)
    bench.ensure_binary()
    if bench.source_label:
        info["commit"] = bench.source_label
    info["binary"] = f"$CARGO_TARGET_DIR/release/emporium, built {bench.built.strftime('%Y-%m-%d %H:%M UTC')}, " \
                     f"sha256 {bench.binary_sha}"
    results["targetDir"] = args.target_dir
    results["nodeEnv"] = bench.node_env
    if not args.no_raw:
        bench.ensure_raw()
    results["serverVariables"] = db.variables()
    log(f"MariaDB: {results['serverVariables']}")
    if args.wait_minutes > 0:
        note = wait_for_other_benchmarks(args.wait_minutes)
        if "still running" in note:
            results["othersNote"] = note
    results["loadBefore"] = bk.uptime_line()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    log(f"before the run: {results['loadBefore']}")

    mysql_url = db.create()
    amqp_url = rabbit_vhost()
    mongodb_url, mongo_pid = start_mongodb(bench.tmp)
    log(f"database {db.database}, vhost {amqp_url.rsplit('/', 1)[1]}, MongoDB-compatible server {mongodb_url}")
    sampler = None
    try:
        base = bench.start_cluster(mysql_url, amqp_url, mongodb_url)
        log(f"cluster ready; gateway {base}")
        node_pids = {name: node.pid for name, node in bench.nodes.items()}
        # Idle: ready, nothing asked of it yet.
        time.sleep(IDLE_SECONDS)
        results["rssIdleMiB"] = {name: bk.kib(bk.proc_status(pid)["VmRSS"]) / 1024 for name, pid in node_pids.items()}
        log("RSS idle: " + " ".join(f"{name}={mib:.1f}" for name, mib in results["rssIdleMiB"].items()) + " MiB")
        cpu_pids = dict(node_pids)
        for name, pid in (("mariadb", bk.mariadb_pid()), ("mongodb", mongo_pid), ("loadgen", os.getpid())):
            if pid:
                cpu_pids[name] = pid
        beam = subprocess.run(["pgrep", "-x", "beam.smp"], capture_output=True, text=True).stdout.split()
        if beam:
            cpu_pids["rabbitmq"] = int(beam[0])
        sampler = Sampler(node_pids)
        sampler.start()
        shop = set_up_shop(base, args)
        if args.warmup:
            log(f"warm-up: {args.warmup} orders at 8 clients (discarded)")
            warm_up(base, shop, db, args.warmup)
        phases = []
        for concurrency in [int(c) for c in args.concurrency.split(",") if c.strip()]:
            if time.monotonic() - min(user["signedInAt"] for user in shop["users"]) > 600:
                log("signing the users in again (tokens live 15 min)")
                client = Client(base)
                sign_in_all(client, shop["users"])
                client.close()
            phase = Phase(base, shop, db, sampler, concurrency, args.duration, args.sample_every, cpu_pids,
                          f"phase c={concurrency}", bench.nodes["gateway"],
                          {name: node.log_path for name, node in bench.nodes.items()}, bench.nodes["order"])
            phases.append(phase.run())
        results["phases"] = phases
        sampler.sample()
        results["rssMaxMiB"] = {name: kb / 1024 for name, kb in sampler.max_rss.items()}
        results["rssSplitAtMax"] = sampler.split_at_max
        results["hwmMiB"] = hwm(node_pids)
        sampler.stop_event.set()
        user_ids = [row[0] for row in db.query("SELECT DISTINCT user_id FROM orders")]
        bench.stop_cluster()
        log("nodes stopped")
        raw_started = None
        if not args.no_raw:
            raw_started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            results["loadBeforeRaw"] = bk.uptime_line()
            log(f"before the raw runs: {results['loadBeforeRaw']}")
            raw_pids = {name: pid for name, pid in cpu_pids.items() if name in ("mariadb", "loadgen")}
            results["raw"] = [run_raw(bench, db, mysql_url, shop["skus"], user_ids, int(c), args.raw_duration, raw_pids)
                              for c in args.raw_concurrency.split(",") if c.strip()]
        if raw_started:
            results["envelopeBytes"] = envelope_sizes(db, raw_started)
    finally:
        if sampler:
            sampler.stop_event.set()
        bench.stop_cluster()
        run_cleanups()
    results["loadAfter"] = bk.uptime_line()
    log(f"after the run: {results['loadAfter']}")
    if args.notes:
        results["notes"] = Path(args.notes).read_text()
    bk.print_table(rows(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "machine": info, "results": results}, indent=2,
                                              default=str))
        log(f"raw results in {args.json}")
    if not args.no_docs:
        if results.get("raw") and results.get("phases"):
            bk.write_section(markdown(results, info, command), SECTION, temp_suffix=".md.orders.tmp")
        else:
            log("not writing docs: the raw loop or the phases did not run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
