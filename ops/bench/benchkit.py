#!/usr/bin/env python3
"""Helpers shared by the benchmark scripts of ops/bench (cluster.py, gateway.py, inventory.py,
orders.py, products.sh). Python 3.11 standard library only.

Imported by the Python scripts (`import benchkit as bk`, the scripts put their own directory on
sys.path first). Importing it registers, once, the clean-up every script relies on: every child
process spawned through it is ended at exit (atexit), and SIGTERM, SIGINT and SIGHUP exit
through the same path.

  - processes: CHILDREN, GROUPS, spawn, kill_children, end_groups
  - machine: log, uptime_line, free_port, free_port_block, git, machine_info
  - HTTP to the nodes' cluster listener: request, get, post, wait_until
  - /proc: proc_status, kib, proc_cpu_seconds, process_cpu_seconds, machine_cpu,
    context_switches, CpuWindow
  - Prometheus text: histogram; percentiles: percentile, percentile_floor
  - a cluster run by ops/cluster.sh: ClusterScript; RabbitMQ: Rabbitmqctl
  - MariaDB through its command-line client: MariaDb, mariadb_pid
  - the binary and its nodes: export_commit, snapshot_working_tree, build_emporium, Node, Bench
  - report: yes, print_table, INTRO, section_text, write_docs, write_section, add_binary_options,
    command_line, start_run, save_results, publish, report_saved

Shell scripts use it as a command:

    python3 ops/bench/benchkit.py free-port                  # prints a free TCP port of 127.0.0.1
    python3 ops/bench/benchkit.py write-docs HEADING TEXT    # replaces section HEADING of docs/BENCHMARKS.md
"""

import argparse
import atexit
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The cluster credential of the nodes cluster.py, gateway.py and inventory.py start
# (orders.py starts its nodes with a secret of its own and passes it to `request`).
SECRET = "bench-cluster-secret-0123456789abcdef"
BUILD_COMMAND = ["cargo", "build", "--release", "-p", "emporium", "--features", "test-services"]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Direct connections only: a proxy from the environment must never see loopback traffic.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ---------------------------------------------------------------------------------------------
# Child processes

CHILDREN: list[subprocess.Popen] = []
"""Processes killed (SIGKILL) at exit: the nodes and the load generators."""

GROUPS: list[subprocess.Popen] = []
"""Processes started in a process group of their own (nginx: its workers are ended with their
master), ended with SIGTERM, then SIGKILL, at exit."""


def _end(procs: list[subprocess.Popen], first, then=None) -> None:
    """`first(proc)` for every process still running, then waits up to 5 s for each and, with
    `then`, calls `then(proc)` for each (OSError ignored)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                first(proc)
            except OSError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if then:
            try:
                then(proc)
            except OSError:
                pass


def kill_children() -> None:
    """Kills every process of CHILDREN still running and reaps them (at most 5 s each)."""
    _end(CHILDREN, lambda child: child.kill())


def end_groups() -> None:
    """Ends every process group of GROUPS: SIGTERM, up to 5 s, then SIGKILL for what is left
    (workers left behind, if any)."""
    _end(GROUPS, lambda proc: os.killpg(proc.pid, signal.SIGTERM), lambda proc: os.killpg(proc.pid, signal.SIGKILL))


atexit.register(kill_children)
atexit.register(end_groups)  # registered last: runs first


def spawn(args: list[str], group: bool = False, **kwargs) -> subprocess.Popen:
    """Popen with stdin from /dev/null, recorded so that it is ended at exit: in GROUPS (a new
    session and process group) with `group`, in CHILDREN otherwise."""
    proc = subprocess.Popen(args, start_new_session=group, stdin=subprocess.DEVNULL, **kwargs)
    (GROUPS if group else CHILDREN).append(proc)
    return proc


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


for _signal in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_signal, _on_signal)


# ---------------------------------------------------------------------------------------------
# The machine


def log(message: str) -> None:
    """Prints `message` with the time of day, flushed."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def uptime_line() -> str:
    """The output of `uptime` (the load averages), for the report."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        one, five, fifteen = os.getloadavg()
        return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(count: int) -> int:
    """A port P of 127.0.0.1 such that P..P+count-1 are free now, below the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, 30000)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise SystemExit(f"no block of {count} free ports between 20000 and 30000")


