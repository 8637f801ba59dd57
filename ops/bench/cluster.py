#!/usr/bin/env python3
"""Cluster foundation benchmark (issue 2): real `emporium` node processes on 127.0.0.1.

Measures, on a release build with the `test-services` feature:

  1. eviction after kill -9 of a single-role echo node (registry lists it no more; worst case);
     1b. the same node silent (SIGSTOP), evicted by its lease (worst case); 1c. kill -9 with three
     registry peers, gone from every peer (worst case)
  2. a config edit applied and acked on every instance (file poll, and explicit refresh)
  3. remote ask on loopback (probe node -> echo node): p50/p99 at concurrency 1,
     asks/s at concurrency 32 and 64
  4. local ask (one node with roles echo,probe) and its ratio to the remote figures
  5. node start to ready (spawn -> first 200 from /health/ready)
  6. idle RSS of a registry, an echo and a probe node

Prints a summary table and replaces the section "## Cluster foundation (issue 2)" of
docs/BENCHMARKS.md (other sections are kept). Python 3.11 standard library only.

    python3 ops/bench/cluster.py              # build the binary if missing, run, write docs
    python3 ops/bench/cluster.py --build      # rebuild from the working tree first
    python3 ops/bench/cluster.py --rev HEAD   # build and measure a clean export of a commit
    python3 ops/bench/cluster.py --only 3,4 --no-docs
    python3 ops/bench/cluster.py --json out.json; python3 ops/bench/cluster.py --report-from out.json

The binary is $CARGO_TARGET_DIR/release/emporium (default ~/.cache/emporium/target), built with
`cargo build --release -p emporium --features test-services`.

Every child process is killed at the end (try/finally and atexit); every wait is bounded.
"""

import argparse
import http.client
import json
import os
import random
import re
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import (  # noqa: E402  (helpers shared by ops/bench: nodes, HTTP, /proc, docs)
    SECRET, BUILD_COMMAND, CpuWindow, Bench, Node, command_line, free_port, get, kib, log, post,
    percentile_floor, print_table, proc_status, report_saved, save_results, section_text, start_run, uptime_line,
    wait_until, write_section, yes,
)

SECTION = "## Cluster foundation (issue 2)"


def metric_sums(text: str, name: str, label_filter: str = "") -> tuple[float, float]:
    """(sum, count) of a Prometheus histogram over every series whose labels contain
    `label_filter`."""
    total_sum = total_count = 0.0
    for line in text.splitlines():
        for suffix in ("_sum", "_count"):
            prefix = name + suffix
            if line.startswith(prefix + "{") or line.startswith(prefix + " "):
                if label_filter and label_filter not in line:
                    continue
                value = float(line.rsplit(" ", 1)[1])
                if suffix == "_sum":
                    total_sum += value
                else:
                    total_count += value
    return total_sum, total_count


def instance_ids(registry: Node, service: str) -> dict[str, str] | None:
    status, body = get(registry.url(f"/registry/v1/instances?service={service}"), 5)
    if status != 200 or not isinstance(body, list):
        return None
    return {instance["id"]: instance["status"] for instance in body}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


# ---------------------------------------------------------------------------------------------
# Figures


def figure_eviction(bench: Bench) -> dict:
    """1. kill -9 of a single-role echo node -> gone from the registry's instance list; 1b. the
    same node silent (SIGSTOP: it closes nothing and answers nothing, as a host cut off the
    network) -> gone by its lease."""
    registry = bench.registry("reg-evict")
    results = {}
    for kind, sig, limit in (("eviction", signal.SIGKILL, 0.5), ("silent", signal.SIGSTOP, 3.0)):
        times = []
        for run in range(bench.args.runs if kind == "eviction" else bench.args.silent_runs):
            times.append(evict_one(bench, [registry], f"echo-{kind}-{run}", sig))
            log(f"  {kind} run {run + 1}: {times[-1]:.3f} s")
        results[kind] = summary(times)
        results[kind]["met"] = results[kind]["max"] <= limit
    bench.stop_all()
    return results


