#!/usr/bin/env python3
"""Gateway benchmark (issue 4): real `emporium` nodes, Debian's nginx and wrk, all on 127.0.0.1.

Compares, in the same run, a token-checked GET answered by the echo actor:

  a. Emporium's gateway with the JWT check, echo actor in the SAME node
     (`--role registry,gateway,auth,echo`): `GET /api/v1/echo?text=hi` with a Bearer token;
  b. the same through a gateway node (`registry,gateway,auth`) to echo on ANOTHER node (`echo`);
  c. nginx as a reverse proxy WITHOUT a JWT check, in front of the echo node of b: the client
     sends the same GET, nginx turns it into `POST /cluster/v1/ask/echo/Echo` with the body
     `{"text":"hi"}` and the `Authorization: Cluster <secret>` header (keep-alive upstream);
  d. the backend alone: wrk straight at the echo node's cluster transport (POST, Lua script);

at 50 and 200 connections (wrk, fixed duration, after a warm-up), and reports req/s, p50, p99,
the ratios a/c and b/c (goal >= 1.0) and the latency a, b and c add over d (goal: added p99
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
`cargo build --release -p emporium --features test-services`. ops/bench/inventory.py shares the
helpers below. Every child process (nodes, nginx and its workers, wrk) is ended at exit; every
wait is bounded.
"""

import argparse
import atexit
import datetime
import hashlib
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster as cb  # noqa: E402  (the cluster benchmark's helpers: nodes, HTTP, /proc, docs)

ROOT = cb.ROOT
SECRET = cb.SECRET
SECTION = "## Gateway and auth (issue 4)"
BUILD_COMMAND = cb.BUILD_COMMAND
log = cb.log

# ---------------------------------------------------------------------------------------------
# Processes that are not emporium nodes (nginx runs in its own process group: its workers are
# ended with their master).

GROUPS: list[subprocess.Popen] = []


def end_groups() -> None:
    for proc in GROUPS:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
    for proc in GROUPS:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind, if any
        except OSError:
            pass


atexit.register(end_groups)  # registered after cluster.py's: runs before it


def spawn(args: list[str], group: bool = False, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(args, start_new_session=group, stdin=subprocess.DEVNULL, **kwargs)
    (GROUPS if group else cb.CHILDREN).append(proc)
    return proc


# ---------------------------------------------------------------------------------------------
# The binary: a clean export of a commit (--rev), a frozen copy of the working tree (--snapshot),
# or whatever is built.


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def snapshot_working_tree(target_dir: Path, tag: str | None = None) -> tuple[Path, str]:
    """Copies every tracked and untracked-but-not-ignored file of the working tree into
    <target>/bench-src/wt-<commit>-<content hash>, so that the build and both runs see one
    fixed state of the tree while others keep editing it. With `tag`, reuses that earlier copy."""
    if tag:
        dest = target_dir / "bench-src" / tag
        if not (dest / "Cargo.toml").exists():
            raise SystemExit(f"no frozen copy {dest}")
        return dest, f"working tree frozen earlier as {tag} (HEAD {tag.split('-')[1]} + uncommitted changes)"
    commit = git("rev-parse", "--short", "HEAD")
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True, timeout=60).stdout.split(b"\0")
    files = sorted({n.decode() for n in names if n and (ROOT / n.decode()).is_file()})
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    tag = f"wt-{commit}-{digest.hexdigest()[:12]}"
    dest = target_dir / "bench-src" / tag
    if not (dest / "Cargo.toml").exists():
        log(f"freezing the working tree ({len(files)} files) to {dest}")
        partial = dest.with_name(tag + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for name in files:
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, partial / name)
        os.replace(partial, dest)
    status = git("status", "--porcelain")
    modified = sum(1 for line in status.splitlines() if not line.startswith("??"))
    untracked = sum(1 for line in status.splitlines() if line.startswith("??"))
    label = (f"working tree at {commit} + uncommitted changes ({modified} modified tracked files, "
             f"{untracked} untracked paths), frozen copy {tag}")
    return dest, label


