#!/usr/bin/env python3
"""Inventory reservation benchmark (issue 5, the reservation figures): real `emporium` nodes
on 127.0.0.1 and the machine's MariaDB.

  - A fresh database `bench_inventory_<random>` (dropped at the end), a registry, an inventory
    node with `EMPORIUM_MYSQL_URL` pointing at it, and a probe node.
  - One SKU gets 10,000,000 units (`SetStock` on the inventory node's cluster transport).
  - Through ServiceRef from another node: `MeasureReservations {count, concurrency, sku}` to the
    probe, which asks `ReserveStock` (one unit, a new order id each) of the inventory node and
    reports reservations/s and p50/p99, at concurrency 1, 16 and 64.
  - The raw limit, in the same run, against the same database: ops/bench/inventory_raw (a bare
    sqlx loop, its own cargo project) runs the same statements per reservation as inventory's
    `ReserveStock` at the same concurrencies, on a pool of the service's size (16).
  - Ratio service / raw (goal >= 0.7). Also, as a suggestion backed by a measurement, the raw
    loop with the stock row locked last (`--variant lock-last`).

Prints the table and replaces the section "## Inventory reservations on MariaDB (issue 5)" of
docs/BENCHMARKS.md. Python 3.11 standard library, the `mysql` client and cargo.

    python3 ops/bench/inventory.py --rev HEAD      # build and measure a clean export of a commit
    python3 ops/bench/inventory.py --snapshot      # a frozen copy of the working tree
    python3 ops/bench/inventory.py --json out.json; python3 ops/bench/inventory.py --report-from out.json

Nothing on the server is changed but the benchmark's own database (innodb_flush_log_at_trx_commit
and the rest are read and reported). Every child process is ended at exit; every wait is bounded.
"""

import argparse
import atexit
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402  (helpers shared by ops/bench: binary build, nodes, MariaDB, docs)

ROOT = bk.ROOT
SECTION = "## Inventory reservations on MariaDB (issue 5)"
RAW_DIR = ROOT / "ops" / "bench" / "inventory_raw"
log = bk.log
SKU = "BENCH-HOT-SKU"
SERVER_VARIABLES = ("version", "innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "innodb_buffer_pool_size",
                    "innodb_log_file_size", "innodb_flush_method", "innodb_doublewrite", "transaction_isolation",
                    "tx_isolation")


STATUS_COUNTERS = ("Innodb_data_fsyncs", "Innodb_log_writes", "Handler_commit", "Questions", "Com_select",
                   "Com_update", "Com_insert", "Innodb_row_lock_waits", "Innodb_row_lock_time")


def histogram_summary(before: dict, after: dict) -> dict:
    """Mean and bucket-interpolated p50/p99 (ms) of what was recorded between two scrapes, with
    the bucket bounds each percentile lies in."""
    count = after["count"] - before["count"]
    if count <= 0:
        return {"count": 0}
    bounds = sorted(after["buckets"])
    cumulative = [after["buckets"][b] - before["buckets"].get(b, 0.0) for b in bounds]
    out = {"count": count, "meanMs": (after["sum"] - before["sum"]) / count * 1000}
    for name, q in (("p50", 0.50), ("p99", 0.99)):
        rank = q * count
        lower, below = 0.0, 0.0
        for bound, cum in zip(bounds, cumulative):
            if cum >= rank:
                if bound == float("inf"):
                    out[name + "Ms"], out[name + "BucketMs"] = None, (lower * 1000, None)
                else:
                    inside = cum - below
                    fraction = (rank - below) / inside if inside else 1.0
                    out[name + "Ms"] = (lower + (bound - lower) * fraction) * 1000
                    out[name + "BucketMs"] = (lower * 1000, bound * 1000)
                break
            lower, below = bound, cum
    return out


ASK_HISTOGRAM = ("emporium_ask_duration_seconds", {"message": "ReserveStock", "path": "remote"})