def figure_peer_eviction(bench: Bench) -> dict:
    """1c. Three registry peers; kill -9 of an echo node that follows one of them -> gone from
    the instance list of every peer."""
    config_dir = bench.own_config("peers")
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    peers = [bench.node(f"reg-peer-{index}", "registry", ",".join(urls), listen=f"127.0.0.1:{port}",
                        config_dir=config_dir) for index, port in enumerate(ports)]
    for peer in peers:
        peer.wait_started().wait_ready()
    times = []
    for run in range(bench.args.silent_runs):
        first = run % 3
        order = ",".join(urls[(first + offset) % 3] for offset in range(3))
        times.append(evict_one(bench, peers, f"echo-peers-{run}", signal.SIGKILL, order))
        log(f"  peers run {run + 1}: {times[-1]:.3f} s (followed peer {first})")
    bench.stop_all()
    result = summary(times)
    result["met"] = result["max"] <= 0.5
    return result


def evict_one(bench: Bench, registries: list, node_id: str, sig: int, urls: str | None = None) -> float:
    """Seconds from `sig` to a fresh echo node `node_id` (following `urls`, else the first of
    `registries`) to its instance gone from every one of `registries`."""
    instance = f"echo@{node_id}"
    # Start at a random point of the registry's eviction sweep (lease/20): otherwise every node
    # registers right after the previous eviction, in step with the sweep.
    time.sleep(random.random() * 0.15)
    echo = bench.node(node_id, "echo", urls or registries[0].url("")).wait_started()
    wait_until(f"{instance} UP everywhere",
               lambda: all((instance_ids(registry, "echo") or {}).get(instance) == "UP" for registry in registries), 20)
    # Signal at a random point of the heartbeat period (1 s), not in step with registration.
    time.sleep(1.0 + random.random())
    os.kill(echo.pid, sig)
    signalled = time.monotonic()
    tick = signalled
    deadline = signalled + 20
    while True:
        listed = [instance_ids(registry, "echo") for registry in registries]
        if all(ids is not None and instance not in ids for ids in listed):
            took = time.monotonic() - signalled
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{instance} still listed 20 s after signal {sig}")
        tick += 0.005
        time.sleep(max(0.0, tick - time.monotonic()))
    if sig != signal.SIGKILL:
        os.kill(echo.pid, signal.SIGKILL)
    echo.proc.wait(timeout=10)
    return took


def set_timeout_millis(config_dir: Path, value: int) -> None:
    path = config_dir / "application.toml"
    text = path.read_text()
    # The first `timeout_millis` is the one of [resilience.default] (other call sites follow it).
    new_text, replaced = re.subn(r"(?m)^timeout_millis = \d+$", f"timeout_millis = {value}", text, count=1)
    if replaced != 1:
        raise RuntimeError(f"expected a timeout_millis line in {path}")
    temporary = config_dir / ".application.toml.tmp"
    temporary.write_text(new_text)
    os.replace(temporary, path)


def figure_config(bench: Bench) -> dict:
    """2. config edit -> every instance's appliedVersion equals the new configVersion."""
    registry = bench.registry("reg-config")
    for node_id, roles in (("echo-cfg-1", "echo"), ("echo-cfg-2", "echo"),
                           ("probe-cfg-1", "probe"), ("probe-cfg-2", "probe")):
        bench.node(node_id, roles, registry.url(""))
    for node in bench.nodes:
        node.wait_started()
    acks_url = registry.url("/registry/v1/config/acks")
    expected = 5  # the registry's own instance and four others

    def all_current():
        status, acks = get(acks_url, 5)
        if status != 200:
            return None
        rows = acks.get("instances") or []
        if len(rows) == expected and all(row.get("current") for row in rows):
            return acks["configVersion"]
        return None

    wait_until("5 instances acking the current config", all_current, 30)
    results = {}
    value = 2000
    for mode in ("poll", "refresh"):
        times, detected = [], []
        for run in range(bench.args.runs):
            # Edits fall at random points of the registry's 500 ms poll period.
            time.sleep(0.5 + random.random() * 0.5)
            version_before = wait_until("stable config", all_current, 10)
            value += 7
            set_timeout_millis(registry.config_dir, value)
            edited = time.monotonic()
            if mode == "refresh":
                status, answer = post(registry.url("/registry/v1/config/refresh"))
                if status != 200:
                    raise RuntimeError(f"refresh answered {status}: {answer}")
            seen_version = None
            tick = edited
            deadline = edited + 20
            while True:
                status, acks = get(acks_url, 5)
                now = time.monotonic()
                if status == 200:
                    version = acks["configVersion"]
                    rows = acks.get("instances") or []
                    if version != version_before and seen_version is None:
                        seen_version = now - edited
                    if (version != version_before and len(rows) == expected
                            and all(row.get("appliedVersion") == version and row.get("applied") for row in rows)):
                        took = now - edited
                        break
                if now > deadline:
                    raise RuntimeError(f"config edit not acked by all within 20 s: {acks}")
                tick += 0.010
                time.sleep(max(0.0, tick - time.monotonic()))
            times.append(took)
            detected.append(seen_version)
            log(f"  config ({mode}) run {run + 1}: new version seen at {seen_version:.3f} s, "
                f"acked by all 5 at {took:.3f} s")
        result = summary(times)
        result["detectedMedian"] = statistics.median(detected)
        result["met"] = result["median"] <= 1.0
        results[mode] = result
    bench.stop_all()
    return results