def ensure_binary(bench, args) -> None:
    """Sets bench.binary, bench.source_label and bench.config_source; builds when asked."""
    source = ROOT
    if args.rev and args.snapshot:
        raise SystemExit("--rev and --snapshot exclude each other")
    if args.rev:
        sha = git("rev-parse", "--short", args.rev)
        source = bench.target_dir / "bench-src" / sha
        if not (source / "Cargo.toml").exists():
            log(f"exporting commit {sha} to {source}")
            source.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True,
                                     check=True, timeout=120).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True, timeout=120)
        bench.source_label = f"commit {sha} (clean export)"
    elif args.snapshot:
        source, bench.source_label = snapshot_working_tree(
            bench.target_dir, None if args.snapshot is True else args.snapshot)
    bench.config_source = source / "config"
    if args.build or args.rev or args.snapshot or not bench.binary.exists():
        log(f"building in {source}: CARGO_TARGET_DIR={bench.target_dir} {' '.join(BUILD_COMMAND)}")
        env = dict(os.environ, CARGO_TARGET_DIR=str(bench.target_dir))
        done = subprocess.run(BUILD_COMMAND, cwd=source, env=env, timeout=3600)
        if done.returncode != 0:
            hint = (" A clean export builds only what is committed: when the commit lacks files the "
                    "workspace needs, measure a frozen copy of the working tree with --snapshot.") if args.rev else ""
            raise SystemExit(f"build failed in {source}.{hint}")
    probe = subprocess.run([str(bench.binary), "--role", "echo,probe", "--listen", "not-an-address"],
                           capture_output=True, text=True, timeout=30)
    if "role" in probe.stderr and "listen" not in probe.stderr:
        raise SystemExit(f"{bench.binary} lacks the test-services roles ({probe.stderr.strip()}); run with --build")
    built = datetime.datetime.fromtimestamp(bench.binary.stat().st_mtime, datetime.timezone.utc)
    bench.binary_label = f"$CARGO_TARGET_DIR/release/emporium, built {built.strftime('%Y-%m-%d %H:%M UTC')}"


# ---------------------------------------------------------------------------------------------
# Nodes with the flags and environment the gateway, auth and inventory roles need.


class Node(cb.Node):
    def __init__(self, bench, node_id: str, roles: str, registry: str | None = None,
                 listen: str = "127.0.0.1:0", config_dir: Path | None = None, http: str | None = None,
                 env: dict | None = None):
        self.node_id = node_id
        self.roles = roles
        self.listen = None if listen.endswith(":0") else listen
        self.http = http
        self.log_path = bench.tmp / f"{node_id}.log"
        args = [str(bench.binary), "--role", roles, "--listen", listen, "--node-id", node_id,
                "--data-dir", str(bench.tmp / f"data-{node_id}")]
        if registry:
            args += ["--registry", registry]
        if config_dir:
            args += ["--config-dir", str(config_dir)]
        if http:
            args += ["--http", http]
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EMPORIUM_CLUSTER_SECRET": SECRET}
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(args, env=full_env, cwd=bench.tmp, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        cb.CHILDREN.append(self.proc)

    def api(self, path: str) -> str:
        return f"http://{self.http}{path}"


class Bench(cb.Bench):
    def __init__(self, args):
        args.build = getattr(args, "build", False)
        super().__init__(args)
        self.binary_label = "?"

    def node(self, node_id: str, roles: str, registry: str | None = None, **kwargs) -> Node:
        node = Node(self, node_id, roles, registry, **kwargs)
        self.nodes.append(node)
        return node

    def own_config(self, name: str) -> Path:
        config_dir = self.tmp / f"config-{name}"
        shutil.copytree(self.config_source, config_dir)
        return config_dir


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


def sign_up(gateway: Node, username: str, password: str) -> str:
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
    def __init__(self, bench: Bench, backend: str):
        self.dir = bench.tmp / "nginx"
        self.dir.mkdir()
        self.port = cb.free_port()
        self.listen = f"127.0.0.1:{self.port}"
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.dir, backend=backend, listen=self.listen, secret=SECRET))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.log = open(self.dir / "stdout.log", "wb")
        self.proc = spawn([nginx, "-p", str(self.dir), "-c", str(conf)], group=True, stdout=self.log,
                          stderr=subprocess.STDOUT)

        def answering():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.dir / 'nginx-error.log').read_text(errors='replace')}")
            status, _ = api_call("GET", f"http://{self.listen}/api/v1/echo?text=hi", timeout=2)
            return status == 200
        cb.wait_until("nginx answering", answering, 20, every=0.05)

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
    proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    window = cb.CpuWindow(pids) if pids is not None else None
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
    return sum(cb.proc_cpu_seconds(pid) for pid in pids if Path(f"/proc/{pid}").exists())


# ---------------------------------------------------------------------------------------------
# The gateway figures


SCENARIOS = {
    "a": "gateway + JWT, echo in the same node",
    "b": "gateway + JWT, echo on another node",
    "c": "nginx, no JWT, echo node's cluster transport",
    "d": "echo node's cluster transport alone",
}


