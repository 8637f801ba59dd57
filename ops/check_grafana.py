#!/usr/bin/env python3
"""Checks Grafana's provisioning and dashboards in ops/grafana without a Grafana:

  - provisioning/datasources/*.yml: every data source has a name, a type and a unique fixed uid;
    derived fields link to a data source that exists; one default;
  - provisioning/dashboards/*.yml: file providers, and docker-compose.yml's grafana service
    mounts ops/grafana/dashboards at each provider's path;
  - dashboards/*.json: valid JSON, unique dashboard uids, unique panel ids within a dashboard,
    every panel, query and template variable names a provisioned data source uid of the right
    type, and every PromQL expression (queries and label_values() variables) names only metrics
    the nodes export, functions PromQL has, and labels those metrics carry (in selectors,
    by/without/on/ignoring lists and {{legend}} templates); when promtool is on PATH, it parses
    every expression too (Grafana's $variables replaced).

The metrics the nodes export come from the Rust sources by default (`counter!`, `gauge!` and
`histogram!` calls with a literal name in actors/ and nodes/; histograms as _bucket/_sum/_count,
as actors/cluster/src/telemetry.rs configures buckets for every `_seconds` histogram), or with
--metrics-file FILE (repeatable) from real scrapes of /metrics (Prometheus text format; a
scrape holds only the series recorded so far, so a fresh node lacks e.g. fault counters). Either way
Prometheus's own per-target series (`up`, `scrape_*`) and the target labels the registry's
service discovery adds (`node`, `roles`) and Prometheus adds (`job`, `instance`)
count as known.

    python3 ops/check_grafana.py                              # exit 1 with every problem
    python3 ops/check_grafana.py --metrics-file a.txt --metrics-file b.txt   # from real scrapes
    python3 ops/check_grafana.py --compose /path/to/docker-compose.yml

Standard library only; PyYAML is used when importable (Debian's python3-yaml), else a small
reader of the provisioning files' simple YAML.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    yaml = None

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "ops" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
SOURCE_DIRS = [ROOT / "actors", ROOT / "nodes"]

# Series Prometheus makes for every target, and labels every scraped series gets.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
                     "scrape_samples_post_metric_relabeling"}
TARGET_LABELS = {"job", "instance", "node", "roles"}

PROMQL_FUNCTIONS = {
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
    # functions
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv",
    "double_exponential_smoothing", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour",
    "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log2", "log10",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "predict_linear",
    "present_over_time", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort",
    "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time",
    "sum_over_time", "time", "timestamp", "vector", "year", "acos", "acosh", "asin", "asinh", "atan",
    "atanh", "cos", "cosh", "deg", "pi", "rad", "sin", "sinh", "tan", "tanh",
    "start", "end",  # the @ modifier's start() and end()
}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
                   "or", "unless", "atan2", "inf", "nan"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<braces>\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|[^{}"'`])*\})
  | (?P<range>\[[^\]]*\])
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)[a-zA-Z]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`)')


class Metrics:
    """Metric names and, per name, the labels its series carry."""

    def __init__(self, origin: str):
        self.origin = origin
        self.labels: dict[str, set[str]] = {name: set() for name in PROMETHEUS_SERIES}

    def add(self, name: str, labels: set[str]) -> None:
        self.labels.setdefault(name, set()).update(labels)

    def labels_of(self, name: str) -> set[str]:
        return self.labels.get(name, set()) | TARGET_LABELS


def metrics_from_sources() -> Metrics:
    """counter!/gauge!/histogram! calls with a literal name, and the labels given with them."""
    metrics = Metrics("the Rust sources (actors/, nodes/)")
    call = re.compile(r'\b(counter|gauge|histogram)!\(\s*("([A-Za-z_:][A-Za-z0-9_:]*)"|[^,)\s]+)')
    for directory in SOURCE_DIRS:
        for path in sorted(directory.rglob("*.rs")):
            if "tests" in path.relative_to(ROOT).parts or "target" in path.relative_to(ROOT).parts:
                continue
            text = path.read_text(errors="replace")
            for match in call.finditer(text):
                kind, name = match.group(1), match.group(3)
                if name is None:
                    line = text.count("\n", 0, match.start()) + 1
                    print(f"check_grafana: note: {path.relative_to(ROOT)}:{line}: {kind}! with a non-literal name "
                          f"({match.group(2)}): not known to this check", file=sys.stderr)
                    continue
                # The call's labels: `"label" => value` pairs up to the method that records.
                rest = text[match.end():]
                end = re.search(r"\)\s*\.\s*(increment|set|record|absolute|decrement)\b|;", rest)
                labels = set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*=>', rest[:end.start() if end else 400]))
                if kind == "histogram":
                    metrics.add(f"{name}_bucket", labels | {"le"})
                    metrics.add(f"{name}_sum", labels)
                    metrics.add(f"{name}_count", labels)
                else:
                    metrics.add(name, labels)
    return metrics


def metrics_from_scrapes(paths: list[Path]) -> Metrics:
    """Names from `# TYPE` lines and sample lines of /metrics scrapes, labels from the samples."""
    metrics = Metrics("the scrape " + ", ".join(str(path) for path in paths))
    sample = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+")
    lines = [line for path in paths for line in path.read_text().splitlines()]
    for line in lines:
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                name, kind = parts[2], parts[3]
                if kind == "histogram":
                    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
                        metrics.add(name + suffix, extra)
                elif kind == "summary":
                    metrics.add(name, {"quantile"})
                    metrics.add(name + "_sum", set())
                    metrics.add(name + "_count", set())
                else:
                    metrics.add(name, set())
            continue
        if not line.strip() or line.startswith("#"):
            continue
        match = sample.match(line)
        if match:
            metrics.add(match.group(1), {label for label, _, _ in MATCHER.findall(match.group(3) or "")})
    if len(metrics.labels) == len(PROMETHEUS_SERIES):
        raise SystemExit(f"check_grafana: {metrics.origin} has no metrics (is it a /metrics scrape?)")
    return metrics


class PromQL:
    """What a PromQL expression names: metrics, functions, labels."""

    def __init__(self, expr: str):
        self.metrics: list[str] = []
        self.functions: list[str] = []
        self.selector_labels: list[tuple[str, str]] = []  # (metric or "", label)
        self.listed_labels: list[str] = []
        self.problems: list[str] = []
        tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr) if m.lastgroup != "space"]
        for index, (kind, text) in enumerate(tokens):
            following = tokens[index + 1] if index + 1 < len(tokens) else (None, "")
            previous = tokens[index - 1] if index else (None, "")
            if kind == "braces":
                owner = previous[1] if previous[0] == "ident" and previous[1] not in PROMQL_KEYWORDS else ""
                body = text[1:-1]
                matchers = MATCHER.findall(body)
                for label, _, _ in matchers:
                    if label != "__name__":
                        self.selector_labels.append((owner, label))
                if MATCHER.sub("", body).replace(",", "").strip():
                    self.problems.append(f"cannot read the selector {text}")
            elif kind == "ident":
                lowered = text.lower()
                if lowered in LABEL_LIST_KEYWORDS and following[1] == "(":
                    # by (a, b): the labels up to the closing parenthesis.
                    depth, cursor = 0, index + 1
                    while cursor < len(tokens):
                        token_kind, token_text = tokens[cursor]
                        if token_text == "(":
                            depth += 1
                        elif token_text == ")":
                            depth -= 1
                            if depth == 0:
                                break
                        elif token_kind == "ident":
                            self.listed_labels.append(token_text)
                            tokens[cursor] = ("label", token_text)
                        cursor += 1
                elif lowered in PROMQL_KEYWORDS:
                    continue
                elif following[1] == "(" or following[1].lower() in ("by", "without"):
                    self.functions.append(text)
                else:
                    self.metrics.append(text)
            elif kind == "other" and text in "{}[]":
                self.problems.append(f"unbalanced {text!r}")


def parse_with_promtool(expressions: list[tuple[str, str]], problems: list[str]) -> str:
    """Has promtool parse every expression (as recording rules, Grafana's variables replaced)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return "PromQL syntax not checked (no promtool)"
    rules = []
    for number, (_, expr) in enumerate(expressions):
        concrete = re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)
        concrete = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", ".*", concrete)
        rules.append({"record": f"check_grafana:query_{number}", "expr": concrete})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="check_grafana-") as rules_file:
        json.dump({"groups": [{"name": "dashboards", "rules": rules}]}, rules_file)  # JSON is YAML
        rules_file.flush()
        run = subprocess.run([promtool, "check", "rules", rules_file.name], capture_output=True, text=True)
    if run.returncode != 0:
        output = run.stdout + run.stderr
        numbers = {int(n) for n in re.findall(r"check_grafana:query_(\d+)", output)}
        for number in sorted(numbers):
            problems.append(f"{expressions[number][0]}: promtool cannot parse {expressions[number][1]!r}")
        if not numbers:
            problems.append(f"promtool check rules failed: {output.strip()}")
        else:
            for line in output.splitlines():
                if "parse error" in line or "could not parse" in line:
                    problems.append(f"promtool: {line.strip()}")
    return f"{len(expressions)} PromQL expressions parsed by promtool"