def mean_micros(before: str, after: str, name: str, label: str = "") -> float | None:
    s0, c0 = metric_sums(before, name, label)
    s1, c1 = metric_sums(after, name, label)
    return (s1 - s0) / (c1 - c0) * 1e6 if c1 > c0 else None


def measure(node: Node, count: int, concurrency: int, payload: int = 16, pids: dict | None = None,
            server: Node | None = None, path: str = "remote") -> dict:
    """One MeasureAsks run on the probe at `node`; with `pids`, the CPU and context switches of
    those processes; the mean ask time from the probe's /metrics and, with `server`, the mean
    time the echo node spent per request (HTTP middleware and the cluster ask handler)."""
    metrics_before = (get(node.url("/metrics"))[1], get(server.url("/metrics"))[1] if server else None)
    cpu = CpuWindow(pids) if pids else None
    started = time.monotonic()
    status, body = post(node.url("/cluster/v1/ask/probe/MeasureAsks"),
                        {"count": count, "concurrency": concurrency, "payloadBytes": payload},
                        timeout=max(60.0, count / 100.0))
    wall = time.monotonic() - started
    if status != 200 or not isinstance(body, dict):
        raise RuntimeError(f"MeasureAsks answered {status}: {body}")
    body["wallSeconds"] = wall
    if cpu:
        body["cpu"] = cpu.finish()
    metrics_after = (get(node.url("/metrics"))[1], get(server.url("/metrics"))[1] if server else None)
    body["means"] = {"ask": mean_micros(metrics_before[0], metrics_after[0], "emporium_ask_duration_seconds",
                                        f'path="{path}"')}
    if server:
        body["means"]["serverHttp"] = mean_micros(metrics_before[1], metrics_after[1],
                                                  "emporium_http_request_duration_seconds", "/cluster/v1/ask")
        body["means"]["serverHandler"] = mean_micros(metrics_before[1], metrics_after[1],
                                                     "emporium_cluster_request_duration_seconds", 'service="echo"')
    return body


def python_direct_latency(node: Node, count: int = 2000) -> dict:
    """Python http.client (keep-alive) straight to the echo node: what the server side costs
    without the probe's reqwest client."""
    host, port = node.listen.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Cluster {SECRET}", "Content-Type": "application/json"}
    body = json.dumps({"text": "x" * 16})
    latencies = []
    for _ in range(count):
        sent = time.perf_counter()
        connection.request("POST", "/cluster/v1/ask/echo/Echo", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - sent)
        if response.status != 200:
            raise RuntimeError(f"direct Echo answered {response.status}")
    connection.close()
    latencies.sort()
    return {"p50Micros": percentile_floor(latencies, 0.50) * 1e6,
            "p99Micros": percentile_floor(latencies, 0.99) * 1e6}