def figure_gateway(bench: Bench, args) -> dict:
    password = "bench-" + secrets.token_hex(8)
    admin_env = {"EMPORIUM_ADMIN_PASSWORD": "admin-" + secrets.token_hex(8)}
    # a: one node with the registry, the gateway, auth and echo.
    port = cb.free_port()
    local = bench.node("gw-local", "registry,gateway,auth,echo", listen=f"127.0.0.1:{port}",
                       config_dir=bench.own_config("gw-local"), http=f"127.0.0.1:{cb.free_port()}", env=admin_env)
    # b: a gateway node (registry, gateway, auth) and an echo node.
    port = cb.free_port()
    remote_gw = bench.node("gw-remote", "registry,gateway,auth", listen=f"127.0.0.1:{port}",
                           config_dir=bench.own_config("gw-remote"), http=f"127.0.0.1:{cb.free_port()}",
                           env=admin_env)
    for node in (local, remote_gw):
        node.wait_started().wait_ready()
    echo = bench.node("echo-remote", "echo", remote_gw.url("")).wait_started().wait_ready()

    def gateway_up(node):
        return lambda: api_call("GET", node.api("/.well-known/jwks.json"), timeout=2)[0] == 200
    for node in (local, remote_gw):
        cb.wait_until(f"{node.node_id} gateway", gateway_up(node), 30, every=0.05)
    token_local = sign_up(local, "bench-local", password)
    token_remote = sign_up(remote_gw, "bench-remote", password)
    argon2 = argon2_in_use(bench.tmp / "data-gw-local")
    log(f"  password hashes in gw-local's store: {argon2}")

    def answered_by(node, token, expected):
        def check():
            status, body = api_call("GET", node.api("/api/v1/echo?text=hi"), token=token, timeout=5)
            return status == 200 and isinstance(body, dict) and body.get("nodeId") == expected
        return check
    cb.wait_until("echo in the same node", answered_by(local, token_local, "gw-local"), 20, every=0.1)
    cb.wait_until("echo on another node", answered_by(remote_gw, token_remote, "echo-remote"), 20, every=0.1)
    nginx = Nginx(bench, echo.listen)
    status, body = api_call("GET", f"http://{nginx.listen}/api/v1/echo?text=hi", token=token_remote)
    if status != 200 or body.get("nodeId") != "echo-remote":
        raise RuntimeError(f"nginx -> echo answered {status}: {body}")
    lua = bench.tmp / "post-echo.lua"
    lua.write_text(WRK_POST_LUA.format(secret=SECRET))
    status, direct = cb.post(echo.url("/cluster/v1/ask/echo/Echo"), {"text": "hi"})
    if status != 200:
        raise RuntimeError(f"echo node answered {status}: {direct}")

    targets = {
        "a": dict(url=local.api("/api/v1/echo?text=hi"), headers={"Authorization": f"Bearer {token_local}"},
                  pids={"gateway": local.pid}),
        "b": dict(url=remote_gw.api("/api/v1/echo?text=hi"), headers={"Authorization": f"Bearer {token_remote}"},
                  pids={"gateway": remote_gw.pid, "echo": echo.pid}),
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
    for node, token, expected in ((local, token_local, "gw-local"), (remote_gw, token_remote, "echo-remote")):
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


def figure_logins(gateway: Node, email: str, password: str, args) -> dict:
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
        window = cb.CpuWindow({"node": gateway.pid})
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
            "p50Ms": latencies[count // 2] * 1000 if count else None,
            "p99Ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else None,
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


def yes(met: bool) -> str:
    return "yes" if met else "**no**"


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    g = results["gateway"]["scenarios"]
    out = []
    for conn in results["connections"]:
        c = str(conn)
        base = g["d"][c]
        for key in ("a", "b"):
            ratio = g[key][c]["requestsPerSecond"] / g["c"][c]["requestsPerSecond"]
            out.append((f"{key}/c req/s ratio, {conn} connections ({SCENARIOS[key]} vs nginx)", ">= 1.0",
                        f"{ratio:.2f} ({g[key][c]['requestsPerSecond']:,.0f} / {g['c'][c]['requestsPerSecond']:,.0f})",
                        yes(ratio >= 1.0)))
        for key in ("a", "b", "c"):
            added50 = g[key][c]["p50Ms"] - base["p50Ms"]
            added99 = g[key][c]["p99Ms"] - base["p99Ms"]
            goal = "p99 <= 5 ms" if key != "c" else "-"
            met = yes(added99 <= 5.0) if key != "c" else "-"
            out.append((f"{key}. added p50 / p99 over d, {conn} connections", goal,
                        f"{added50:+.2f} / {added99:+.2f} ms", met))
    for conc, r in results["gateway"]["logins"].items():
        out.append((f"Logins/s, concurrency {conc} ({results['argon2']})", "-",
                    f"{r['loginsPerSecond']:.1f}/s (p50 {r['p50Ms']:.0f} ms, p99 {r['p99Ms']:.0f} ms)", "-"))
    return out


def scenario_rows(results: dict) -> list[str]:
    g = results["gateway"]["scenarios"]
    lines = ["| Scenario | Connections | req/s | p50 | p99 | CPU per request (us) |", "|---|---|---|---|---|---|"]
    for key in ("a", "b", "c", "d"):
        for conn in results["connections"]:
            r = g[key][str(conn)]
            cpu = ", ".join(f"{n} {v:.0f}" for n, v in r["cpuMicrosPerRequest"].items())
            lines.append(f"| {key}. {SCENARIOS[key]} | {conn} | {r['requestsPerSecond']:,.0f} | {r['p50Ms']:.2f} ms | "
                         f"{r['p99Ms']:.2f} ms | {cpu} |")
    return lines


def print_table(table) -> None:
    cb.print_table(table)


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
        "and `ServiceRef` asks echo over the cluster transport (HTTP/JSON on loopback).",
        "- c. nginx (Debian's `nginx-light`, its own config in the temp dir: `worker_processes 2`, upstream "
        "`keepalive 256`, `keepalive_requests` unlimited on both sides, access log off) in front of b's echo node: "
        "the same GET with the same Bearer header, which nginx does not check; nginx rewrites it to "
        "`POST /cluster/v1/ask/echo/Echo` with `proxy_method POST`, `proxy_set_body '{\"text\":\"hi\"}'` and "
        "`proxy_set_header Authorization \"Cluster <secret>\"`.",
        "- d. wrk straight at b's echo node: `POST /cluster/v1/ask/echo/Echo`, body and headers from a Lua script. "
        "Added latency = the scenario's p50 (p99) minus d's at the same number of connections.",
        f"- Per number of connections: a {results['warmup']:g} s warm-up of each scenario (discarded), then "
        f"{results['reps']} rounds of a, b, c, d with the order rotated each round; the tables show medians. wrk's "
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
    for key in ("a", "b", "c", "d"):
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
    lines += ["", "Details of this run:", ""] + details
    return "\n".join(lines) + "\n"


def write_docs(section_text: str, section: str) -> Path:
    """Replaces `section` of docs/BENCHMARKS.md (or appends it); other sections are kept."""
    path = ROOT / "docs" / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else cb.INTRO
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == section), None)
    if start is None:
        new_text = text.rstrip("\n") + "\n\n" + section_text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new_text = "".join(lines[:start]) + section_text + ("\n" + tail if tail else "")
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(new_text)
    os.replace(temporary, path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="rebuild the release binary from the working tree")
    parser.add_argument("--rev", help="build and measure this commit from a clean export (e.g. HEAD)")
    parser.add_argument("--snapshot", nargs="?", const=True, metavar="TAG",
                        help="build and measure a frozen copy of the working tree (tracked + untracked files); "
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
    command = " ".join(["python3", "ops/bench/gateway.py"] + [shlex.quote(arg) for arg in sys.argv[1:]])

    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        print_table(rows(saved["results"]))
        if not args.no_docs:
            path = write_docs(markdown(saved["results"], saved["machine"], saved["loadBefore"], saved["command"]),
                              SECTION)
            log(f"wrote {path.relative_to(ROOT)} section {SECTION!r} from {args.report_from}")
        return 0

    bench = Bench(args)
    load_before = cb.uptime_line()
    info = cb.machine_info()
    log(f"machine: {info['nproc']} x {info['model']}, {info['kernel']}; commit {info['commit']}")
    log(f"before the run: {load_before}")
    results: dict = {"reps": args.reps, "duration": args.duration, "warmup": args.warmup, "threads": args.threads,
                     "connections": args.connections, "loginSeconds": args.login_seconds,
                     "loginConcurrency": args.login_concurrency}
    try:
        results["tools"] = ensure_tools()
        log(f"tools: {results['tools']}")
        ensure_binary(bench, args)
        if bench.source_label:
            info["commit"] = bench.source_label
        info["binary"] = bench.binary_label
        log(f"binary: {info['binary']}")
        results["gateway"] = figure_gateway(bench, args)
        results["argon2"] = results["gateway"].pop("argon2")
    finally:
        bench.cleanup()
        end_groups()
    load_after = cb.uptime_line()
    log(f"after the run: {load_after}")
    table = rows(results)
    print_table(table)
    print("\n".join(scenario_rows(results)))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "machine": info, "loadBefore": load_before,
                                               "loadAfter": load_after, "results": results}, indent=2, default=str))
    if not args.no_docs:
        path = write_docs(markdown(results, info, load_before, command), SECTION)
        log(f"wrote {path.relative_to(ROOT)} section {SECTION!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