def load_yaml(path: Path):
    text = path.read_text()
    if yaml is not None:
        return yaml.safe_load(text)
    return simple_yaml(text)


def simple_yaml(text: str):
    """Enough YAML for these provisioning files: nested mappings, lists of mappings, scalars."""
    root: dict = {}
    stack: list[tuple[int, object]] = [(-1, root)]
    pending_key: list[tuple[int, dict, str]] = []
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        content = line.strip()
        while stack and stack[-1][0] >= indent and not (content.startswith("- ") and stack[-1][0] == indent
                                                         and isinstance(stack[-1][1], list)):
            stack.pop()
        parent = stack[-1][1]
        if content.startswith("- "):
            if not isinstance(parent, list):
                # The list belongs to the last key of the mapping above.
                owner, key = pending_key[-1][1], pending_key[-1][2]
                owner[key] = parent = []
                stack.append((indent, parent))
            item: dict = {}
            parent.append(item)
            stack.append((indent + 1, item))
            content = content[2:]
            indent += 2
            parent = item
        key, _, value = content.partition(":")
        value = value.strip()
        if value:
            parent[key.strip()] = scalar(value)
        else:
            parent[key.strip()] = {}
            pending_key.append((indent, parent, key.strip()))
            stack.append((indent, parent[key.strip()]))
    return root


