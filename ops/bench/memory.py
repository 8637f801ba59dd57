#!/usr/bin/env python3
"""Memory under abuse (issue 11, item 10): the resident set of one all-in-one node (`emporium
--role all`, embedded stores) before, during and after 100,000 mixed requests through its
gateway, most of them of the kind a fuzzer sends.

The mix, drawn at random per request (fixed seed), from 8 client threads on keep-alive
connections:

  - 25 % catalog reads: `GET /api/v1/products?q=<random word>&page=<0..3>`, and a product by a
    random id (404);
  - 15 % signed-in reads with a customer's token: orders, payments, notifications, stock;
  - 10 % sign-ins with random names and passwords (401, 429 once throttled);
  - 15 % forged tokens: random bytes, `alg: none`, unknown kids (401);
  - 15 % unknown paths, each one new (`/api/v1/<random>/<random>`), and invented methods;
  - 10 % bad bodies: malformed JSON, wrong types, 100 KB strings, deep nesting (400/413);
  -  5 % orders of one unit (201, or 409 when the stock ran out);
  -  5 % a random `x-request-id` and `traceparent` on a health read.

VmRSS is read from /proc every 0.5 s; the table gives it after start, after the set-up
(products, users), every 20,000 requests, at the end and 5 s after the end, with VmHWM. Goal:
RSS at the end <= 150 MiB. Every answer must be below 500.

    python3 ops/bench/memory.py                     # $CARGO_TARGET_DIR/release/emporium
    python3 ops/bench/memory.py --binary target/debug/emporium --requests 20000 --no-docs

Writes the section "## Memory under abuse" of docs/BENCHMARKS.md unless --no-docs.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402

SECTION = "## Memory under abuse"
ADMIN_PASSWORD = "memory-bench-admin-password"
GOAL_MIB = 150


def rss_kib(pid: int) -> tuple[int, int]:
    status = bk.proc_status(pid)
    return bk.kib(status.get("VmRSS", "0 kB")), bk.kib(status.get("VmHWM", "0 kB"))


class Client:
    """One keep-alive connection to the gateway."""

    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if body is not None:
            headers.setdefault("content-type", "application/json")
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                if response.getheader("connection", "").lower() == "close":
                    self.connection.close()
                    self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                return response.status, data
            except (http.client.HTTPException, ConnectionError, OSError):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


def b64(value) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def one_request(rng: random.Random, client: Client, state: dict) -> int:
    roll = rng.random()
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
    bearer = {"authorization": f"Bearer {state['customer']}"}
    if roll < 0.20:
        return client.call("GET", f"/api/v1/products?q={word}&page={rng.randint(0, 3)}")[0]
    if roll < 0.25:
        return client.call("GET", f"/api/v1/products/{rng.getrandbits(64):x}")[0]
    if roll < 0.40:
        path = rng.choice(["/api/v1/orders", "/api/v1/payments", "/api/v1/notifications",
                           f"/api/v1/inventory/{rng.choice(state['skus'])}", "/api/v1/auth/me"])
        return client.call("GET", path, headers=bearer)[0]
    if roll < 0.50:
        body = json.dumps({"username": word, "password": f"pw-{rng.getrandbits(40)}"}).encode()
        return client.call("POST", "/api/v1/auth/login", body)[0]
    if roll < 0.65:
        kind = rng.randrange(3)
        if kind == 0:
            token = base64.b64encode(os.urandom(rng.randint(8, 600))).decode()
        elif kind == 1:
            token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': word, 'roles': ['admin']})}."
        else:
            token = f"{b64({'alg': 'EdDSA', 'kid': word})}.{b64({'sub': word})}.{b64(os.urandom(64))}"
        return client.call("GET", "/api/v1/orders", headers={"authorization": f"Bearer {token}"})[0]
    if roll < 0.80:
        if rng.random() < 0.5:
            return client.call("GET", f"/api/v1/{word}/{rng.getrandbits(48):x}")[0]
        method = rng.choice(["PROPFIND", "PURGE", "X" + word.upper()[:10], "TRACE", "OPTIONS"])
        return client.call(method, f"/api/v1/products/{word}")[0]
    if roll < 0.90:
        body = rng.choice([
            b"{not json",
            b"[]",
            json.dumps({"items": word}).encode(),
            json.dumps({"username": "x" * 100_000, "password": "y"}).encode(),
            b"[" * 2_000,
            json.dumps({"refreshToken": rng.getrandbits(30)}).encode(),
        ])
        path = rng.choice(["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/orders", "/api/v1/auth/register"])
        return client.call("POST", path, body, headers=bearer if path == "/api/v1/orders" else None)[0]
    if roll < 0.95:
        order = {"items": [{"sku": rng.choice(state["skus"]), "quantity": 1}], "currency": "USD",
                 "payment": {"method": "card", "token": "tok_visa"}}
        return client.call("POST", "/api/v1/orders", json.dumps(order).encode(), headers=bearer)[0]
    trace = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    return client.call("GET", "/api/v1/products?size=1",
                       headers={"x-request-id": f"{word}-{rng.getrandbits(32)}", "traceparent": trace})[0]


def set_up(port: int, num_products: int) -> dict:
    client = Client(port)
    status, body = client.call("POST", "/api/v1/auth/login",
                               json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode())
    assert status == 200, body
    admin = {"authorization": f"Bearer {json.loads(body)['accessToken']}"}
    skus = []
    for index in range(num_products):
        sku = f"MEM-{index}"
        product = {"sku": sku, "name": f"Thing {index}", "description": "A thing", "price": "3.50",
                   "currency": "USD", "category": "things", "attributes": {}}
        status, body = client.call("POST", "/api/v1/products", json.dumps(product).encode(), admin)
        assert status == 201, body
        stock = {"available": 1_000_000, "reorderLevel": 0, "reorderQuantity": 0}
        status, body = client.call("PUT", f"/api/v1/inventory/{sku}", json.dumps(stock).encode(), admin)
        assert status == 200, body
        skus.append(sku)
    user = {"username": "memory", "email": "memory@example.com", "fullName": "Memory Bench",
            "password": "correct horse battery"}
    status, body = client.call("POST", "/api/v1/auth/register", json.dumps(user).encode())
    assert status == 201, body
    status, body = client.call("POST", "/api/v1/auth/login",
                               json.dumps({"username": "memory", "password": "correct horse battery"}).encode())
    assert status == 200, body
    return {"skus": skus, "customer": json.loads(body)["accessToken"]}


def run(args) -> dict:
    binary = Path(args.binary or os.environ.get("EMPORIUM_BIN") or
                  Path(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/emporium/target"))) /
                  "release" / "emporium")
    if not binary.exists():
        raise SystemExit(f"no binary at {binary} (cargo build --release, or --binary)")
    work = Path(tempfile.mkdtemp(prefix="emporium-memory-"))
    http_port, node_port = bk.free_port(), bk.free_port()
    env = dict(os.environ, EMPORIUM_ADMIN_PASSWORD=ADMIN_PASSWORD, EMPORIUM__LOG__LEVEL="warn")
    for key in [key for key in env if key.startswith("EMPORIUM_") and key.endswith("_URL")]:
        env.pop(key)
    log_file = open(work / "node.log", "wb")
    node = subprocess.Popen([str(binary), "--role", "all", "--http", f"127.0.0.1:{http_port}",
                             "--listen", f"127.0.0.1:{node_port}", "--data-dir", str(work / "data")],
                            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    bk.CHILDREN.append(node)
    samples: list[tuple[str, int, int]] = []
    try:
        bk.wait_until("the node ready", lambda: bk.get(f"http://127.0.0.1:{node_port}/health/ready", 2)[0] == 200, 60)
        samples.append(("ready", *rss_kib(node.pid)))
        state = set_up(http_port, args.products)
        samples.append(("after set-up", *rss_kib(node.pid)))
        bk.log(f"set up: {args.products} products, one customer; RSS {samples[-1][1] // 1024} MiB")

        counter = {"sent": 0, "5xx": 0, "statuses": {}}
        lock = threading.Lock()
        milestones = list(range(args.report_every, args.requests + 1, args.report_every))
        peak = [0]
        done = threading.Event()

        def sampler():
            while not done.wait(0.5):
                peak[0] = max(peak[0], rss_kib(node.pid)[0])

        def worker(index: int):
            rng = random.Random(args.seed * 1000 + index)
            client = Client(http_port)
            while True:
                with lock:
                    if counter["sent"] >= args.requests:
                        return
                    counter["sent"] += 1
                    sent = counter["sent"]
                status = one_request(rng, client, state)
                with lock:
                    counter["statuses"][status] = counter["statuses"].get(status, 0) + 1
                    if status >= 500:
                        counter["5xx"] += 1
                    if milestones and sent >= milestones[0]:
                        milestones.pop(0)
                        samples.append((f"after {sent:,} requests", *rss_kib(node.pid)))
                        bk.log(f"{sent:,} requests; RSS {samples[-1][1] // 1024} MiB")

        threading.Thread(target=sampler, daemon=True).start()
        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(index,)) for index in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        done.set()
        samples.append(("at the end", *rss_kib(node.pid)))
        time.sleep(5)
        samples.append(("5 s later", *rss_kib(node.pid)))
        alive = node.poll() is None
        return {"binary": str(binary), "requests": counter["sent"], "seconds": elapsed, "clients": args.clients,
                "statuses": {str(key): value for key, value in sorted(counter["statuses"].items())},
                "num5xx": counter["5xx"], "samples": samples, "peakKib": peak[0], "alive": alive}
    finally:
        node.terminate()
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
        log_file.close()
        shutil.rmtree(work, ignore_errors=True)


def markdown(results: dict, info: dict, load_before: str, command: str) -> str:
    end_mib = results["samples"][-2][1] / 1024
    lines = [
        SECTION, "",
        f"Command: `{command}`. Machine: {info['nproc']} x {info['model']}; commit {info['commit']}; "
        f"before the run: {load_before}.", "",
        f"{results['requests']:,} mixed requests (see the script's docstring for the mix) from "
        f"{results['clients']} clients in {results['seconds']:.0f} s against one `emporium --role all` "
        f"(embedded stores); answers below 500: {results['requests'] - results['num5xx']:,} of "
        f"{results['requests']:,}; the node {'was alive' if results['alive'] else 'DIED'} at the end.", "",
        "| when | VmRSS | VmHWM |", "|---|---|---|",
    ]
    for label, rss, hwm in results["samples"]:
        lines.append(f"| {label} | {rss / 1024:.1f} MiB | {hwm / 1024:.1f} MiB |")
    lines += ["", f"Peak RSS sampled every 0.5 s: {results['peakKib'] / 1024:.1f} MiB. "
              f"Goal: RSS at the end <= {GOAL_MIB} MiB: {end_mib:.1f} MiB, "
              f"{'met' if end_mib <= GOAL_MIB else 'NOT met'}.",
              "", "Statuses: " + ", ".join(f"{status} x{count:,}" for status, count in results["statuses"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", help="the emporium binary (default $CARGO_TARGET_DIR/release/emporium)")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--report-every", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args()
    load_before, info = bk.start_run()
    results = run(args)
    command = bk.command_line("memory.py")
    for label, rss, hwm in results["samples"]:
        print(f"{label:>26}: RSS {rss / 1024:7.1f} MiB  HWM {hwm / 1024:7.1f} MiB")
    print(f"statuses: {results['statuses']}; 5xx: {results['num5xx']}; {results['seconds']:.0f} s")
    if args.json:
        bk.save_results(args.json, command, info, load_before, bk.uptime_line(), results)
    if not args.no_docs:
        bk.write_section(markdown(results, info, load_before, command), SECTION)
    end_mib = results["samples"][-2][1] / 1024
    return 0 if results["num5xx"] == 0 and results["alive"] and end_mib <= GOAL_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
