#!/usr/bin/env python3
"""Gateway benchmark (issue 4): real `emporium` nodes, Debian's nginx and wrk, all on 127.0.0.1.

Compares, in the same run, a token-checked GET answered by the echo actor:

  a. Emporium's gateway with the JWT check, echo actor in the SAME node
     (`--role registry,gateway,auth,echo`): `GET /api/v1/echo?text=hi` with a Bearer token;
  b. the same through a gateway node (`registry,gateway,auth`) to echo on ANOTHER node (`echo`),
     over a frame link (the default cluster transport);
  h. b's request through a third node (`gateway`, same cluster) that asks over HTTP
     (`EMPORIUM__CLUSTER__TRANSPORT=http`), the transport before frame links;
  c. nginx as a reverse proxy WITHOUT a JWT check, in front of the echo node of b: the client
     sends the same GET, nginx turns it into `POST /cluster/v1/ask/echo/Echo` with the body
     `{"text":"hi"}` and the `Authorization: Cluster <secret>` header (keep-alive upstream);
  d. the backend alone: wrk straight at the echo node's cluster transport (POST, Lua script);

at 50 and 200 connections (wrk, fixed duration, after a warm-up), and reports req/s, p50, p99,
the ratios a/c, b/c and h/c (goal >= 1.0) and the latency a, b and c add over d (goal: added p99
<= 5 ms). Also logins/s (`POST /api/v1/auth/login`, one user, correct password) at
concurrency 2 and 8.

Installs nginx-light and wrk with apt-get when missing; nginx runs with a config of its own in
the benchmark's temp dir (not the system service). Prints the tables and replaces the section
"## Gateway and auth (issue 4)" of docs/BENCHMARKS.md. Python 3.11 standard library only.

    python3 ops/bench/gateway.py --rev HEAD      # build and measure a clean export of a commit
    python3 ops/bench/gateway.py --snapshot      # build and measure a frozen copy of the working tree
    python3 ops/bench/gateway.py                 # the binary as it is (built from the tree if missing)
    python3 ops/bench/gateway.py --json out.json; python3 ops/bench/gateway.py --report-from out.json

The binary is $CARGO_TARGET_DIR/release/emporium (default ~/.cache/emporium/target), built with
`cargo build --release -p emporium --features test-services`. The helpers it shares with the
other scripts (nodes, the binary, HTTP, /proc, docs) are in ops/bench/benchkit.py. Every child
process (nodes, nginx and its workers, wrk) is ended at exit; every wait is bounded.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402  (helpers shared by ops/bench: nodes, the binary, HTTP, /proc, docs)

SECRET = bk.SECRET
SECTION = "## Gateway and auth (issue 4)"
BUILD_COMMAND = bk.BUILD_COMMAND
log = bk.log

# ---------------------------------------------------------------------------------------------
# The public API


def api_call(method: str, url: str, body=None, token: str | None = None, timeout: float = 20.0):
    """(status, parsed JSON or None) of a public API call (no cluster credential)."""
    host_port = url.split("/")[2]
    path = "/" + url.split("/", 3)[3]
    host, port = host_port.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        connection.close()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def sign_up(gateway: bk.Node, username: str, password: str) -> str:
    """Registers `username` and logs in; answers the access token."""
    email = f"{username}@example.com"
    status, body = api_call("POST", gateway.api("/api/v1/auth/register"),
                            {"username": username, "email": email, "fullName": "Bench User", "password": password})
    if status != 201:
        raise RuntimeError(f"register {username}: {status} {body}")
    status, body = api_call("POST", gateway.api("/api/v1/auth/login"), {"email": email, "password": password})
    if status != 200:
        raise RuntimeError(f"login {username}: {status} {body}")
    return body["accessToken"]


# ---------------------------------------------------------------------------------------------
# nginx and wrk


def ensure_tools(names=("nginx", "wrk")) -> dict:
    """Installs Debian's nginx-light and wrk when missing; answers their versions."""
    missing = [name for name in names if not shutil.which(name) and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        packages = ["nginx-light" if name == "nginx" else name for name in missing]
        log(f"installing {' '.join(packages)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, timeout=900, env=env)
    versions = {}
    if "nginx" in names:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        out = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
        versions["nginx"] = (out.stderr or out.stdout).strip().replace("nginx version: ", "")
        package = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}", "nginx-light"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        if package:
            versions["nginx"] += f" (Debian {package})"
    if "wrk" in names:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).strip().splitlines()
        versions["wrk"] = first[0] if first else "wrk"
    return versions