def ask_runs(bench: Bench, probe: Node, pids: dict, label: str, server: Node | None = None) -> dict:
    """Warm-up, then `reps` repetitions of: c=1 5,000 asks; c=32 and c=64 50,000 asks."""
    path = "remote" if server else "local"
    warm = measure(probe, 2000, 64)
    log(f"  {label} warm-up (2,000 asks at c=64, discarded): {warm['asksPerSecond']:.0f}/s "
        f"answeredBy={warm['answeredBy']} errors={warm['numErrors']}")
    runs = {"c1": [], "c32": [], "c64": []}
    for rep in range(bench.args.reps):
        for key, count, concurrency in (("c1", bench.args.latency_asks, 1),
                                        ("c32", bench.args.throughput_asks, 32),
                                        ("c64", bench.args.throughput_asks, 64)):
            result = measure(probe, count, concurrency, pids=pids, server=server, path=path)
            runs[key].append(result)
            cores = " ".join(f"{name}={value:.2f}" for name, value in result["cpu"]["cores"].items())
            means = " ".join(f"{name}={value:.0f}us" for name, value in result["means"].items() if value)
            log(f"  {label} {key} rep {rep + 1}: p50={result['p50Micros']} us p99={result['p99Micros']} us "
                f"{result['asksPerSecond']:.0f} asks/s errors={result['numErrors']} "
                f"answeredBy={result['answeredBy']} | cores: {cores} others={result['cpu']['otherCores']:.2f} "
                f"| means: {means}")
    out = {}
    for key, results in runs.items():
        names = list(results[0]["cpu"]["cores"])

        def med(values):
            values = [v for v in values if v is not None]
            return statistics.median(values) if values else None
        out[key] = {
            "p50Micros": med(r["p50Micros"] for r in results),
            "p99Micros": med(r["p99Micros"] for r in results),
            "asksPerSecond": med(r["asksPerSecond"] for r in results),
            "asksPerSecondAll": [round(r["asksPerSecond"]) for r in results],
            "p50All": [r["p50Micros"] for r in results],
            "p99All": [r["p99Micros"] for r in results],
            "errors": sum(r["numErrors"] for r in results),
            "answeredBy": sorted({n for r in results for n in r["answeredBy"]}),
            "cores": {name: med(r["cpu"]["cores"][name] for r in results) for name in names},
            "otherCores": med(r["cpu"]["otherCores"] for r in results),
            "cpuMicrosPerAsk": {name: med(r["cpu"]["cpuSeconds"][name] * 1e6 / max(1, r["numOk"]) for r in results)
                                for name in names},
            "switchesPerAsk": {name: med(r["cpu"]["contextSwitches"][name] / max(1, r["numOk"]) for r in results)
                               for name in names},
            "means": {name: med(r["means"].get(name) for r in results) for name in results[0]["means"]},
        }
    return out


def figure_remote_and_rss(bench: Bench) -> tuple[dict, dict]:
    """6. idle RSS of fresh single-role nodes, then 3. remote asks probe -> echo."""
    registry = bench.registry("reg-remote")
    echo = bench.node("echo-remote", "echo", registry.url("")).wait_started()
    probe = bench.node("probe-remote", "probe", registry.url("")).wait_started()
    for node in (registry, echo, probe):
        node.wait_ready()
    time.sleep(5.0)
    rss = {}
    for name, node in (("registry", registry), ("echo", echo), ("probe", probe)):
        if node.proc.poll() is not None:
            raise RuntimeError(f"{node.node_id} exited with {node.proc.returncode}:\n{node.tail()}")
        status = proc_status(node.pid)
        rss[name] = {"vmRssMiB": kib(status["VmRSS"]) / 1024, "vmHwmMiB": kib(status["VmHWM"]) / 1024,
                     "threads": int(status["Threads"])}
        log(f"  idle RSS {name}: {rss[name]['vmRssMiB']:.1f} MiB (peak {rss[name]['vmHwmMiB']:.1f}, "
            f"{rss[name]['threads']} threads)")
    rss["met"] = all(rss[name]["vmRssMiB"] <= 30 for name in ("registry", "echo", "probe"))

    def relayed():
        status, body = post(probe.url("/cluster/v1/ask/probe/RelayEcho"), {"text": "hi"}, timeout=5)
        return status == 200 and body.get("nodeId") == "echo-remote"
    wait_until("probe reaching echo-remote", relayed, 20, every=0.1)

    result = ask_runs(bench, probe, {"probe": probe.pid, "echo": echo.pid}, "remote", server=echo)
    # The same server, called by a plain keep-alive Python client at concurrency 1.
    result["pythonDirect"] = python_direct_latency(echo)
    log(f"  Python http.client straight to the echo node, c=1: p50 {result['pythonDirect']['p50Micros']:.0f} us, "
        f"p99 {result['pythonDirect']['p99Micros']:.0f} us")
    rss["afterLoadMiB"] = {name: kib(proc_status(node.pid)["VmRSS"]) / 1024
                           for name, node in (("echo", echo), ("probe", probe))}
    bench.stop_all()
    return result, rss