def scalar(value: str):
    if value[:1] in "'\"" and value[-1:] == value[:1]:
        return value[1:-1]
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if value.startswith("[") and value.endswith("]"):
        return [scalar(part.strip()) for part in value[1:-1].split(",") if part.strip()]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description="Checks ops/grafana's provisioning and dashboards.")
    parser.add_argument("--metrics-file", type=Path, action="append",
                        help="a /metrics scrape to take the metric names from; repeat it for the scrapes of "
                             "several nodes (a scrape shows only the series recorded so far)")
    parser.add_argument("--compose", type=Path, default=ROOT / "docker-compose.yml",
                        help="the compose file whose grafana service must mount the dashboards")
    args = parser.parse_args()
    problems: list[str] = []

    # Data sources.
    datasources: dict[str, str] = {}
    source_files = sorted((GRAFANA / "provisioning" / "datasources").glob("*.y*ml"))
    if not source_files:
        problems.append("no data source provisioning file in ops/grafana/provisioning/datasources")
    defaults = 0
    derived_links: list[tuple[str, str]] = []
    for path in source_files:
        where = path.relative_to(ROOT)
        for entry in (load_yaml(path) or {}).get("datasources") or []:
            name, uid, kind = entry.get("name"), entry.get("uid"), entry.get("type")
            if not (name and uid and kind):
                problems.append(f"{where}: data source {name or '?'} needs a name, a type and a fixed uid")
                continue
            if uid in datasources:
                problems.append(f"{where}: uid {uid} is used twice")
            datasources[uid] = kind
            defaults += bool(entry.get("isDefault"))
            for field in (entry.get("jsonData") or {}).get("derivedFields") or []:
                derived_links.append((f"{where}: {name} derived field {field.get('name')}", field.get("datasourceUid")))
                try:
                    re.compile(field.get("matcherRegex", ""))
                except re.error as error:
                    problems.append(f"{where}: {name} derived field {field.get('name')}: bad matcherRegex: {error}")
    for what, uid in derived_links:
        if uid not in datasources:
            problems.append(f"{what} links to data source uid {uid}, which is not provisioned")
    if source_files and defaults != 1:
        problems.append(f"{defaults} default data sources (want exactly one)")

    # Dashboard providers, and the compose mount that feeds each.
    provider_paths: list[str] = []
    for path in sorted((GRAFANA / "provisioning" / "dashboards").glob("*.y*ml")):
        for provider in (load_yaml(path) or {}).get("providers") or []:
            target = (provider.get("options") or {}).get("path")
            if provider.get("type") != "file" or not target:
                problems.append(f"{path.relative_to(ROOT)}: provider {provider.get('name')} is not a file provider with a path")
            else:
                provider_paths.append(str(target).rstrip("/"))
    if not provider_paths:
        problems.append("no dashboard provider in ops/grafana/provisioning/dashboards")
    if args.compose.exists():
        compose_text = args.compose.read_text()
        if yaml is not None:
            grafana = ((yaml.safe_load(compose_text) or {}).get("services") or {}).get("grafana") or {}
            volumes = [str(volume) for volume in grafana.get("volumes") or []]
        else:
            volumes = re.findall(r"^\s*-\s*(\S+:\S+)\s*$", compose_text, re.MULTILINE)
        mounted = {volume.split(":")[1].rstrip("/") for volume in volumes
                   if volume.split(":")[0].rstrip("/") in ("./ops/grafana/dashboards", "ops/grafana/dashboards")}
        for target in provider_paths:
            if target not in mounted:
                problems.append(f"{args.compose.name}: the grafana service does not mount the dashboards at {target}; "
                                f"add to its volumes: - ./ops/grafana/dashboards:{target}:ro")
    else:
        problems.append(f"{args.compose} does not exist")

    # The metrics the nodes export.
    metrics = metrics_from_scrapes(args.metrics_file) if args.metrics_file else metrics_from_sources()

    # Dashboards.
    dashboard_files = sorted(DASHBOARDS.glob("*.json"))
    if not dashboard_files:
        problems.append("no dashboards in ops/grafana/dashboards")
    for path in sorted(DASHBOARDS.iterdir()):
        if path.suffix != ".json":
            problems.append(f"{path.relative_to(ROOT)}: not a .json dashboard (the provider loads only those)")
    uids: dict[str, str] = {}
    expressions: list[tuple[str, str]] = []
    num_panels = num_queries = 0
    metrics_used: set[str] = set()
    for path in dashboard_files:
        where = path.relative_to(ROOT)
        try:
            board = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not JSON: {error}")
            continue
        uid = board.get("uid")
        if not uid or not board.get("title"):
            problems.append(f"{where}: a dashboard needs a uid and a title")
        elif uid in uids:
            problems.append(f"{where}: uid {uid} is also {uids[uid]}'s")
        elif len(uid) > 40:
            problems.append(f"{where}: uid {uid} is longer than 40 characters")
        else:
            uids[uid] = str(where)

        def check_datasource(what: str, datasource, expected_type: str | None = None) -> str | None:
            if not isinstance(datasource, dict) or not datasource.get("uid"):
                problems.append(f"{where}: {what} has no data source uid (name one of {sorted(datasources)})")
                return None
            uid = datasource["uid"]
            if uid not in datasources:
                problems.append(f"{where}: {what} uses data source uid {uid}, which is not provisioned "
                                f"(have {sorted(datasources)})")
                return None
            if datasource.get("type") and datasource["type"] != datasources[uid]:
                problems.append(f"{where}: {what} says type {datasource['type']} for {uid}, a {datasources[uid]}")
            if expected_type and datasources[uid] != expected_type:
                problems.append(f"{where}: {what} expects a {expected_type} data source, {uid} is a {datasources[uid]}")
            return datasources[uid]

        def check_promql(what: str, expr: str, legend: str = "") -> None:
            expressions.append((f"{where}: {what}", expr))
            parsed = PromQL(expr)
            for message in parsed.problems:
                problems.append(f"{where}: {what}: {message} in {expr!r}")
            for function in parsed.functions:
                if function not in PROMQL_FUNCTIONS:
                    problems.append(f"{where}: {what}: unknown PromQL function {function}() in {expr!r}")
            known_labels: set[str] = set(TARGET_LABELS)
            unknown = False
            for name in parsed.metrics:
                metrics_used.add(name)
                if name not in metrics.labels:
                    problems.append(f"{where}: {what}: metric {name} is not exported (not in {metrics.origin})")
                    unknown = True
                known_labels |= metrics.labels_of(name)
            if unknown:
                return  # its labels are unknown too: one message is enough
            for owner, label in parsed.selector_labels:
                if owner in metrics.labels and label not in metrics.labels_of(owner):
                    problems.append(f"{where}: {what}: {owner} has no label {label} "
                                    f"(it has {sorted(metrics.labels_of(owner))})")
            for label in parsed.listed_labels + re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend):
                if parsed.metrics and label not in known_labels:
                    problems.append(f"{where}: {what}: label {label} is on none of {sorted(set(parsed.metrics))} "
                                    f"(in {expr!r}, legend {legend!r})")

        for variable in (board.get("templating") or {}).get("list") or []:
            what = f"variable ${variable.get('name')}"
            if variable.get("type") != "query":
                continue
            kind = check_datasource(what, variable.get("datasource"))
            query = variable.get("query")
            query = query.get("query", "") if isinstance(query, dict) else str(query or "")
            if kind == "prometheus" and query:
                match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query, re.DOTALL)
                if match:
                    check_promql(what, match.group(1), "{{" + match.group(2) + "}}")
                elif re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.DOTALL):
                    check_promql(what, query.strip()[len("query_result("):-1])
                elif not re.fullmatch(r"\s*(label_values\(\s*\w+\s*\)|label_names\(\)|metrics\(.*\))\s*", query):
                    problems.append(f"{where}: {what}: cannot read the query {query!r}")

        ids: dict[int, str] = {}
        panels = list(board.get("panels") or [])
        while panels:
            panel = panels.pop(0)
            panels[0:0] = panel.get("panels") or []  # a collapsed row's panels
            title = panel.get("title", "?")
            what = f"panel {panel.get('id')} {title!r}"
            if not isinstance(panel.get("id"), int):
                problems.append(f"{where}: panel {title!r} has no numeric id")
            elif panel["id"] in ids:
                problems.append(f"{where}: panel id {panel['id']} is used by {ids[panel['id']]!r} and {title!r}")
            else:
                ids[panel["id"]] = title
            if "gridPos" not in panel:
                problems.append(f"{where}: {what} has no gridPos")
            if panel.get("type") in ("row", "text"):
                continue
            num_panels += 1
            kind = check_datasource(what, panel.get("datasource"))
            targets = panel.get("targets") or []
            if not targets:
                problems.append(f"{where}: {what} has no queries")
            for target in targets:
                num_queries += 1
                target_what = f"{what} query {target.get('refId')}"
                target_kind = check_datasource(target_what, target.get("datasource", panel.get("datasource")), kind)
                expr = target.get("expr")
                if not expr:
                    problems.append(f"{where}: {target_what} has no expr")
                elif target_kind == "prometheus":
                    check_promql(target_what, expr, target.get("legendFormat", ""))
                elif target_kind == "loki" and not expr.lstrip().startswith("{"):
                    problems.append(f"{where}: {target_what}: a LogQL query starts with a stream selector {{...}}")

    syntax_note = parse_with_promtool(expressions, problems)

    if problems:
        for message in dict.fromkeys(problems):
            print(f"check_grafana: FAIL: {message}", file=sys.stderr)
        print(f"check_grafana: {len(dict.fromkeys(problems))} problem(s) in ops/grafana", file=sys.stderr)
        return 1
    print(f"check_grafana: ops/grafana ok: {len(datasources)} data sources, {len(dashboard_files)} dashboards, "
          f"{num_panels} panels, {num_queries} queries naming {len(metrics_used)} metrics, all exported "
          f"(per {metrics.origin}); {syntax_note}; dashboards mounted at {', '.join(provider_paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