def git(*args: str) -> str:
    """The stripped output of `git ARGS` in the repository; raises when git fails."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def machine_info() -> dict:
    """Cores, CPU model, kernel, commit (and how many tracked files are modified), date and
    Python version, for the report."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    return {
        "nproc": os.cpu_count(),
        "model": model,
        "kernel": f"{os.uname().sysname} {os.uname().release}",
        "commit": "working tree at " + commit
                  + (f" + uncommitted changes in {len(dirty.splitlines())} tracked files" if dirty else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
    }


# ---------------------------------------------------------------------------------------------
# HTTP to the nodes' cluster listener


def request(method: str, url: str, body=None, timeout: float = 10.0, secret: str = SECRET):
    """(status, parsed JSON or text); status 0 when the connection failed. Sends the cluster
    credential `Authorization: Cluster <secret>` and `body` as JSON; never through a proxy."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Cluster {secret}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw = error.read()
        status = error.code
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def get(url: str, timeout: float = 10.0, secret: str = SECRET):
    """`request` GET."""
    return request("GET", url, timeout=timeout, secret=secret)


def post(url: str, body=None, timeout: float = 10.0, secret: str = SECRET):
    """`request` POST; no body means `{}`."""
    return request("POST", url, body if body is not None else {}, timeout=timeout, secret=secret)


def wait_until(what: str, check, within: float, every: float = 0.02):
    """Calls `check` every `every` s until it returns a truthy value; raises after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within:.0f}s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------------
# /proc


def proc_status(pid: int) -> dict:
    """The fields of /proc/<pid>/status (VmRSS, VmHWM, Threads, ...) as strings."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def kib(value: str) -> int:
    """The number of a /proc/<pid>/status size such as "1234 kB"."""
    return int(value.split()[0])


def proc_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid`, from /proc/<pid>/task/*/schedstat (nanoseconds; the
    clock-tick counters of /proc/<pid>/stat are too coarse for short runs). Threads that already
    exited are not counted: see process_cpu_seconds."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process from /proc/<pid>/stat: unlike the per-thread
    schedstat sum, it keeps the time of threads that already exited (the load generator's).
    0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def context_switches(pid: int) -> int:
    """Voluntary plus involuntary context switches of every thread of `pid`."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if "ctxt_switches" in line:
                        total += int(line.split(":")[1])
        except OSError:
            pass
    return total


class CpuWindow:
    """CPU used by some processes ({name: pid}) and by the whole machine over a window, from
    creation to `finish`. `cpu_seconds` reads one process's CPU time (proc_cpu_seconds or
    process_cpu_seconds); with `switches`, the processes' context switches are counted too."""

    def __init__(self, pids: dict[str, int], cpu_seconds=proc_cpu_seconds, switches: bool = True):
        self.pids = pids
        self.cpu_seconds = cpu_seconds
        self.started = time.monotonic()
        self.proc = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.switches = {name: context_switches(pid) for name, pid in pids.items()} if switches else None
        self.machine = machine_cpu()

    def finish(self, extra_seconds: dict[str, float] | None = None) -> dict:
        """wallSeconds, cores and cpuSeconds per process, machineBusyCores, otherCores (the
        machine's busy cores not spent by these processes) and, when counted, contextSwitches.
        `extra_seconds` adds CPU seconds measured otherwise (a process that already exited)."""
        wall = time.monotonic() - self.started
        busy, _total = machine_cpu()
        ours = {name: self.cpu_seconds(pid) - self.proc[name] for name, pid in self.pids.items()}
        ours.update(extra_seconds or {})
        machine_busy = busy - self.machine[0]
        out = {
            "wallSeconds": wall,
            "cores": {name: seconds / wall for name, seconds in ours.items()},
            "machineBusyCores": machine_busy / wall,
            "otherCores": max(0.0, (machine_busy - sum(ours.values())) / wall),
            "cpuSeconds": ours,
        }
        if self.switches is not None:
            out["contextSwitches"] = {name: context_switches(pid) - self.switches[name]
                                      for name, pid in self.pids.items()}
        return out


# ---------------------------------------------------------------------------------------------
# Prometheus text and percentiles


def histogram(text: str | None, name: str, labels: dict[str, str]) -> dict:
    """{"sum", "count", "buckets": {upper bound in seconds: cumulative count}} of the Prometheus
    histogram `name`, summed over every series whose labels include `labels` (exact values)."""
    out: dict = {"sum": 0.0, "count": 0.0, "buckets": {}}
    pattern = re.compile(r"^" + re.escape(name) + r"_(bucket|sum|count)\{([^}]*)\} ([0-9.eE+-]+|NaN|\+Inf)$")
    for line in (text or "").splitlines():
        match = pattern.match(line)
        if not match:
            continue
        series = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if any(series.get(key) != value for key, value in labels.items()):
            continue
        value = float(match.group(3))
        if match.group(1) == "bucket":
            le = float("inf") if series.get("le") == "+Inf" else float(series.get("le", "inf"))
            out["buckets"][le] = out["buckets"].get(le, 0.0) + value
        else:
            out[match.group(1)] += value
    return out