def figure_local(bench: Bench) -> dict:
    """4. one node with roles echo,probe: asks go straight to the local actor."""
    registry = bench.registry("reg-local")
    node = bench.node("local-echo-probe", "echo,probe", registry.url("")).wait_started().wait_ready()
    result = ask_runs(bench, node, {"node": node.pid}, "local")
    bench.stop_all()
    return result


def figure_start(bench: Bench) -> dict:
    """5. spawn of an echo node -> first 200 from its /health/ready (registry running)."""
    registry = bench.registry("reg-start")
    ready_times, first_answer_times = [], []
    for run in range(bench.args.runs):
        port = free_port()
        node = bench.node(f"echo-start-{run}", "echo", registry.url(""), listen=f"127.0.0.1:{port}")
        spawned = node.spawned_at
        first_answer = None
        tick = spawned
        deadline = spawned + 30
        while True:
            status, _ = get(node.url("/health/ready"), 2)
            now = time.monotonic()
            if status and first_answer is None:
                first_answer = now - spawned
            if status == 200:
                took = now - spawned
                break
            if node.proc.poll() is not None:
                raise RuntimeError(f"echo node exited: {node.tail()}")
            if now > deadline:
                raise RuntimeError("echo node not ready within 30 s")
            tick += 0.010
            time.sleep(max(0.0, tick - time.monotonic()))
        ready_times.append(took)
        first_answer_times.append(first_answer)
        log(f"  start run {run + 1}: first HTTP answer {first_answer:.3f} s, ready {took:.3f} s")
        node.sigterm()
        time.sleep(0.3)
    bench.stop_all()
    result = summary(ready_times)
    result["firstAnswerMedian"] = statistics.median(first_answer_times)
    result["met"] = result["median"] <= 1.0
    return result


# ---------------------------------------------------------------------------------------------
# Report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    out = []
    n = results.get("runs", 5)
    if "eviction" in results:
        r = results["eviction"]
        out.append((f"1. Eviction after kill -9 (worst of {n}; median, min)", "worst <= 0.5 s",
                    f"{ms(r['max'])} (median {ms(r['median'])}, min {ms(r['min'])})", yes(r["met"])))
    if "silent" in results:
        r = results["silent"]
        out.append((f"1b. Eviction of a silent node, SIGSTOP (worst of {len(r['runs'])}; median, min)",
                    "worst <= 3 s", f"{ms(r['max'])} (median {ms(r['median'])}, min {ms(r['min'])})", yes(r["met"])))
    if "peers" in results:
        r = results["peers"]
        out.append((f"1c. Eviction after kill -9, gone from all 3 registry peers (worst of {len(r['runs'])}; median, min)",
                    "worst <= 0.5 s", f"{ms(r['max'])} (median {ms(r['median'])}, min {ms(r['min'])})", yes(r["met"])))
    if "config" in results:
        for mode, label in (("poll", "file edit, registry's 500 ms poll"), ("refresh", "file edit + POST refresh")):
            r = results["config"][mode]
            out.append((f"2. Config applied and acked on all 5 instances ({label}; median of {n})", "<= 1 s",
                        f"{ms(r['median'])} ({ms(r['min'])}-{ms(r['max'])})", yes(r["met"])))
    if "remote" in results:
        r = results["remote"]
        out.append(("3a. Remote ask p50 / p99, concurrency 1, 16 B", "p50 <= 0.5 ms",
                    f"{r['c1']['p50Micros'] / 1000:.3f} / {r['c1']['p99Micros'] / 1000:.3f} ms",
                    yes(r["c1"]["p50Micros"] <= 500)))
        best = max(r["c32"]["asksPerSecond"], r["c64"]["asksPerSecond"])
        out.append(("3b. Remote asks/s, concurrency 32 / 64", ">= 10,000/s",
                    f"{r['c32']['asksPerSecond']:,.0f} / {r['c64']['asksPerSecond']:,.0f}", yes(best >= 10000)))
    if "local" in results:
        r = results["local"]
        out.append(("4a. Local ask p50 / p99, concurrency 1", "-",
                    f"{r['c1']['p50Micros'] / 1000:.3f} / {r['c1']['p99Micros'] / 1000:.3f} ms", "-"))
        out.append(("4b. Local asks/s, concurrency 32 / 64", "-",
                    f"{r['c32']['asksPerSecond']:,.0f} / {r['c64']['asksPerSecond']:,.0f}", "-"))
    if "ratio" in results:
        r = results["ratio"]
        remote, local = results["remote"], results["local"]
        out.append(("4c. Local vs remote: p50 latency ratio (c=1)", ">= 20x",
                    f"{r['latency']:.1f}x ({remote['c1']['p50Micros']:.0f} us / {local['c1']['p50Micros']:.0f} us)",
                    yes(r["latency"] >= 20)))
        out.append(("4d. Local vs remote: throughput ratio (c=64)", ">= 20x",
                    f"{r['throughput']:.1f}x ({local['c64']['asksPerSecond']:,.0f} / "
                    f"{remote['c64']['asksPerSecond']:,.0f} asks/s)", yes(r["throughput"] >= 20)))
    if "start" in results:
        r = results["start"]
        out.append((f"5. Node start to ready (median of {n}; min-max)", "<= 1 s",
                    f"{ms(r['median'])} ({ms(r['min'])}-{ms(r['max'])})", yes(r["met"])))
    if "rss" in results:
        r = results["rss"]
        out.append(("6. Idle RSS registry / echo / probe node", "<= 30 MiB each",
                    f"{r['registry']['vmRssMiB']:.1f} / {r['echo']['vmRssMiB']:.1f} / "
                    f"{r['probe']['vmRssMiB']:.1f} MiB", yes(r["met"])))
    return out