NGINX_CONF = """\
worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    # Client connections stay open like actix's do (the default would close one every 1,000).
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    upstream echo_backend {{
        server {backend};
        keepalive 256;
        keepalive_requests 10000000;
    }}
    server {{
        listen {listen};
        location = /api/v1/echo {{
            # The same GET the gateway gets, turned into the echo node's cluster ask.
            rewrite ^ /cluster/v1/ask/echo/Echo? break;
            proxy_pass http://echo_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_method POST;
            proxy_set_body '{{"text":"hi"}}';
            proxy_set_header Content-Type application/json;
            proxy_set_header Authorization "Cluster {secret}";
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, bench: bk.Bench, backend: str):
        self.dir = bench.tmp / "nginx"
        self.dir.mkdir()
        self.port = bk.free_port()
        self.listen = f"127.0.0.1:{self.port}"
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.dir, backend=backend, listen=self.listen, secret=SECRET))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.log = open(self.dir / "stdout.log", "wb")
        self.proc = bk.spawn([nginx, "-p", str(self.dir), "-c", str(conf)], group=True, stdout=self.log,
                          stderr=subprocess.STDOUT)

        def answering():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.dir / 'nginx-error.log').read_text(errors='replace')}")
            status, _ = api_call("GET", f"http://{self.listen}/api/v1/echo?text=hi", timeout=2)
            return status == 200
        bk.wait_until("nginx answering", answering, 20, every=0.05)

    def pids(self) -> list[int]:
        """The master and its workers."""
        pids = [self.proc.pid]
        try:
            pids += [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        except OSError:
            pass
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.log.close()


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    result = {"requestsPerSecond": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for percent in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{percent}%\s+(\S+)", output, re.M)
        result[f"p{percent}Ms"] = to_ms(match.group(1)) if match else None
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    result["requests"] = int(match.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socketErrors"] = sum(int(v) for v in errors.groups()) if errors else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


WRK_POST_LUA = """\
wrk.method = "POST"
wrk.body = '{{"text":"hi"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Cluster {secret}"
"""


def run_wrk(url: str, connections: int, seconds: float, threads: int, headers: dict | None = None,
            script: Path | None = None, pids: dict | None = None) -> dict:
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script:
        args += ["-s", str(script)]
    args.append(url)
    proc = bk.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window = bk.CpuWindow(pids) if pids is not None else None
    try:
        out, err = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError(f"wrk did not finish: {' '.join(args)}")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err or out}")
    result = parse_wrk(out)
    if window:
        result["cpu"] = window.finish()
    result["raw"] = out
    return result


def cpu_of_group(pids: list[int]) -> float:
    return sum(bk.proc_cpu_seconds(pid) for pid in pids if Path(f"/proc/{pid}").exists())


# ---------------------------------------------------------------------------------------------
# The gateway figures


SCENARIOS = {
    "a": "gateway + JWT, echo in the same node",
    "b": "gateway + JWT, echo on another node (frame link)",
    "h": "gateway + JWT, echo on another node, `cluster.transport = \"http\"`",
    "c": "nginx, no JWT, echo node's cluster transport",
    "d": "echo node's cluster transport alone",
}


def figure_gateway(bench: bk.Bench, args) -> dict:
    password = "bench-" + secrets.token_hex(8)
    admin_env = {"EMPORIUM_ADMIN_PASSWORD": "admin-" + secrets.token_hex(8)}
    # a: one node with the registry, the gateway, auth and echo.
    port = bk.free_port()
    local = bench.node("gw-local", "registry,gateway,auth,echo", listen=f"127.0.0.1:{port}",
                       config_dir=bench.own_config("gw-local"), http=f"127.0.0.1:{bk.free_port()}", env=admin_env)
    # b: a gateway node (registry, gateway, auth) and an echo node.
    port = bk.free_port()
    remote_gw = bench.node("gw-remote", "registry,gateway,auth", listen=f"127.0.0.1:{port}",
                           config_dir=bench.own_config("gw-remote"), http=f"127.0.0.1:{bk.free_port()}",
                           env=admin_env)
    for node in (local, remote_gw):
        node.wait_started().wait_ready()
    echo = bench.node("echo-remote", "echo", remote_gw.url("")).wait_started().wait_ready()
    # h: b's path from a gateway node that asks other nodes over HTTP (the transport before
    # frame links), in the same cluster: same auth, same echo node.
    http_gw = bench.node("gw-http", "gateway", remote_gw.url(""), http=f"127.0.0.1:{bk.free_port()}",
                         env={"EMPORIUM__CLUSTER__TRANSPORT": "http"}).wait_started().wait_ready()

    def gateway_up(node):
        return lambda: api_call("GET", node.api("/.well-known/jwks.json"), timeout=2)[0] == 200
    for node in (local, remote_gw, http_gw):
        bk.wait_until(f"{node.node_id} gateway", gateway_up(node), 30, every=0.05)
    token_local = sign_up(local, "bench-local", password)
    token_remote = sign_up(remote_gw, "bench-remote", password)
    argon2 = argon2_in_use(bench.tmp / "data-gw-local")
    log(f"  password hashes in gw-local's store: {argon2}")

    def answered_by(node, token, expected):
        def check():
            status, body = api_call("GET", node.api("/api/v1/echo?text=hi"), token=token, timeout=5)
            return status == 200 and isinstance(body, dict) and body.get("nodeId") == expected
        return check
    bk.wait_until("echo in the same node", answered_by(local, token_local, "gw-local"), 20, every=0.1)
    bk.wait_until("echo on another node", answered_by(remote_gw, token_remote, "echo-remote"), 20, every=0.1)
    bk.wait_until("echo on another node over HTTP", answered_by(http_gw, token_remote, "echo-remote"), 20, every=0.1)
    nginx = Nginx(bench, echo.listen)
    status, body = api_call("GET", f"http://{nginx.listen}/api/v1/echo?text=hi", token=token_remote)
    if status != 200 or body.get("nodeId") != "echo-remote":
        raise RuntimeError(f"nginx -> echo answered {status}: {body}")
    lua = bench.tmp / "post-echo.lua"
    lua.write_text(WRK_POST_LUA.format(secret=SECRET))
    status, direct = bk.post(echo.url("/cluster/v1/ask/echo/Echo"), {"text": "hi"})
    if status != 200:
        raise RuntimeError(f"echo node answered {status}: {direct}")

    targets = {
        "a": dict(url=local.api("/api/v1/echo?text=hi"), headers={"Authorization": f"Bearer {token_local}"},
                  pids={"gateway": local.pid}),
        "b": dict(url=remote_gw.api("/api/v1/echo?text=hi"), headers={"Authorization": f"Bearer {token_remote}"},
                  pids={"gateway": remote_gw.pid, "echo": echo.pid}),
        "h": dict(url=http_gw.api("/api/v1/echo?text=hi"), headers={"Authorization": f"Bearer {token_remote}"},
                  pids={"gateway": http_gw.pid, "echo": echo.pid}),
        "c": dict(url=f"http://{nginx.listen}/api/v1/echo?text=hi",
                  headers={"Authorization": f"Bearer {token_remote}"}, pids={"echo": echo.pid}, nginx=True),
        "d": dict(url=echo.url("/cluster/v1/ask/echo/Echo"), script=lua, pids={"echo": echo.pid}),
    }
    runs: dict = {key: {str(c): [] for c in args.connections} for key in targets}
    for connections in args.connections:
        for key, target in targets.items():
            warm = run_wrk(target["url"], connections, args.warmup, args.threads, target.get("headers"),
                           target.get("script"))
            log(f"  warm-up {key} c={connections}: {warm['requestsPerSecond']:.0f} req/s (discarded)")
        for rep in range(args.reps):
            # Rotate the order per repetition so that no scenario always runs first or last.
            keys = list(targets)
            keys = keys[rep % len(keys):] + keys[:rep % len(keys)]
            for key in keys:
                target = targets[key]
                pids = dict(target["pids"])
                nginx_pids = nginx.pids() if target.get("nginx") else []
                nginx_before = cpu_of_group(nginx_pids)
                result = run_wrk(target["url"], connections, args.duration, args.threads, target.get("headers"),
                                 target.get("script"), pids=pids)
                if nginx_pids:
                    seconds = cpu_of_group(nginx_pids) - nginx_before
                    result["cpu"]["cpuSeconds"]["nginx"] = seconds
                    result["cpu"]["cores"]["nginx"] = seconds / result["cpu"]["wallSeconds"]
                    result["cpu"]["otherCores"] = max(0.0, result["cpu"]["otherCores"] - result["cpu"]["cores"]["nginx"])
                result.pop("raw")
                if result["socketErrors"] or result["non2xx"]:
                    log(f"  WARNING {key} c={connections}: {result['socketErrors']} socket errors, "
                        f"{result['non2xx']} non-2xx answers")
                runs[key][str(connections)].append(result)
                cores = " ".join(f"{n}={v:.2f}" for n, v in result["cpu"]["cores"].items())
                log(f"  {key} c={connections} rep {rep + 1}: {result['requestsPerSecond']:.0f} req/s "
                    f"p50={result['p50Ms']:.2f} ms p99={result['p99Ms']:.2f} ms errors="
                    f"{result['socketErrors']}+{result['non2xx']} | cores: {cores} "
                    f"others={result['cpu']['otherCores']:.2f} (incl. wrk)")
    # Every answer came from the expected node, also after the runs.
    for node, token, expected in ((local, token_local, "gw-local"), (remote_gw, token_remote, "echo-remote"),
                                  (http_gw, token_remote, "echo-remote")):
        if not answered_by(node, token, expected)():
            raise RuntimeError(f"{node.node_id} no longer answers from {expected}")
    out: dict = {"scenarios": {}}
    for key, by_conn in runs.items():
        out["scenarios"][key] = {}
        for connections, results in by_conn.items():
            names = list(results[0]["cpu"]["cores"])
            out["scenarios"][key][connections] = {
                "requestsPerSecond": statistics.median(r["requestsPerSecond"] for r in results),
                "p50Ms": statistics.median(r["p50Ms"] for r in results),
                "p99Ms": statistics.median(r["p99Ms"] for r in results),
                "rpsAll": [round(r["requestsPerSecond"]) for r in results],
                "p50All": [round(r["p50Ms"], 2) for r in results],
                "p99All": [round(r["p99Ms"], 2) for r in results],
                "errors": sum(r["socketErrors"] + r["non2xx"] for r in results),
                "cores": {n: statistics.median(r["cpu"]["cores"][n] for r in results) for n in names},
                "cpuMicrosPerRequest": {n: statistics.median(r["cpu"]["cpuSeconds"][n] * 1e6 / max(1, r["requests"])
                                                             for r in results) for n in names},
                "otherCores": statistics.median(r["cpu"]["otherCores"] for r in results),
            }
    nginx.stop()
    errors = (nginx.dir / "nginx-error.log").read_text(errors="replace").splitlines()
    out["nginxErrorLog"] = {"lines": len(errors), "first": errors[:3]}
    if errors:
        log(f"  nginx error log: {len(errors)} lines, first: {errors[:3]}")
    out["argon2"] = argon2
    out["logins"] = figure_logins(local, "bench-local@example.com", password, args)
    bench.stop_all()
    return out


def figure_logins(gateway: bk.Node, email: str, password: str, args) -> dict:
    """POST /api/v1/auth/login for one user with the correct password, `concurrency` clients
    with keep-alive connections, for `args.login_seconds` each."""
    host, port = gateway.http.rsplit(":", 1)
    body = json.dumps({"email": email, "password": password})
    results = {}
    for concurrency in args.login_concurrency:
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.login_seconds

        def client():
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            mine, bad = [], []
            while time.monotonic() < stop_at:
                sent = time.perf_counter()
                try:
                    connection.request("POST", "/api/v1/auth/login", body=body,
                                       headers={"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as error:
                    bad.append(type(error).__name__)
                    connection.close()
                    connection = http.client.HTTPConnection(host, int(port), timeout=30)
                    continue
                if response.status == 200:
                    mine.append(time.perf_counter() - sent)
                else:
                    bad.append(str(response.status))
            connection.close()
            with lock:
                latencies.extend(mine)
                failures.extend(bad)
        # Warm-up: two logins, not counted.
        for _ in range(2):
            status, answer = api_call("POST", gateway.api("/api/v1/auth/login"), {"email": email, "password": password})
            if status != 200:
                raise RuntimeError(f"login answered {status}: {answer}")
        window = bk.CpuWindow({"node": gateway.pid})
        started = time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.login_seconds + 60)
        wall = time.monotonic() - started
        cpu = window.finish()
        latencies.sort()
        count = len(latencies)
        results[str(concurrency)] = {
            "loginsPerSecond": count / wall,
            "logins": count,
            "failures": len(failures),
            "failureKinds": sorted(set(failures)),
            "p50Ms": bk.percentile_floor(latencies, 0.50) * 1000 if count else None,
            "p99Ms": bk.percentile_floor(latencies, 0.99) * 1000 if count else None,
            "nodeCores": cpu["cores"]["node"],
            "cpuMillisPerLogin": cpu["cpuSeconds"]["node"] * 1000 / max(1, count),
            "otherCores": cpu["otherCores"],
        }
        r = results[str(concurrency)]
        log(f"  logins c={concurrency}: {r['loginsPerSecond']:.1f}/s ({count} in {wall:.1f} s), p50 {r['p50Ms']:.0f} ms "
            f"p99 {r['p99Ms']:.0f} ms, failures {len(failures)} {r['failureKinds']}, node {r['nodeCores']:.2f} cores, "
            f"{r['cpuMillisPerLogin']:.1f} ms CPU per login, others {r['otherCores']:.2f} cores")
    return results


# ---------------------------------------------------------------------------------------------
# Report


def argon2_in_use(data_dir: Path) -> str:
    """The argon2 parameters of the stored password hashes (PHC strings in the auth node's
    embedded database files), measured rather than read from the code."""
    found = set()
    for path in data_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 256 * 1024 * 1024:
            for match in re.finditer(rb"\$(argon2(?:id|i|d))\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$", path.read_bytes()):
                found.add(tuple(part.decode() for part in match.groups()))
    if not found:
        return "argon2 parameters not found in the auth store"
    return "; ".join(f"{alg} m={m} KiB, t={t}, p={p} (v={v})" for alg, v, m, t, p in sorted(found))


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    g = results["gateway"]["scenarios"]
    out = []
    for conn in results["connections"]:
        c = str(conn)
        base = g["d"][c]
        for key in ("a", "b", "h"):
            if key not in g:
                continue
            ratio = g[key][c]["requestsPerSecond"] / g["c"][c]["requestsPerSecond"]
            out.append((f"{key}/c req/s ratio, {conn} connections ({SCENARIOS[key]} vs nginx)", ">= 1.0",
                        f"{ratio:.2f} ({g[key][c]['requestsPerSecond']:,.0f} / {g['c'][c]['requestsPerSecond']:,.0f})",
                        bk.yes(ratio >= 1.0)))
        for key in ("a", "b", "h", "c"):
            if key not in g:
                continue
            added50 = g[key][c]["p50Ms"] - base["p50Ms"]
            added99 = g[key][c]["p99Ms"] - base["p99Ms"]
            goal = "p99 <= 5 ms" if key != "c" else "-"
            met = bk.yes(added99 <= 5.0) if key != "c" else "-"
            out.append((f"{key}. added p50 / p99 over d, {conn} connections", goal,
                        f"{added50:+.2f} / {added99:+.2f} ms", met))
    for conc, r in results["gateway"]["logins"].items():
        out.append((f"Logins/s, concurrency {conc} ({results['argon2']})", "-",
                    f"{r['loginsPerSecond']:.1f}/s (p50 {r['p50Ms']:.0f} ms, p99 {r['p99Ms']:.0f} ms)", "-"))
    return out


def scenario_rows(results: dict) -> list[str]:
    g = results["gateway"]["scenarios"]
    lines = ["| Scenario | Connections | req/s | p50 | p99 | CPU per request (us) |", "|---|---|---|---|---|---|"]
    for key in ("a", "b", "h", "c", "d"):
        if key not in g:
            continue
        for conn in results["connections"]:
            r = g[key][str(conn)]
            cpu = ", ".join(f"{n} {v:.0f}" for n, v in r["cpuMicrosPerRequest"].items())
            lines.append(f"| {key}. {SCENARIOS[key]} | {conn} | {r['requestsPerSecond']:,.0f} | {r['p50Ms']:.2f} ms | "
                         f"{r['p99Ms']:.2f} ms | {cpu} |")
    return lines


def markdown(results: dict, info: dict, load_before: str, command: str) -> str:
    tools = results.get("tools", {})
    lines = [
        SECTION,
        "",
        f"Measured {info['date']} on `{info['commit']}` with `{command}` "
        f"(release build: `CARGO_TARGET_DIR=${{CARGO_TARGET_DIR:-~/.cache/emporium/target}} "
        f"{' '.join(BUILD_COMMAND)}`; binary `{info.get('binary', '?')}`; {tools.get('nginx', 'nginx')}; "
        f"{tools.get('wrk', 'wrk')}).",
        "",
        f"Machine: {info['nproc']} cores, {info['model']}, {info['kernel']}. Everything runs on this one "
        f"{info['nproc']}-core machine: wrk, nginx, the nodes and the script share the cores, and other engineers "
        f"were building on the same machine. Load before the run: `{load_before}`.",
        "",
        "| Figure | Goal | Measured | Met? |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    lines += ["", f"Each scenario, median of {results['reps']} runs of {results['duration']:g} s "
              f"(wrk -t{results['threads']}, keep-alive connections, closed loop):", ""]
    lines += scenario_rows(results)
    lines += [
        "",
        "How it is measured (all traffic on 127.0.0.1; nodes started by the script with `--listen`, `--http`, "
        "`--node-id`, `--data-dir` in a temp dir, `EMPORIUM_CLUSTER_SECRET`; each registry gets its own copy of "
        "`config/`; auth on its embedded SQLite store):",
        "",
        "- a. One node `--role registry,gateway,auth,echo`. A user registers and logs in; wrk sends "
        "`GET /api/v1/echo?text=hi` with `Authorization: Bearer <access token>`. The gateway checks the EdDSA "
        "token (and, every `user_check_ttl_millis`, that the user still exists), and the route asks the echo "
        "actor through `ServiceRef`, which finds it in the same node. The gateway keeps verified tokens until they "
        "expire (`actors/gateway/src/verifier.rs`, up to 50,000), so with one token per client the signature is "
        "checked once and every later request is a cache lookup: these figures are that cached path.",
        "- b. A node `--role registry,gateway,auth` and a node `--role echo` registered with it: the same request, "
        "and `ServiceRef` asks echo over the cluster transport: a frame link (one persistent connection per "
        "gateway worker thread, binary frames around the JSON body, `actors/cluster/src/frames.rs`).",
        "- h. As b, from a third node `--role gateway` in the same cluster started with "
        "`EMPORIUM__CLUSTER__TRANSPORT=http`: it asks echo with one HTTP/1.1 keep-alive request per ask "
        "(`POST /cluster/v1/ask/echo/Echo`), the transport before frame links. Same token, same echo node.",
        "- c. nginx (Debian's `nginx-light`, its own config in the temp dir: `worker_processes 2`, upstream "
        "`keepalive 256`, `keepalive_requests` unlimited on both sides, access log off) in front of b's echo node: "
        "the same GET with the same Bearer header, which nginx does not check; nginx rewrites it to "
        "`POST /cluster/v1/ask/echo/Echo` with `proxy_method POST`, `proxy_set_body '{\"text\":\"hi\"}'` and "
        "`proxy_set_header Authorization \"Cluster <secret>\"`.",
        "- d. wrk straight at b's echo node: `POST /cluster/v1/ask/echo/Echo`, body and headers from a Lua script. "
        "Added latency = the scenario's p50 (p99) minus d's at the same number of connections.",
        f"- Per number of connections: a {results['warmup']:g} s warm-up of each scenario (discarded), then "
        f"{results['reps']} rounds of a, b, h, c, d with the order rotated each round; the tables show medians. wrk's "
        "latency is that of a closed loop: at 200 connections most of it is queueing on 2 cores.",
        f"- Logins: the user of a logs in (`POST /api/v1/auth/login`, correct password, so the login limiter never "
        f"counts a failure) from {', '.join(str(c) for c in results['loginConcurrency'])} Python clients with "
        f"keep-alive connections for {results['loginSeconds']:g} s each; logins/s = successful logins / wall time. "
        f"Passwords: {results['argon2']}.",
        "- CPU per request: the CPU time of each process during a run (from `/proc/<pid>/task/*/schedstat`; nginx "
        "= master + workers) divided by the requests wrk completed.",
    ]
    details = []
    g = results["gateway"]["scenarios"]
    for key in ("a", "b", "h", "c", "d"):
        if key not in g:
            continue
        parts = []
        for conn in results["connections"]:
            r = g[key][str(conn)]
            cores = ", ".join(f"{n} {v:.2f}" for n, v in r["cores"].items())
            parts.append(f"c={conn}: {r['rpsAll']} req/s, p50 {r['p50All']} ms, p99 {r['p99All']} ms, "
                         f"errors {r['errors']}; cores {cores}, other processes (wrk included) {r['otherCores']:.2f}")
        details.append(f"- {key}. {'; '.join(parts)}.")
    for conc, r in results["gateway"]["logins"].items():
        details.append(f"- Logins c={conc}: {r['logins']} in {results['loginSeconds']:g} s, failures {r['failures']}"
                       f"{' ' + str(r['failureKinds']) if r['failures'] else ''}; node {r['nodeCores']:.2f} cores, "
                       f"{r['cpuMillisPerLogin']:.1f} ms CPU per login; other processes {r['otherCores']:.2f} cores.")
    nginx_log = results["gateway"].get("nginxErrorLog")
    if nginx_log:
        details.append(f"- nginx error log: {nginx_log['lines']} lines"
                       + (f"; first: `{'`, `'.join(line[:300] for line in nginx_log['first'])}`" if nginx_log["lines"] else "")
                       + ".")
    return bk.section_text(lines, details)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bk.add_binary_options(parser, "build and measure a frozen copy of the working tree (tracked + untracked files); "
                                  "with TAG (wt-<commit>-<hash>), the copy an earlier run made")
    parser.add_argument("--connections", default="50,200", help="wrk connections (default 50,200)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per scenario (default 3)")
    parser.add_argument("--reps", type=int, default=3, help="measured runs per scenario (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--login-seconds", type=float, default=10.0)
    parser.add_argument("--login-concurrency", default="2,8")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/BENCHMARKS.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep logs and configs in the temp dir")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--report-from", metavar="JSON", help="measure nothing: report from a saved --json file")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    args.login_concurrency = [int(c) for c in args.login_concurrency.split(",")]
    command = bk.command_line("gateway.py")

    if args.report_from:
        return bk.report_saved(args, SECTION, rows, markdown)

    bench = bk.Bench(args)
    load_before, info = bk.start_run()
    results: dict = {"reps": args.reps, "duration": args.duration, "warmup": args.warmup, "threads": args.threads,
                     "connections": args.connections, "loginSeconds": args.login_seconds,
                     "loginConcurrency": args.login_concurrency}
    try:
        results["tools"] = ensure_tools()
        log(f"tools: {results['tools']}")
        bench.ensure_binary()
        if bench.source_label:
            info["commit"] = bench.source_label
        info["binary"] = bench.binary_label
        log(f"binary: {info['binary']}")
        results["gateway"] = figure_gateway(bench, args)
        results["argon2"] = results["gateway"].pop("argon2")
    finally:
        bench.cleanup()
        bk.end_groups()
    load_after = bk.uptime_line()
    log(f"after the run: {load_after}")
    table = rows(results)
    bk.print_table(table)
    print("\n".join(scenario_rows(results)))
    bk.publish(args, command, info, load_before, load_after, results, SECTION, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