def percentile(values: list[float], fraction: float) -> float:
    """sorted(values)[round((n - 1) * fraction)]: the rank the raw loops (ops/bench/*raw) and the
    probe's `measure` use; NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[round((len(ordered) - 1) * fraction)]


def percentile_floor(ordered: list[float], fraction: float) -> float:
    """ordered[min(n - 1, int(n * fraction))] of values sorted already (at least one)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# ---------------------------------------------------------------------------------------------
# A whole cluster run by ops/cluster.sh, RabbitMQ through rabbitmqctl


class ClusterScript:
    """The nodes ops/cluster.sh runs with `env` in `state_dir` (ops/chaos.py, the dashboard's
    browser test)."""

    def __init__(self, state_dir: Path, env: dict):
        self.state_dir = state_dir
        self.env = env
        self.script_log = state_dir / "cluster-sh.log"

    @staticmethod
    def environment(state_dir: Path, settings: dict) -> dict:
        """The environment of ops/cluster.sh for a cluster of its own in `state_dir`: this
        process's, without its EMPORIUM_* settings (but EMPORIUM_BIN), with a copy of config/
        in `state_dir`, then `settings` (EMPORIUM_MYSQL_URL, ...)."""
        config_dir = state_dir / "config"
        shutil.copytree(ROOT / "config", config_dir, dirs_exist_ok=True)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("EMPORIUM_") or key in ("EMPORIUM_BIN",)}
        env.update({"EMPORIUM_CLUSTER_DIR": str(state_dir), "EMPORIUM_CONFIG_DIR": str(config_dir),
                    "EMPORIUM_READY_TIMEOUT": "60"})
        env.update(settings)
        return env

    def script(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """ops/cluster.sh ARGS; its output is appended to cluster-sh.log. Raises when it fails."""
        done = subprocess.run([str(ROOT / "ops" / "cluster.sh"), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        with open(self.script_log, "a") as out:
            out.write(f"$ ops/cluster.sh {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise RuntimeError(f"ops/cluster.sh {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return done

    def pid(self, role: str) -> int | None:
        """The pid of ROLE's node when it runs (its command line names its data dir)."""
        try:
            pid = int((self.state_dir / "run" / f"{role}.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if f" --data-dir {self.state_dir / 'data' / role} " in cmdline else None

    def kill9(self, role: str) -> int:
        """SIGKILL to ROLE's node; waits (at most 10 s) until the process is gone."""
        pid = self.pid(role)
        if pid is None:
            raise RuntimeError(f"{role} is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid


class Rabbitmqctl:
    """RabbitMQ through rabbitmqctl, when it can be used by this user (`usable`, else `why_not`)."""

    def __init__(self):
        self.ctl = shutil.which("rabbitmqctl")
        self.usable = False
        self.why_not = "rabbitmqctl is not installed"
        if self.ctl:
            done = self.run("list_vhosts", check=False)
            self.usable = done.returncode == 0
            self.why_not = "" if self.usable else f"rabbitmqctl does not work as this user: {done.stderr.strip()[:200]}"

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([self.ctl, *args], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done


# ---------------------------------------------------------------------------------------------
# MariaDB


class MariaDb:
    """A MariaDB/MySQL command-line client against the server of `url`
    (mysql://user[:password]@host[:port]): `client` is the command and its first options, e.g.
    ("mysql",) or ("mariadb", "--protocol=tcp"). Queries go to `database`, else to
    `self.database` when set."""

    def __init__(self, url: str, client: tuple[str, ...] = ("mysql",)):
        match = re.fullmatch(r"mysql://([^:@/]+)(?::([^@/]*))?@([^:/]+)(?::(\d+))?/?", url)
        if not match:
            raise SystemExit(f"--mysql must look like mysql://user[:password]@host[:port], not {url}")
        self.user, self.password, self.host, port = match.groups()
        self.port = int(port or 3306)
        self.base_url = url.rstrip("/")
        self.client = tuple(client)
        self.database = None

    def query(self, sql: str, database: str | None = None, timeout: float = 60) -> list[list[str]]:
        """The rows of `sql`, each a list of column texts (batch mode, no column names)."""
        args = [*self.client, "-h", self.host, "-P", str(self.port), "-u", self.user, "-N", "-B", "-e", sql]
        if database or self.database:
            args.append(database or self.database)
        env = dict(os.environ)
        if self.password:
            env["MYSQL_PWD"] = self.password
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"{self.client[0]}: {done.stderr.strip()} ({sql[:100]})")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def variables(self, names: tuple[str, ...], database: str | None = None) -> dict:
        """The server's global variables `names` that exist, as text."""
        quoted = ",".join(f"'{name}'" for name in names)
        rows = self.query(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({quoted})", database)
        return {row[0]: row[1] for row in rows if len(row) == 2}

    def status(self, names: tuple[str, ...], database: str | None = None) -> dict[str, int]:
        """The server's global status counters `names` (server-wide: every database counts)."""
        quoted = ",".join(f"'{name}'" for name in names)
        rows = self.query(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({quoted})", database)
        return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


def mariadb_pid() -> int | None:
    """The pid of the local server process (mariadbd, else mysqld), None when not found."""
    for name in ("mariadbd", "mysqld"):
        done = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, timeout=10)
        if done.stdout.split():
            return int(done.stdout.split()[0])
    return None


# ---------------------------------------------------------------------------------------------
# The binary: a clean export of a commit (--rev), a frozen copy of the working tree
# (--snapshot), or whatever is built.


def export_commit(rev: str, parent: Path) -> tuple[Path, str]:
    """A clean export (`git archive`) of commit `rev` in parent/<short sha>, made once and
    reused, so that uncommitted work in the tree (other people's half-done edits) neither breaks
    the build nor ends up in the figures. Answers (the directory, the short sha)."""
    sha = git("rev-parse", "--short", rev)
    source = parent / sha
    if not (source / "Cargo.toml").exists():
        log(f"exporting commit {sha} to {source}")
        source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True,
                                 check=True, timeout=120).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True, timeout=120)
    return source, sha


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


def build_emporium(source: Path, target_dir: Path) -> subprocess.CompletedProcess:
    """BUILD_COMMAND in `source` with CARGO_TARGET_DIR=`target_dir` (at most an hour); the
    caller checks the return code."""
    log(f"building in {source}: CARGO_TARGET_DIR={target_dir} {' '.join(BUILD_COMMAND)}")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    return subprocess.run(BUILD_COMMAND, cwd=source, env=env, timeout=3600)


# ---------------------------------------------------------------------------------------------
# Nodes


class Node:
    """One `emporium` process with its log in the benchmark's temp dir: `--role`, `--listen`
    (127.0.0.1:0 by default: the address is read from the log), `--node-id`, `--data-dir`, and
    optionally `--registry`, `--config-dir`, `--http` and extra environment."""

    tail_lines = 15

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
        CHILDREN.append(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        """`path` on the node's cluster listener."""
        return f"http://{self.listen}{path}"

    def api(self, path: str) -> str:
        """`path` on the node's public HTTP listener (`--http`)."""
        return f"http://{self.http}{path}"

    def tail(self, lines: int | None = None) -> str:
        """The last lines of the node's log (`tail_lines` by default)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-(lines or self.tail_lines):])
        except OSError:
            return ""

    def log_field(self, message: str, field: str):
        """`field` of the first JSON log line whose message is `message`, or None."""
        with open(self.log_path, errors="replace") as lines:
            for line in lines:
                if message not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("message") == message:
                    return event.get(field)
        return None

    def wait_started(self, within: float = 30.0, every: float = 0.01) -> "Node":
        """Waits for the JSON log line "node started" and takes its `listen` field."""
        def started():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node_id} exited with {self.proc.returncode}:\n{self.tail()}")
            return self.log_field("node started", "listen")
        self.listen = wait_until(f"{self.node_id} to start", started, within, every=every)
        return self

    def wait_ready(self, within: float = 20.0) -> "Node":
        """Waits for a 200 from /health/ready."""
        wait_until(f"{self.node_id} ready", lambda: get(self.url("/health/ready"), 2)[0] == 200, within)
        return self

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def sigterm(self, within: float = 15.0) -> int | None:
        """SIGTERM and the exit code; SIGKILL (and None) when the node is not gone in `within` s."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
        finally:
            self._log.close()


class Bench:
    """A benchmark run: its temp dir (logs, data dirs, configs), the binary
    ($CARGO_TARGET_DIR/release/emporium, default ~/.cache/emporium/target) and its nodes.
    `args` carries build, rev, keep_logs and, for gateway.py and inventory.py, snapshot."""

    def __init__(self, args):
        args.build = getattr(args, "build", False)
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="emporium-bench-"))
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/emporium/target")
        self.target_dir = Path(target)
        self.binary = self.target_dir / "release" / "emporium"
        self.nodes: list[Node] = []
        self.source_label = None
        self.binary_label = "?"
        self.config_source = ROOT / "config"
        self.registry_counter = 0

    def cleanup(self) -> None:
        """Kills every node and child; removes the temp dir unless --keep-logs."""
        for node in self.nodes:
            if node.proc.poll() is None:
                node.kill9()
        kill_children()
        if self.args.keep_logs:
            log(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def ensure_binary(self) -> None:
        """Sets self.source_label, self.config_source and self.binary_label; builds the binary
        with --build, --rev (a clean export), --snapshot (a frozen copy of the working tree) or
        when it is missing, and refuses a binary without the test-services roles."""
        args = self.args
        snapshot = getattr(args, "snapshot", None)
        source = ROOT
        if args.rev and snapshot:
            raise SystemExit("--rev and --snapshot exclude each other")
        if args.rev:
            source, sha = export_commit(args.rev, self.target_dir / "bench-src")
            self.source_label = f"commit {sha} (clean export)"
        elif snapshot:
            source, self.source_label = snapshot_working_tree(self.target_dir, None if snapshot is True else snapshot)
        self.config_source = source / "config"
        if args.build or args.rev or snapshot or not self.binary.exists():
            done = build_emporium(source, self.target_dir)
            if done.returncode != 0:
                hint = (" A clean export builds only what is committed: when the commit lacks files the "
                        "workspace needs, measure a frozen copy of the working tree with --snapshot."
                        ) if args.rev and hasattr(args, "snapshot") else ""
                raise SystemExit(f"build failed in {source}.{hint}")
        # A binary built without `test-services` refuses the echo role: clap names the role
        # first when it is unknown, and the (deliberately bad) listen address otherwise.
        probe = subprocess.run([str(self.binary), "--role", "echo,probe", "--listen", "not-an-address"],
                               capture_output=True, text=True, timeout=30)
        if "role" in probe.stderr and "listen" not in probe.stderr:
            raise SystemExit(f"{self.binary} lacks the test-services roles ({probe.stderr.strip()}); run with --build")
        built = datetime.datetime.fromtimestamp(self.binary.stat().st_mtime, datetime.timezone.utc)
        self.binary_label = f"$CARGO_TARGET_DIR/release/emporium, built {built.strftime('%Y-%m-%d %H:%M UTC')}"

    def node(self, node_id: str, roles: str, registry: str | None = None, **kwargs) -> Node:
        """Starts a Node (not waited for) and records it."""
        node = Node(self, node_id, roles, registry, **kwargs)
        self.nodes.append(node)
        return node

    def own_config(self, name: str) -> Path:
        """A copy of config/ in the temp dir, as config-<name>."""
        config_dir = self.tmp / f"config-{name}"
        shutil.copytree(self.config_source, config_dir)
        return config_dir

    def registry(self, name: str) -> Node:
        """A registry node on a fixed free port with its own copy of config/, started and ready."""
        self.registry_counter += 1
        config_dir = self.own_config(name)
        port = free_port()
        node = self.node(name, "registry", listen=f"127.0.0.1:{port}", config_dir=config_dir)
        node.config_dir = config_dir
        node.wait_started().wait_ready()
        return node

    def stop_all(self) -> None:
        """Kills every node of the run so far."""
        for node in self.nodes:
            if node.proc.poll() is None:
                node.kill9()
        self.nodes = []


# ---------------------------------------------------------------------------------------------
# Report


def yes(met: bool) -> str:
    """The "Met?" cell of a goal."""
    return "yes" if met else "**no**"


def print_table(table: list[tuple[str, str, str, str]]) -> None:
    """Prints rows of (figure, goal, measured, met) as aligned columns under a header."""
    header = ("Figure", "Goal", "Measured", "Met?")
    widths = [max(len(row[i]) for row in table + [header]) for i in range(4)]
    print()
    for row in [header, tuple("-" * w for w in widths)] + table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    print()


INTRO = """# Benchmarks

Figures here are measured, not asserted: each section names the script and the command that
produced it, the machine, the commit and the load at the time. Run them yourself with the
release build, for example:

    python3 ops/bench/cluster.py

Re-running a script replaces only its own section.

"""


def section_text(lines: list[str], details: list[str], notes: str | None = None) -> str:
    """A docs section: `lines`, then "Details of this run:" and `details` when there are any,
    then `notes` (free text) when given."""
    if details:
        lines = lines + ["", "Details of this run:", ""] + details
    if notes:
        lines = lines + ["", notes.strip()]
    return "\n".join(lines) + "\n"


def write_docs(text: str, section: str, temp_suffix: str = ".md.tmp") -> Path:
    """Replaces the section headed `section` of docs/BENCHMARKS.md with `text` (up to the
    next "## " heading), or appends it; other sections are kept. The file starts as INTRO when
    missing, and is replaced at once (written to BENCHMARKS<temp_suffix>, then renamed)."""
    path = ROOT / "docs" / "BENCHMARKS.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else INTRO
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == section), None)
    if start is None:
        new_text = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new_text = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    temporary = path.with_suffix(temp_suffix)
    temporary.write_text(new_text)
    os.replace(temporary, path)
    return path


def write_section(text: str, section: str, temp_suffix: str = ".md.tmp", source: str | None = None) -> None:
    """write_docs, then logs which section of which file was written (and from which saved run)."""
    path = write_docs(text, section, temp_suffix)
    log(f"wrote {path.relative_to(ROOT)} section {section!r}" + (f" from {source}" if source else ""))


def add_binary_options(parser: argparse.ArgumentParser, snapshot_help: str) -> None:
    """--build, --rev and --snapshot: which binary Bench.ensure_binary builds and measures."""
    parser.add_argument("--build", action="store_true", help="rebuild the release binary from the working tree")
    parser.add_argument("--rev", help="build and measure this commit from a clean export (e.g. HEAD)")
    parser.add_argument("--snapshot", nargs="?", const=True, metavar="TAG", help=snapshot_help)


def command_line(script: str) -> str:
    """How this run was started, for the report: `python3 ops/bench/<script>` and the arguments."""
    return " ".join(["python3", f"ops/bench/{script}"] + [shlex.quote(arg) for arg in sys.argv[1:]])


def start_run() -> tuple[str, dict]:
    """(uptime line, machine_info()) before the measurements, both logged."""
    load_before = uptime_line()
    info = machine_info()
    log(f"machine: {info['nproc']} x {info['model']}, {info['kernel']}; commit {info['commit']}")
    log(f"before the run: {load_before}")
    return load_before, info


def save_results(path: str, command: str, info: dict, load_before: str, load_after: str, results: dict) -> None:
    """--json: the raw results of a run with how, where and under which load they were measured."""
    Path(path).write_text(json.dumps({"command": command, "machine": info, "loadBefore": load_before,
                                      "loadAfter": load_after, "results": results}, indent=2, default=str))


def publish(args, command: str, info: dict, load_before: str, load_after: str, results: dict, section: str,
            markdown) -> None:
    """The end of a run: --json (save_results) and, unless --no-docs, `section` of
    docs/BENCHMARKS.md from markdown(results, info, load_before, command)."""
    if args.json:
        save_results(args.json, command, info, load_before, load_after, results)
    if not args.no_docs:
        write_section(markdown(results, info, load_before, command), section)


def report_saved(args, section: str, table_rows, markdown) -> int:
    """--report-from: measures nothing; prints the table of the results `save_results` wrote and,
    unless --no-docs, writes `section` of docs/BENCHMARKS.md from them with
    markdown(results, machine, loadBefore, command)."""
    saved = json.loads(Path(args.report_from).read_text())
    print_table(table_rows(saved["results"]))
    if not args.no_docs:
        write_section(markdown(saved["results"], saved["machine"], saved["loadBefore"], saved["command"]), section,
                      source=args.report_from)
    return 0


# ---------------------------------------------------------------------------------------------
# Command line, for the shell scripts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("free-port", help="print a free TCP port of 127.0.0.1")
    docs = commands.add_parser("write-docs", help="replace (or append) a section of docs/BENCHMARKS.md")
    docs.add_argument("heading", help='the section\'s heading line, e.g. "## Product reads (issue 5)"')
    docs.add_argument("text", help="the section, heading included")
    args = parser.parse_args()
    if args.command == "free-port":
        print(free_port())
    else:
        write_docs(args.text.rstrip() + "\n", args.heading, temp_suffix=f".md.{os.getpid()}.tmp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