def markdown(results: dict, info: dict, load_before: str, command: str) -> str:
    table = rows(results)
    lines = [
        SECTION,
        "",
        f"Measured {info['date']} on `{info['commit']}` with `{command}` "
        f"(release build: `CARGO_TARGET_DIR=${{CARGO_TARGET_DIR:-~/.cache/emporium/target}} "
        f"{' '.join(BUILD_COMMAND)}`; binary `{info.get('binary', '?')}`).",
        "",
        f"Machine: {info['nproc']} cores, {info['model']}, {info['kernel']}. Everything runs on this one "
        f"{info['nproc']}-core machine: the benchmark script, the registry and every node share the cores "
        "(the probe node is the load generator), and other engineers were building on the same machine. "
        f"Load before the run: `{load_before}`.",
        "",
        "| Figure | Goal | Measured | Met? |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table]
    lines += ["", "How each figure is measured (all traffic on 127.0.0.1, nodes started by the script with "
              "`--listen 127.0.0.1:0` or a free port, `--node-id`, `EMPORIUM_CLUSTER_SECRET`; the registry "
              "gets its own copy of `config/`):", ""]
    lines += [
        "1. A single-role `echo` node starts at a random point of the registry's eviction sweep and registers; "
        "1-2 s later (a random point of its 1 s heartbeat) it gets SIGKILL; "
        "`GET /registry/v1/instances?service=echo` is polled every 5 ms until the instance is gone. "
        "The kernel closes the dead process's sockets: the registry sees the node's watch connection close, "
        "finds its listener refusing connections, and evicts it at once (the lease, 2.8 s, stays the fallback "
        "for a host that vanishes without closing anything).",
        "1b. The same with SIGSTOP instead of SIGKILL: the process keeps its sockets open and answers "
        "nothing, as a host cut off the network does, so only the lease can evict it. With lease 2.8 s, "
        "heartbeat 1 s and a sweep every lease/20 = 140 ms (`config/application.toml`), eviction comes "
        "2.8 s - (time since the last renewal, 0-1 s) + (wait for the next sweep, 0-0.14 s) after the stop: "
        "between 1.8 and 2.94 s (plus the heartbeat's own latency).",
        "1c. Three registries started as peers (`--registry` with the three URLs, one copy of `config/`); each "
        "run starts an `echo` node whose registry list begins with the next peer in turn (it registers with and "
        "watches that one), SIGKILLs it 1-2 s after it is UP on all three, and polls the three instance lists "
        "every 5 ms until none lists it: the followed peer evicts it (process gone) and replicates the removal.",
        "2. Registry + 2 `echo` + 2 `probe` nodes (5 instances). `timeout_millis` in the registry's copy "
        "of `application.toml` is changed (temp file + rename) at a random point of the registry's 500 ms "
        "file poll; `GET /registry/v1/config/acks` is polled every 10 ms until every instance's "
        "`appliedVersion` equals the new `configVersion`. Second row: the same, with "
        "`POST /registry/v1/config/refresh` right after the write.",
        "3. A `probe` node and an `echo` node (separate processes) and the registry. The script sends "
        "`MeasureAsks {count, concurrency, payloadBytes: 16}` to the probe, which asks `echo` through "
        "`ServiceRef` (reqwest -> actix-web, JSON) and reports p50/p99 and asks/s. Warm-up: one 2,000-ask "
        f"run at concurrency 64, discarded. Then {results.get('reps', 3)} repetitions of 5,000 asks at "
        "concurrency 1 and 50,000 at 32 and at 64; the table shows the median of the repetitions.",
        "4. One node with roles `echo,probe` (asks go to the local actor's `Addr`, no serialization), same "
        "runs. Ratios: remote p50 / local p50 at concurrency 1; local asks/s / remote asks/s at concurrency 64. "
        "The probe reports whole microseconds, so a local p50 of 3 us means 2.5-3.5 us and the latency ratio "
        "carries about 15% of rounding.",
        "5. Registry running; an `echo` node is spawned on a free port and `GET /health/ready` is polled "
        "every 10 ms from spawn until the first 200 (ready means registered with the registry). Median of 5.",
        "6. Fresh registry, `echo` and `probe` nodes (the cluster of figure 3, before any ask), ready, "
        "then 5 s idle: `VmRSS` from `/proc/<pid>/status`.",
    ]
    details = []
    if "eviction" in results:
        r = results["eviction"]
        details.append(f"- Eviction runs (s): {', '.join(f'{v:.3f}' for v in r['runs'])}.")
    if "peers" in results:
        r = results["peers"]
        details.append(f"- Eviction across peers runs (s): {', '.join(f'{v:.3f}' for v in r['runs'])}.")
    if "silent" in results:
        r = results["silent"]
        details.append(f"- Silent-node eviction runs (s): {', '.join(f'{v:.3f}' for v in r['runs'])}.")
    if "config" in results:
        for mode in ("poll", "refresh"):
            r = results["config"][mode]
            details.append(f"- Config ({mode}) runs (ms): {', '.join(f'{v * 1000:.0f}' for v in r['runs'])}; "
                           f"median time until the registry showed the new version: "
                           f"{r['detectedMedian'] * 1000:.0f} ms.")
    for key in ("remote", "local"):
        if key not in results:
            continue
        r = results[key]
        details.append(
            f"- {key.capitalize()} repetitions: c=1 p50 {r['c1']['p50All']} us, p99 {r['c1']['p99All']} us, "
            f"{r['c1']['asksPerSecondAll']} asks/s; c=32 {r['c32']['asksPerSecondAll']} asks/s; "
            f"c=64 {r['c64']['asksPerSecondAll']} asks/s; errors {r['c1']['errors'] + r['c32']['errors'] + r['c64']['errors']}; "
            f"answered by {r['c1']['answeredBy']}.")
        cpu = "; ".join(
            f"c={c[1:]}: " + ", ".join(
                f"{n} {v:.2f} cores, {r[c]['cpuMicrosPerAsk'][n]:.1f} us CPU and "
                f"{r[c]['switchesPerAsk'][n]:.2f} context switches per ask"
                for n, v in r[c]["cores"].items())
            + f"; other processes {r[c]['otherCores']:.2f} cores"
            for c in ("c1", "c32", "c64"))
        details.append(f"- {key.capitalize()} CPU during the runs (from /proc, medians): {cpu}.")

        def fmt(v):
            return "n/a" if v is None else f"{v:.0f} us"

        def server_means(means: dict) -> str:
            # Over frame links (the default) the echo node sees no HTTP request per ask.
            handler = f"the cluster ask handler {fmt(means.get('serverHandler'))}"
            if means.get("serverHttp") is None:
                return f", on the echo node {handler}"
            return f", echo node's HTTP request {fmt(means['serverHttp'])} of which {handler}"
        means = "; ".join(
            f"c={c[1:]}: ask {fmt(r[c]['means'].get('ask'))}"
            + (server_means(r[c]["means"]) if key == "remote" else "")
            for c in ("c1", "c32", "c64"))
        details.append(f"- {key.capitalize()} mean times per ask (from the nodes' `/metrics`): {means}.")
    if "remote" in results:
        d = results["remote"]["pythonDirect"]
        details.append(f"- A Python `http.client` keep-alive client straight to the echo node "
                       f"(`POST /cluster/v1/ask/echo/Echo`, c=1, 2,000 requests): p50 {d['p50Micros']:.0f} us, "
                       f"p99 {d['p99Micros']:.0f} us.")
    if "rss" in results:
        r = results["rss"]
        details.append(
            f"- Threads at idle: registry {r['registry']['threads']}, echo {r['echo']['threads']}, probe "
            f"{r['probe']['threads']}. RSS after the remote runs: echo {r['afterLoadMiB']['echo']:.1f} MiB, "
            f"probe {r['afterLoadMiB']['probe']:.1f} MiB.")
    if "start" in results:
        details.append(f"- Start runs (ms): {', '.join(f'{v * 1000:.0f}' for v in results['start']['runs'])}; "
                       f"median first HTTP answer (any status) "
                       f"{results['start']['firstAnswerMedian'] * 1000:.0f} ms.")
    return section_text(lines, details, results.get("notes"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="rebuild the release binary first")
    parser.add_argument("--rev", help="build and measure this commit from a clean export (e.g. HEAD), "
                                      "not the working tree")
    parser.add_argument("--runs", type=int, default=5, help="runs of figures 1, 2 and 5 (default 5)")
    parser.add_argument("--silent-runs", type=int, default=20, help="runs of figures 1b and 1c (default 20)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each ask run (default 3)")
    parser.add_argument("--latency-asks", type=int, default=5000)
    parser.add_argument("--throughput-asks", type=int, default=50000)
    parser.add_argument("--only", default="1,2,3,4,5,6", help="figures to run, e.g. 3,4 (docs need all)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/BENCHMARKS.md")
    parser.add_argument("--keep-logs", action="store_true", help="keep the nodes' logs in the temp dir")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--report-from", metavar="JSON",
                        help="measure nothing: print the table and write the docs section from the raw results "
                             "a previous run saved with --json")
    args = parser.parse_args()
    command = command_line("cluster.py")

    if args.report_from:
        return report_saved(args, SECTION, rows, markdown)
    only = {int(f) for f in args.only.split(",") if f.strip()}

    bench = Bench(args)
    load_before, info = start_run()
    results: dict = {"reps": args.reps, "runs": args.runs}
    try:
        bench.ensure_binary()
        if bench.source_label:
            info["commit"] = bench.source_label
        info["binary"] = bench.binary_label
        log(f"binary: {info['binary']}")
        if 5 in only:
            log("figure 5: node start to ready")
            results["start"] = figure_start(bench)
        if 3 in only or 6 in only:
            log("figures 6 and 3: idle RSS, then remote asks")
            results["remote"], results["rss"] = figure_remote_and_rss(bench)
        if 4 in only:
            log("figure 4: local asks")
            results["local"] = figure_local(bench)
        if "remote" in results and "local" in results:
            remote, local = results["remote"], results["local"]
            results["ratio"] = {
                "latency": remote["c1"]["p50Micros"] / max(1, local["c1"]["p50Micros"]),
                "throughput": local["c64"]["asksPerSecond"] / max(1e-9, remote["c64"]["asksPerSecond"]),
            }
        if 1 in only:
            log("figure 1: eviction after kill -9")
            results.update(figure_eviction(bench))
            log("figure 1c: eviction across three registry peers")
            results["peers"] = figure_peer_eviction(bench)
        if 2 in only:
            log("figure 2: config change applied and acked")
            results["config"] = figure_config(bench)
    finally:
        bench.cleanup()
    load_after = uptime_line()
    log(f"after the run: {load_after}")

    table = rows(results)
    print_table(table)
    if args.json:
        save_results(args.json, command, info, load_before, load_after, results)
    if not args.no_docs:
        if only >= {1, 2, 3, 4, 5, 6}:
            write_section(markdown(results, info, load_before, command), SECTION)
        else:
            log("not writing docs: only some figures ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