def build_raw(target_dir: Path) -> Path:
    raw_target = target_dir / "inventory-raw"
    log(f"building {RAW_DIR.relative_to(ROOT)}: CARGO_TARGET_DIR={raw_target} cargo build --release")
    env = dict(os.environ, CARGO_TARGET_DIR=str(raw_target))
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=RAW_DIR, env=env, check=True, timeout=3600)
    return raw_target / "release" / "inventory-raw"


class Runner:
    def __init__(self, bench, db: bk.MariaDb, database: str, probe, inventory, raw: Path, args):
        self.bench, self.db, self.database, self.probe, self.inventory, self.raw = bench, db, database, probe, inventory, raw
        self.args = args
        self.url = f"{db.base_url}/{database}"
        self.mariadb = bk.mariadb_pid()
        self.traceparent = None
        self.raw_runs = 0

    def _window(self, pids: dict):
        pids = dict(pids)
        if self.mariadb:
            pids["mariadb"] = self.mariadb
        return bk.CpuWindow(pids), self.db.status(STATUS_COUNTERS)

    def _close(self, window, counters, result: dict, ok: int) -> None:
        cpu = window.finish()
        after = self.db.status(STATUS_COUNTERS)
        result["cpu"] = cpu
        result["perReservation"] = {
            "cpuMicros": {name: seconds * 1e6 / max(1, ok) for name, seconds in cpu["cpuSeconds"].items()},
            "server": {name: (after[name] - counters[name]) / max(1, ok) for name in STATUS_COUNTERS},
        }

    def service(self, count: int, concurrency: int) -> dict:
        metrics_before = bk.histogram(bk.get(self.probe.url("/metrics"))[1], *ASK_HISTOGRAM)
        window, counters = self._window({"inventory": self.inventory.pid, "probe": self.probe.pid})
        status, body = bk.post(self.probe.url("/cluster/v1/ask/probe/MeasureReservations"),
                               {"count": count, "concurrency": concurrency, "sku": SKU},
                               timeout=max(120.0, count / 20.0))
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"MeasureReservations answered {status}: {body}")
        # The probe's own p50/p99 are exact, except in builds from 785b219 to before 6ed2bbc, whose
        # `measure` (actors/echo/src/probe.rs) took the elapsed time before awaiting the reply.
        # The probe's ask histogram gives an exact mean and bucket-interpolated percentiles in
        # every build: `latency_source` picks which percentiles the report shows.
        result = {"numOk": body["numOk"], "numErrors": body["numErrors"], "errors": body.get("errors", {}),
                  "probeP50Micros": body["p50Micros"], "probeP99Micros": body["p99Micros"],
                  "perSecond": body["asksPerSecond"], "answeredBy": body.get("answeredBy", {})}
        self._close(window, counters, result, body["numOk"])
        metrics_after = bk.histogram(bk.get(self.probe.url("/metrics"))[1], *ASK_HISTOGRAM)
        latency = histogram_summary(metrics_before, metrics_after)
        result["latency"] = latency
        result["histP50Micros"] = latency.get("p50Ms", 0) * 1000
        result["histP99Micros"] = latency.get("p99Ms", 0) * 1000
        result["meanMicros"] = latency.get("meanMs", 0) * 1000
        # The probe's percentiles are believable when they lie no lower than the buckets the
        # histogram puts them in (a probe that measures before the reply reports microseconds).
        lower50 = (latency.get("p50BucketMs") or (0, 0))[0] * 1000
        lower99 = (latency.get("p99BucketMs") or (0, 0))[0] * 1000
        result["probeTrusted"] = body["p50Micros"] >= 0.8 * lower50 and body["p99Micros"] >= 0.8 * lower99
        return result

    def raw_loop(self, count: int, concurrency: int, variant: str = "same", warmup: int = 0) -> dict:
        self.raw_runs += 1
        args = [str(self.raw), "--url", self.url, "--sku", SKU, "--count", str(count), "--concurrency",
                str(concurrency), "--pool", str(self.args.raw_pool), "--variant", variant, "--warmup", str(warmup),
                "--prefix", f"raw-{secrets.token_hex(4)}-{self.raw_runs}"]
        if self.traceparent:
            args += ["--traceparent", self.traceparent]
        window, counters = self._window({})
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = bk.spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=max(120.0, count / 20.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError("inventory-raw did not finish")
        # The process has exited and was reaped: its CPU is the growth of RUSAGE_CHILDREN (pool
        # opening and its warm-up included).
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw_cpu = (children_after.ru_utime + children_after.ru_stime
                   - children_before.ru_utime - children_before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"inventory-raw failed: {err.strip()[-2000:]}")
        body = json.loads(out)
        # Percentiles interpolated in the node's histogram buckets like the service's; the exact
        # ones are kept too.
        buckets = {bound: count for bound, count in body["buckets"]}
        buckets[float("inf")] = body["numOk"]
        latency = histogram_summary({"sum": 0.0, "count": 0.0, "buckets": {}},
                                    {"sum": body["meanMicros"] * body["numOk"] / 1e6, "count": body["numOk"],
                                     "buckets": buckets})
        result = {"numOk": body["numOk"], "numErrors": body["numErrors"], "errors": body.get("errors", {}),
                  "exactP50Micros": body["p50Micros"], "exactP99Micros": body["p99Micros"],
                  "histP50Micros": latency.get("p50Ms", 0) * 1000, "histP99Micros": latency.get("p99Ms", 0) * 1000,
                  "meanMicros": body["meanMicros"], "latency": latency,
                  "perSecond": body["reservationsPerSecond"]}
        self._close(window, counters, result, body["numOk"])
        result["cpu"]["cpuSeconds"] = {"raw": raw_cpu, **result["cpu"]["cpuSeconds"]}
        result["cpu"]["otherCores"] = max(0.0, result["cpu"]["otherCores"] - raw_cpu / result["cpu"]["wallSeconds"])
        result["perReservation"]["cpuMicros"] = {"raw": raw_cpu * 1e6 / max(1, body["numOk"]),
                                                 **result["perReservation"]["cpuMicros"]}
        return result


def fmt_counts(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def figure_reservations(bench, db: bk.MariaDb, raw: Path, args) -> dict:
    database = f"bench_inventory_{secrets.token_hex(6)}"
    out: dict = {"database": database}
    db.query(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    dropped = {"done": False}

    def drop():
        if not dropped["done"]:
            dropped["done"] = True
            try:
                db.query(f"DROP DATABASE IF EXISTS {database}", timeout=120)
                log(f"dropped database {database}")
            except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                log(f"could not drop {database}: {error}")
    atexit.register(drop)
    try:
        registry = bench.registry("reg-inv")
        inventory = bench.node("inventory-mariadb", "inventory", registry.url(""),
                               env={"EMPORIUM_MYSQL_URL": f"{db.base_url}/{database}"}).wait_started()
        probe = bench.node("probe-inv", "probe", registry.url("")).wait_started()
        for node in (inventory, probe):
            node.wait_ready(within=60)
        admin = {"userId": "bench-admin", "roles": ["admin"], "tokenId": "bench"}
        status, stock = bk.post(inventory.url("/cluster/v1/ask/inventory/SetStock"),
                                {"caller": admin, "sku": SKU,
                                 "request": {"available": args.stock, "reorderLevel": 0, "reorderQuantity": 0}})
        if status != 200:
            raise RuntimeError(f"SetStock answered {status}: {stock}")
        log(f"  stock of {SKU}: {stock}")

        def reserved_through_probe():
            status, body = bk.post(probe.url("/cluster/v1/ask/probe/RelayReserveStock"),
                                   {"request": {"orderId": "bench-first", "lines": [{"sku": SKU, "quantity": 1}]}},
                                   timeout=10)
            return status == 200 and body.get("status") == "RESERVED"
        bk.wait_until("a reservation through the probe", reserved_through_probe, 20, every=0.1)
        runner = Runner(bench, db, database, probe, inventory, raw, args)
        rows = db.query("SELECT traceparent FROM bus_outbox WHERE traceparent IS NOT NULL LIMIT 1", database)
        if rows and rows[0] and rows[0][0] != "NULL":
            runner.traceparent = "00-" + "0" * 32 + "-" + "0" * 16 + "-01"  # same length as the service's
        out["outboxTraceparent"] = bool(runner.traceparent)
        warm = runner.service(args.warmup, 16)
        log(f"  warm-up through the probe ({args.warmup} at c=16, discarded): {warm['perSecond']:.0f}/s")
        raw_warm = runner.raw_loop(args.warmup, 16)
        log(f"  warm-up of the raw loop ({args.warmup} at c=16, discarded): {raw_warm['perSecond']:.0f}/s")

        runs: dict = {}
        for concurrency, count in zip(args.concurrency, args.counts):
            key = str(concurrency)
            runs[key] = {"service": [], "raw": [], "lockLast": []}
            for rep in range(args.reps):
                order = ["service", "raw"] if rep % 2 == 0 else ["raw", "service"]
                for kind in order:
                    if kind == "service":
                        result = runner.service(count, concurrency)
                    else:
                        result = runner.raw_loop(count, concurrency, warmup=2 * args.raw_pool)
                    runs[key][kind].append(result)
                    cpu = " ".join(f"{n}={v:.0f}us" for n, v in result["perReservation"]["cpuMicros"].items())
                    server = result["perReservation"]["server"]
                    log(f"  {kind:7} c={concurrency} rep {rep + 1}: {result['perSecond']:.0f}/s mean={result['meanMicros'] / 1000:.2f} ms "
                        f"p50~{result['histP50Micros'] / 1000:.2f} ms p99~{result['histP99Micros'] / 1000:.2f} ms "
                        f"(exact: {result.get('probeP50Micros', result.get('exactP50Micros'))} / "
                        f"{result.get('probeP99Micros', result.get('exactP99Micros'))} us) "
                        f"(buckets {result['latency'].get('p99BucketMs')}) errors={result['numErrors']} | CPU per reservation: {cpu} | "
                        f"fsyncs {server['Innodb_data_fsyncs']:.2f}, row lock waits "
                        f"{server['Innodb_row_lock_waits']:.2f} per reservation | others "
                        f"{result['cpu']['otherCores']:.2f} cores")
                    if result["numErrors"]:
                        log(f"  WARNING errors: {result['errors']}")
                if args.lock_last:
                    result = runner.raw_loop(count, concurrency, variant="lock-last", warmup=2 * args.raw_pool)
                    runs[key]["lockLast"].append(result)
                    log(f"  lock-last c={concurrency} rep {rep + 1}: {result['perSecond']:.0f}/s "
                        f"mean={result['meanMicros'] / 1000:.2f} ms p99={result['exactP99Micros'] / 1000:.2f} ms "
                        f"errors={result['numErrors']}")
        # No oversell, nothing lost: every successful reservation holds exactly one unit.
        available, reserved = (int(v) for v in db.query(
            f"SELECT available, reserved FROM inventory_stock WHERE sku = '{SKU}'", database)[0])
        (reservations,), = db.query("SELECT COUNT(*) FROM inventory_reservations", database)
        (lines,), = db.query(f"SELECT COALESCE(SUM(quantity), 0) FROM inventory_reservation_lines WHERE sku = '{SKU}'",
                             database)
        (outbox_rows, outbox_sent), = db.query("SELECT COUNT(*), COUNT(sent_at) FROM bus_outbox", database)
        out["integrity"] = {"available": available, "reserved": reserved, "stock": args.stock,
                            "reservations": int(reservations), "reservedUnits": int(lines),
                            "consistent": available + reserved == args.stock and reserved == int(lines) == int(reservations),
                            "outboxRows": int(outbox_rows), "outboxSent": int(outbox_sent)}
        log(f"  integrity: {out['integrity']}")
        service_runs = [r for kinds in runs.values() for r in kinds["service"]]
        exact = all(r["probeTrusted"] for r in service_runs)
        out["latencySource"] = "exact" if exact else "histogram"
        log(f"  latency percentiles: {'exact (the probe measures after the reply)' if exact else 'from the histogram (this probe measures before the reply)'}")
        for kinds in runs.values():
            for kind, results in kinds.items():
                for r in results:
                    if exact:
                        r["p50Micros"] = r.get("probeP50Micros", r.get("exactP50Micros"))
                        r["p99Micros"] = r.get("probeP99Micros", r.get("exactP99Micros"))
                    else:
                        r["p50Micros"], r["p99Micros"] = r["histP50Micros"], r["histP99Micros"]
        out["runs"] = {}
        for key, kinds in runs.items():
            out["runs"][key] = {}
            for kind, results in kinds.items():
                if not results:
                    continue
                names = list(results[0]["perReservation"]["cpuMicros"])
                out["runs"][key][kind] = {
                    "perSecond": statistics.median(r["perSecond"] for r in results),
                    "p50Micros": statistics.median(r["p50Micros"] for r in results),
                    "p99Micros": statistics.median(r["p99Micros"] for r in results),
                    "meanMicros": statistics.median(r["meanMicros"] for r in results),
                    "exactP99Micros": (statistics.median(r["exactP99Micros"] for r in results)
                                       if "exactP99Micros" in results[0] and not exact else None),
                    "p99Buckets": [r["latency"].get("p99BucketMs") for r in results],
                    "perSecondAll": [round(r["perSecond"]) for r in results],
                    "meanAll": [round(r["meanMicros"] / 1000, 2) for r in results],
                    "p99All": [round(r["p99Micros"] / 1000, 1) for r in results],
                    "errors": sum(r["numErrors"] for r in results),
                    "cpuMicros": {n: statistics.median(r["perReservation"]["cpuMicros"][n] for r in results)
                                  for n in names},
                    "server": {n: statistics.median(r["perReservation"]["server"][n] for r in results)
                               for n in STATUS_COUNTERS},
                    "otherCores": statistics.median(r["cpu"]["otherCores"] for r in results),
                }
        out["counts"] = dict(zip((str(c) for c in args.concurrency), args.counts))
        bench.stop_all()
    finally:
        bench.stop_all()
        drop()
    return out


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    out = []
    runs = results["reservations"]["runs"]

    approx = "" if results["reservations"].get("latencySource") == "exact" else "~"

    def latency(k: dict) -> str:
        text = f"mean {k['meanMicros'] / 1000:.2f} ms, p99 {approx}{k['p99Micros'] / 1000:.1f} ms"
        if k.get("exactP99Micros") is not None:
            text += f" (exact {k['exactP99Micros'] / 1000:.1f} ms)"
        return text
    for key, kinds in runs.items():
        service, raw = kinds["service"], kinds["raw"]
        ratio = service["perSecond"] / max(1e-9, raw["perSecond"])
        out.append((f"Reservations/s through ServiceRef from another node, concurrency {key}", "-",
                    f"{service['perSecond']:,.0f}/s; {latency(service)}", "-"))
        out.append((f"Raw sqlx loop, same transactions, concurrency {key}", "-",
                    f"{raw['perSecond']:,.0f}/s; {latency(raw)}", "-"))
        out.append((f"Ratio service / raw, concurrency {key}", ">= 0.7",
                    f"{ratio:.2f} ({service['perSecond']:,.0f} / {raw['perSecond']:,.0f})", bk.yes(ratio >= 0.7)))
    return out


def markdown(results: dict, info: dict, load_before: str, command: str) -> str:
    r = results["reservations"]
    server = results["server"]
    integrity = r["integrity"]
    lines = [
        SECTION,
        "",
        f"Measured {info['date']} on `{info['commit']}` with `{command}` "
        f"(release build: `CARGO_TARGET_DIR=${{CARGO_TARGET_DIR:-~/.cache/emporium/target}} "
        f"{' '.join(bk.BUILD_COMMAND)}`; binary `{info.get('binary', '?')}`; the raw loop "
        f"`ops/bench/inventory_raw`, `cargo build --release`).",
        "",
        f"Machine: {info['nproc']} cores, {info['model']}, {info['kernel']}. Everything runs on this one "
        f"{info['nproc']}-core machine: MariaDB, the nodes (the probe node is the load generator), the raw loop and "
        f"the script share the cores, and other engineers were building on the same machine. Load before the run: "
        f"`{load_before}`.",
        "",
        f"Database server: MariaDB {server.get('version', '?')} on 127.0.0.1, "
        f"`innodb_flush_log_at_trx_commit = {server.get('innodb_flush_log_at_trx_commit', '?')}` (every commit "
        f"waits for its redo log fsync; left as it was), `sync_binlog = {server.get('sync_binlog', '?')}`, "
        f"`log_bin = {server.get('log_bin', '?')}`, `innodb_buffer_pool_size = {server.get('innodb_buffer_pool_size', '?')}`, "
        f"isolation `{server.get('transaction_isolation') or server.get('tx_isolation', '?')}`. A fresh database "
        f"`bench_inventory_<random>` per run, dropped at the end.",
        "",
        "| Figure | Goal | Measured | Met? |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    counts = r["counts"]
    lines += [
        "",
        "How it is measured:",
        "",
        f"- A registry, an inventory node (`--role inventory`, `EMPORIUM_MYSQL_URL=mysql://root@127.0.0.1:3306/"
        f"bench_inventory_<random>`, which runs its migrations) and a probe node (`--role probe`). `SetStock` gives "
        f"one SKU {results['stock']:,} units (reorder level 0, so no `inventory.reorder_needed` event).",
        "- Service: the script sends `MeasureReservations {count, concurrency, sku}` to the probe, which asks "
        "`ReserveStock` of the inventory service through `ServiceRef` (cluster transport, HTTP/JSON on loopback), "
        "one unit and a new order id per reservation, `concurrency` in flight; it reports reservations/s and p50/p99. "
        "The inventory node's outbox relay runs as usual (in-process bus) and marks the events sent. "
        "Reservations/s is the probe's count / elapsed. " + (
            "p50/p99 are the probe's (exact, from send to reply); the mean comes from the probe node's "
            "`emporium_ask_duration_seconds{message=\"ReserveStock\",path=\"remote\"}` histogram (sum / count), "
            "scraped before and after each run; the raw loop reports the same three figures."
            if r.get("latencySource") == "exact" else
            "Latency is NOT the probe's own p50/p99: in this build its `measure` (`actors/echo/src/probe.rs`, "
            "from commit 785b219 until 6ed2bbc) takes `sent.elapsed()` before `reply.await` and reports "
            "microseconds for multi-millisecond asks. It comes from the probe node's "
            "`emporium_ask_duration_seconds{message=\"ReserveStock\",path=\"remote\"}` histogram, scraped before and "
            "after each run: the mean is exact (sum / count); p99 is interpolated linearly inside the bucket it falls "
            "in (bounds 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250 ms, ...), marked ~. The raw loop's p99 is "
            "interpolated in the same buckets (its exact p99 in brackets)."),
        "- Raw: `ops/bench/inventory_raw` (sqlx 0.9 MySQL + tokio, its own cargo workspace) runs, per "
        "reservation, the statements of `reserve` in `actors/inventory/src/stock_keeper.rs` in the same order: "
        "BEGIN; SELECT the reservation by order id; conditional UPDATE of the stock row; INSERT the reservation; "
        "INSERT its line; INSERT the `inventory.reserved` envelope into `bus_outbox`; SELECT the stock (available "
        "before); SELECT the stock again (`publish_reorder_if_crossed`); COMMIT. Same pool size as the service "
        f"({results['rawPool']} connections, opened and warmed before its clock starts), same percentile "
        "formula as the probe. No relay runs for its outbox rows.",
        f"- Counts: {', '.join(f'{int(n):,} at concurrency {c}' for c, n in counts.items())}; a warm-up of each "
        f"path first ({results['warmup']:,} at concurrency 16, discarded); then {results['reps']} rounds per "
        "concurrency of service and raw, alternating which goes first; the table shows medians.",
        "- CPU per reservation: CPU time of each process over the run (`/proc/<pid>/task/*/schedstat`) divided by "
        "the successful reservations; server counters from `SHOW GLOBAL STATUS` before and after.",
        f"- Afterwards: available {integrity['available']:,} + reserved {integrity['reserved']:,} = "
        f"{integrity['available'] + integrity['reserved']:,} (stock {integrity['stock']:,}); "
        f"{integrity['reservations']:,} reservations holding {integrity['reservedUnits']:,} units; consistent: "
        f"{'yes' if integrity['consistent'] else '**no**'}. Outbox rows {integrity['outboxRows']:,}, of which "
        f"{integrity['outboxSent']:,} sent by the service's relay (the raw loop's are never sent).",
    ]
    details = []
    for key, kinds in r["runs"].items():
        for kind, label in (("service", "service"), ("raw", "raw"), ("lockLast", "raw, stock row locked last")):
            if kind not in kinds:
                continue
            k = kinds[kind]
            cpu = ", ".join(f"{n} {v:.0f} us" for n, v in k["cpuMicros"].items())
            s = k["server"]
            details.append(
                f"- c={key} {label}: {k['perSecondAll']} /s, mean {k['meanAll']} ms, p99 "
                f"{'' if r.get('latencySource') == 'exact' else '~'}{k['p99All']} ms, errors {k['errors']}; CPU per "
                f"reservation: {cpu}; per reservation the server did {s['Innodb_data_fsyncs']:.2f} fsyncs, "
                f"{s['Innodb_log_writes']:.2f} redo log writes, {s['Handler_commit']:.2f} commits, {s['Questions']:.1f} "
                f"statements ({s['Com_select']:.1f} SELECT, {s['Com_insert']:.1f} INSERT, {s['Com_update']:.1f} UPDATE), "
                f"{s['Innodb_row_lock_waits']:.2f} row lock waits ({s['Innodb_row_lock_time']:.1f} ms waited); other processes "
                f"{k['otherCores']:.2f} cores.")
    return bk.section_text(lines, details)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bk.add_binary_options(parser, "build and measure a frozen copy of the working tree; with TAG, an earlier copy")
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306", help="the server (default: %(default)s)")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--counts", default="2000,10000,10000", help="reservations per run, per concurrency")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--stock", type=int, default=10_000_000)
    parser.add_argument("--raw-pool", type=int, default=16, help="the raw loop's pool size (the service's is 16)")
    parser.add_argument("--no-lock-last", dest="lock_last", action="store_false",
                        help="skip the raw loop with the stock row locked last")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--report-from", metavar="JSON")
    args = parser.parse_args()
    args.concurrency = fmt_counts(args.concurrency)
    args.counts = fmt_counts(args.counts)
    if len(args.counts) != len(args.concurrency):
        raise SystemExit("--counts needs one count per --concurrency value")
    command = bk.command_line("inventory.py")

    if args.report_from:
        return bk.report_saved(args, SECTION, rows, markdown)

    bench = bk.Bench(args)
    db = bk.MariaDb(args.mysql)
    load_before, info = bk.start_run()
    results: dict = {"reps": args.reps, "warmup": args.warmup, "stock": args.stock, "rawPool": args.raw_pool}
    try:
        results["server"] = db.variables(SERVER_VARIABLES)
        log(f"server: {results['server']}")
        bench.ensure_binary()
        if bench.source_label:
            info["commit"] = bench.source_label
        info["binary"] = bench.binary_label
        raw = build_raw(bench.target_dir)
        log(f"binary: {info['binary']}; raw loop {raw}")
        results["reservations"] = figure_reservations(bench, db, raw, args)
    finally:
        bench.cleanup()
        bk.end_groups()
    load_after = bk.uptime_line()
    log(f"after the run: {load_after}")
    bk.print_table(rows(results))
    bk.publish(args, command, info, load_before, load_after, results, SECTION, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
