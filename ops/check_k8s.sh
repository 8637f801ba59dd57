#!/usr/bin/env bash
# Checks the Kubernetes manifests in ops/k8s (a Kustomize base) without a cluster:
#
#   ops/check_k8s.sh        # exit 1 with every problem found, else one summary line
#
# 1. Installs kubernetes-validate (PyPI, pinned) into a cached venv
#    ($EMPORIUM_CACHE/k8s-venv; idempotent, one install at a time).
# 2. Reads ops/k8s/kustomization.yaml: every file it lists exists, every file of the directory is
#    listed (README.md excepted), and it uses only what this check models (namespace, resources,
#    images, secretGenerator, configMapGenerator). The objects are the listed files' documents
#    plus the generated Secrets/ConfigMaps, in the kustomization's namespace: no kubectl needed.
# 3. Validates every object, strictly (unknown fields refused), against Kubernetes
#    $EMPORIUM_K8S_VERSIONS (default "1.30.0 1.37.0": the oldest release we claim and the newest
#    kubernetes-validate knows). An unknown kind or apiVersion is an error too.
# 4. Checks the references: selectors match pod labels, Services select pods and name their
#    ports, probes name a container port, every Secret/ConfigMap/key/volume/ServiceAccount that a
#    pod uses exists, every *_FILE variable names a file a mounted Secret projects, $(VAR)
#    references are defined first, HPAs and PDBs target existing workloads; and for Emporium:
#    every role of README.md's roles table runs once, with the node listener on 8761,
#    /health/live and /health/ready probes, an advertised address, requests and limits, a
#    non-root read-only container, the cluster secret, and the registry URL (the registry
#    itself excepted).
# 5. When kubectl is installed (EMPORIUM_K8S_KUBECTL=0 skips it), also renders the base for real
#    with `kubectl kustomize` (offline), checks that it yields the same objects, and runs 3 and 4
#    on that output too (hashed Secret names and the references kustomize rewrote).
set -euo pipefail

cd "$(dirname "$0")/.."
CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
VENV="${EMPORIUM_K8S_VENV:-$CACHE/k8s-venv}"
REQS=(kubernetes-validate==1.37.0)
VERSIONS="${EMPORIUM_K8S_VERSIONS:-1.30.0 1.37.0}"

say() { printf 'ops/check_k8s.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }


ops/lib/pip_venv.sh "$(basename "$0")" "$VENV" kubernetes-validate "${REQS[@]}" || exit 1

# The real render, when kubectl is here: its output, or its error for the checks to report.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/emporium-k8s.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
RENDERED=""
if [ "${EMPORIUM_K8S_KUBECTL:-1}" != 0 ] && command -v kubectl >/dev/null 2>&1; then
    RENDERED="$WORK/rendered.yaml"
    kubectl kustomize ops/k8s >"$RENDERED" 2>"$WORK/kubectl.err" || RENDERED="error:$WORK/kubectl.err"
fi

"$VENV/bin/python" - "$PWD" "$VERSIONS" "$RENDERED" <<'PY'
"""The checks of ops/check_k8s.sh (see its header)."""

import base64
import re
import sys
from collections import defaultdict
from pathlib import Path

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, VersionNotSupportedError

ROOT = Path(sys.argv[1])
BASE = ROOT / "ops" / "k8s"
VERSIONS = sys.argv[2].split()
# The file kubectl kustomize rendered, "error:FILE" with its complaint, or "" (no kubectl).
RENDERED = sys.argv[3]

# What this check understands of a kustomization; anything else would make its model wrong.
MODELLED_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "secretGenerator", "configMapGenerator"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "PriorityClass", "CustomResourceDefinition", "IngressClass"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
NODE_PORT = 8761
PROBE_PATHS = {"livenessProbe": "/health/live", "readinessProbe": "/health/ready"}

problems: list[str] = []


def problem(message: str) -> None:
    problems.append(message)


def readme_roles() -> list[str]:
    """The roles of README.md's roles table, `all` excepted (as ops/compose_check.py reads it)."""
    readme = (ROOT / "README.md").read_text()
    if "## Roles" not in readme:
        problem("README.md has no '## Roles' section")
        return []
    section = readme.split("## Roles", 1)[1].split("\n## ", 1)[0]
    roles = [name for name in re.findall(r"^\| `([a-z]+)` \|", section, re.MULTILINE) if name != "all"]
    if not roles:
        problem("no roles table found in README.md")
    return roles


# --- the kustomization and the directory ----------------------------------------------------

def load_base() -> tuple[list[tuple[str, dict]], str]:
    """(source, object) for every object of the base, and the namespace."""
    kustomization_path = BASE / "kustomization.yaml"
    if not kustomization_path.exists():
        problem(f"{kustomization_path.relative_to(ROOT)} is missing")
        return [], ""
    kustomization = yaml.safe_load(kustomization_path.read_text()) or {}
    if kustomization.get("kind") != "Kustomization":
        problem("kustomization.yaml: kind is not Kustomization")
    for key in sorted(set(kustomization) - MODELLED_KEYS):
        problem(f"kustomization.yaml uses '{key}', which ops/check_k8s.sh does not model: extend the check")
    namespace = kustomization.get("namespace", "")
    if not namespace:
        problem("kustomization.yaml sets no namespace")

    listed: list[str] = []
    objects: list[tuple[str, dict]] = []
    for resource in kustomization.get("resources") or []:
        if not isinstance(resource, str) or "/" in resource or not resource.endswith((".yaml", ".yml")):
            problem(f"kustomization.yaml: resource {resource!r} is not a YAML file of ops/k8s (not modelled)")
            continue
        if resource in listed:
            problem(f"kustomization.yaml lists {resource} twice")
        listed.append(resource)
        path = BASE / resource
        if not path.is_file():
            problem(f"kustomization.yaml lists {resource}, which does not exist")
            continue
        try:
            documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        except yaml.YAMLError as error:
            problem(f"{resource}: not YAML: {error}")
            continue
        if not documents:
            problem(f"{resource}: no objects")
        for index, doc in enumerate(documents, 1):
            source = f"{resource}#{index}"
            if not isinstance(doc, dict) or not all(doc.get(key) for key in ("apiVersion", "kind")) \
                    or not (doc.get("metadata") or {}).get("name"):
                problem(f"{source}: not a Kubernetes object (apiVersion, kind and metadata.name)")
                continue
            declared = doc["metadata"].get("namespace")
            if doc["kind"] in CLUSTER_SCOPED:
                if declared:
                    problem(f"{source}: {doc['kind']} is cluster-scoped but names namespace {declared}")
            else:
                if declared and declared != namespace:
                    problem(f"{source}: namespace {declared}, but kustomization.yaml sets {namespace}")
                doc["metadata"]["namespace"] = namespace
            objects.append((source, doc))

    for generator_key, kind in (("secretGenerator", "Secret"), ("configMapGenerator", "ConfigMap")):
        for generator in kustomization.get(generator_key) or []:
            generated, files = generate(generator, kind, namespace)
            listed.extend(files)
            if generated is not None:
                objects.append((f"kustomization.yaml {generator_key} {generator.get('name')}", generated))

    for path in sorted(BASE.iterdir()):
        if path.name in ("kustomization.yaml", "README.md"):
            continue
        if path.name not in listed:
            problem(f"ops/k8s/{path.name} is not listed in kustomization.yaml (add it to resources, or remove it)")
    return objects, namespace


def generate(generator: dict, kind: str, namespace: str) -> tuple[dict | None, list[str]]:
    """The Secret or ConfigMap a generator makes (its name without kustomize's hash suffix)."""
    name = generator.get("name")
    if not name:
        problem(f"kustomization.yaml: a {kind} generator without a name")
        return None, []
    for key in sorted(set(generator) - {"name", "literals", "files", "envs", "type"}):
        problem(f"kustomization.yaml: {kind} generator {name} uses '{key}' (not modelled)")
    values: dict[str, str] = {}
    files: list[str] = []
    for literal in generator.get("literals") or []:
        key, separator, value = str(literal).partition("=")
        if not separator or not key:
            problem(f"kustomization.yaml: {kind} {name}: literal {literal!r} is not KEY=VALUE")
            continue
        values[key] = value
    for entry in generator.get("files") or []:
        key, separator, file_name = str(entry).partition("=")
        if not separator:
            key, file_name = Path(entry).name, entry
        files.append(file_name)
        if not (BASE / file_name).is_file():
            problem(f"kustomization.yaml: {kind} {name} reads {file_name}, which does not exist")
            continue
        values[key] = (BASE / file_name).read_text()
    for env_file in generator.get("envs") or []:
        files.append(env_file)
        if not (BASE / env_file).is_file():
            problem(f"kustomization.yaml: {kind} {name} reads {env_file}, which does not exist")
            continue
        for line in (BASE / env_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value
    if not values:
        problem(f"kustomization.yaml: {kind} generator {name} has no keys")
    metadata = {"name": name, "namespace": namespace}
    if kind == "Secret":
        data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                "type": generator.get("type", "Opaque"), "data": data}, files
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": values}, files


# --- schemas --------------------------------------------------------------------------------

def validate(objects: list[tuple[str, dict]], label: str) -> None:
    for source, doc in objects:
        what = f"{label}{source} ({doc['kind']} {doc['metadata']['name']})"
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except ValidationError as error:
                path = ".".join(str(item) for item in error.path) or "(top)"
                problem(f"{what}: invalid for Kubernetes {version}: {path}: {error.message}")
            except SchemaNotFoundError:
                problem(f"{what}: Kubernetes {version} has no {doc['apiVersion']} {doc['kind']}")
            except VersionNotSupportedError:
                sys.exit(f"ops/check_k8s.sh: kubernetes-validate {kubernetes_validate.__version__} "
                         f"does not know Kubernetes {version} (EMPORIUM_K8S_VERSIONS)")


# --- references -----------------------------------------------------------------------------

def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def base_name(name: str, generated: set[str]) -> str:
    """The generator's name for a kustomize-hashed one (emporium-secrets-7tm8h9k2bc)."""
    for candidate in generated:
        if re.fullmatch(re.escape(candidate) + r"-[a-z0-9]{10}", name):
            return candidate
    return name


def role_of(container: dict) -> str | None:
    args = [str(arg) for arg in (container.get("command") or []) + (container.get("args") or [])]
    for index, arg in enumerate(args):
        if arg == "--role" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--role="):
            return arg.split("=", 1)[1]
    for env in container.get("env") or []:
        if env.get("name") == "EMPORIUM_ROLE":
            return env.get("value")
    return None


def cross_check(objects: list[tuple[str, dict]], label: str, roles: list[str]) -> dict:
    index: dict[str, dict[str, tuple[str, dict]]] = defaultdict(dict)
    for source, doc in objects:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if name in index[kind]:
            problem(f"{label}{source}: a second {kind} named {name} (first in {index[kind][name][0]})")
        index[kind][name] = (source, doc)

    def exists(kind: str, name: str) -> bool:
        return name in index[kind]

    def keys_of(kind: str, name: str) -> set[str]:
        doc = index[kind][name][1]
        return set(doc.get("data") or {}) | set(doc.get("stringData") or {}) | set(doc.get("binaryData") or {})

    workloads = {name: entry for kind in WORKLOAD_KINDS for name, entry in index[kind].items()}
    pod_labels = {name: ((doc["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
                  for name, (_, doc) in workloads.items()}
    role_workloads: dict[str, list[str]] = defaultdict(list)
    hpa_targets = {doc["spec"]["scaleTargetRef"]["name"]: doc for _, doc in index["HorizontalPodAutoscaler"].values()}
    pdb_selectors = [(doc["metadata"]["name"], (doc["spec"].get("selector") or {}).get("matchLabels") or {})
                     for _, doc in index["PodDisruptionBudget"].values()]
    registry_services: set[tuple[str, int]] = set()

    # Services first: what they select and which ports they reach.
    for name, (source, service) in index["Service"].items():
        where = f"{label}{source} (Service {name})"
        selector = service["spec"].get("selector") or {}
        chosen = [workload for workload, labels in pod_labels.items() if selects(selector, labels)]
        if not chosen:
            problem(f"{where}: its selector {selector} matches no pod template")
            continue
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for workload in chosen:
                pod_ports = [p for c in workloads[workload][1]["spec"]["template"]["spec"]["containers"]
                             for p in c.get("ports") or []]
                if isinstance(target, str):
                    found = [p for p in pod_ports if p.get("name") == target]
                else:
                    found = [p for p in pod_ports if p.get("containerPort") == target]
                if not found:
                    problem(f"{where}: port {port.get('name', port.get('port'))} targets {target!r}, "
                            f"which no container of {workload} declares")
                elif role_of(workloads[workload][1]["spec"]["template"]["spec"]["containers"][0]) == "registry" \
                        and found[0].get("containerPort") == NODE_PORT:
                    registry_services.add((name, port["port"]))

    for name, (source, workload) in workloads.items():
        kind = workload["kind"]
        where = f"{label}{source} ({kind} {name})"
        spec = workload["spec"]
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selects(selector, pod_labels[name]):
            problem(f"{where}: selector {selector} does not match its pod labels {pod_labels[name]}")
        if spec.get("selector", {}).get("matchExpressions"):
            problem(f"{where}: matchExpressions are not modelled by this check")
        pod = spec["template"]["spec"]
        account = pod.get("serviceAccountName")
        if account and account != "default" and not exists("ServiceAccount", account):
            problem(f"{where}: ServiceAccount {account} does not exist")
        if kind == "StatefulSet":
            governing = spec.get("serviceName")
            if governing:
                service = index["Service"].get(governing)
                if service is None:
                    problem(f"{where}: serviceName {governing} is not a Service")
                elif service[1]["spec"].get("clusterIP") != "None":
                    problem(f"{where}: serviceName {governing} is not headless (clusterIP: None)")
                elif not selects(service[1]["spec"].get("selector") or {}, pod_labels[name]):
                    problem(f"{where}: its headless Service {governing} does not select its pods")

        volumes = {volume["name"]: volume for volume in pod.get("volumes") or []}
        projected: dict[str, set[str]] = {}
        for volume_name, volume in volumes.items():
            if "secret" in volume:
                secret_name = volume["secret"].get("secretName", "")
                kind_of, optional, wanted = "Secret", volume["secret"].get("optional"), volume["secret"]
            elif "configMap" in volume:
                secret_name = volume["configMap"].get("name", "")
                kind_of, optional, wanted = "ConfigMap", volume["configMap"].get("optional"), volume["configMap"]
            else:
                continue
            if not exists(kind_of, secret_name):
                if not optional:
                    problem(f"{where}: volume {volume_name} mounts {kind_of} {secret_name}, which does not exist")
                continue
            keys = keys_of(kind_of, secret_name)
            items = wanted.get("items")
            if items:
                for item in items:
                    if item["key"] not in keys:
                        problem(f"{where}: volume {volume_name} projects key {item['key']}, "
                                f"which {kind_of} {secret_name} does not have")
                projected[volume_name] = {item["path"] for item in items}
            else:
                projected[volume_name] = keys

        for container in (pod.get("initContainers") or []) + pod["containers"]:
            cwhere = f"{where} container {container['name']}"
            ports = {port.get("name"): port.get("containerPort") for port in container.get("ports") or []}
            for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(probe_name)
                if not probe:
                    continue
                action = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc") or {}
                if "exec" in probe:
                    continue
                port = action.get("port")
                if not isinstance(port, str):
                    problem(f"{cwhere}: {probe_name} uses port {port!r}: name the container port instead")
                elif port not in ports:
                    problem(f"{cwhere}: {probe_name} names port {port}, which the container does not declare")

            defined: set[str] = set()
            for source_ref in container.get("envFrom") or []:
                for ref_key, kind_of in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = source_ref.get(ref_key)
                    if ref is None:
                        continue
                    if exists(kind_of, ref["name"]):
                        defined |= keys_of(kind_of, ref["name"])
                    elif not ref.get("optional"):
                        problem(f"{cwhere}: envFrom {kind_of} {ref['name']} does not exist")
            env = {}
            for variable in container.get("env") or []:
                value_from = variable.get("valueFrom") or {}
                for ref_key, kind_of in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = value_from.get(ref_key)
                    if ref is None:
                        continue
                    if not exists(kind_of, ref["name"]):
                        if not ref.get("optional"):
                            problem(f"{cwhere}: {variable['name']} reads {kind_of} {ref['name']}, which does not exist")
                    elif ref["key"] not in keys_of(kind_of, ref["name"]) and not ref.get("optional"):
                        problem(f"{cwhere}: {variable['name']} reads key {ref['key']}, "
                                f"which {kind_of} {ref['name']} does not have")
                for reference in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(variable.get("value", ""))):
                    if reference not in defined:
                        problem(f"{cwhere}: {variable['name']} uses $({reference}), not defined before it")
                defined.add(variable["name"])
                env[variable["name"]] = variable.get("value")
            for arg in (container.get("command") or []) + (container.get("args") or []):
                for reference in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(arg)):
                    if reference not in defined:
                        problem(f"{cwhere}: argument {arg!r} uses $({reference}), which is not defined")

            mounts = {}
            for mount in container.get("volumeMounts") or []:
                if mount["name"] not in volumes:
                    problem(f"{cwhere}: mounts volume {mount['name']}, which the pod does not define")
                mounts[mount["mountPath"].rstrip("/")] = mount["name"]
            for variable, value in env.items():
                if not variable.endswith("_FILE") or value is None:
                    continue
                directory, _, file_name = str(value).rpartition("/")
                volume_name = mounts.get(directory)
                if volume_name is None:
                    problem(f"{cwhere}: {variable}={value} is not in a mounted volume")
                elif volume_name in projected and file_name not in projected[volume_name]:
                    problem(f"{cwhere}: {variable}={value}: volume {volume_name} has no file {file_name} "
                            f"(it has {sorted(projected[volume_name])})")
                elif volume_name not in projected:
                    problem(f"{cwhere}: {variable}={value} is in volume {volume_name}, not a Secret or ConfigMap")

            image = str(container.get("image", ""))
            if not image.split("/")[-1].startswith("emporium"):
                continue
            # An Emporium node.
            role = role_of(container)
            if role is None:
                problem(f"{cwhere}: runs the Emporium image without --role")
                continue
            role_workloads[role].append(name)
            if role not in roles:
                problem(f"{cwhere}: role {role!r} is not in README.md's roles table {roles}")
            if env.get("EMPORIUM_LISTEN") != f"0.0.0.0:{NODE_PORT}":
                problem(f"{cwhere}: EMPORIUM_LISTEN must be 0.0.0.0:{NODE_PORT} (is {env.get('EMPORIUM_LISTEN')!r})")
            if not env.get("EMPORIUM_ADVERTISE"):
                problem(f"{cwhere}: no EMPORIUM_ADVERTISE: other nodes would dial 127.0.0.1")
            if "EMPORIUM_CLUSTER_SECRET_FILE" not in env and "EMPORIUM_CLUSTER_SECRET" not in defined:
                problem(f"{cwhere}: no cluster secret (EMPORIUM_CLUSTER_SECRET_FILE)")
            node_port_names = [port_name for port_name, number in ports.items() if number == NODE_PORT]
            if not node_port_names:
                problem(f"{cwhere}: does not declare the node listener's port {NODE_PORT}")
            for probe_name, path in PROBE_PATHS.items():
                http = (container.get(probe_name) or {}).get("httpGet") or {}
                if http.get("path") != path or http.get("port") not in node_port_names:
                    problem(f"{cwhere}: {probe_name} must be GET {path} on the node port (is {http or None})")
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(section) or {}):
                        problem(f"{cwhere}: no {resource} {section[:-1]}")
            security = container.get("securityContext") or {}
            pod_security = pod.get("securityContext") or {}
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                problem(f"{cwhere}: runAsNonRoot is not set")
            if security.get("readOnlyRootFilesystem") is not True:
                problem(f"{cwhere}: readOnlyRootFilesystem is not true")
            if security.get("allowPrivilegeEscalation") is not False:
                problem(f"{cwhere}: allowPrivilegeEscalation is not false")
            gets_registry_url = "EMPORIUM_REGISTRY" in defined
            if role == "registry":
                if gets_registry_url:
                    problem(f"{cwhere}: the registry gets EMPORIUM_REGISTRY: pointed at its own Service it "
                            "would wait for itself")
            elif not gets_registry_url:
                problem(f"{cwhere}: no EMPORIUM_REGISTRY")
            else:
                env_registry = env.get("EMPORIUM_REGISTRY")
                if env_registry is None:
                    for source_ref in container.get("envFrom") or []:
                        ref = source_ref.get("configMapRef")
                        if ref and exists("ConfigMap", ref["name"]):
                            env_registry = (index["ConfigMap"][ref["name"]][1].get("data") or {}).get(
                                "EMPORIUM_REGISTRY", env_registry)
                for url in str(env_registry or "").split(","):
                    match = re.fullmatch(r"http://([a-z0-9-]+)(?:\.[a-z0-9.-]+)?:(\d+)/?", url.strip())
                    if not match or (match.group(1), int(match.group(2))) not in registry_services:
                        problem(f"{cwhere}: EMPORIUM_REGISTRY {url!r} is not a Service of the registry's "
                                f"node port (have {sorted(registry_services)})")
            if role == "gateway":
                if "http" not in ports:
                    problem(f"{cwhere}: the gateway declares no 'http' port for its public listener")
                elif not any(selects(doc["spec"].get("selector") or {}, pod_labels[name])
                             and any(p.get("targetPort") in ("http", ports["http"]) for p in doc["spec"].get("ports") or [])
                             for _, doc in index["Service"].values()):
                    problem(f"{cwhere}: no Service exposes the gateway's public port")
            if role != "registry":
                if not any(selects(selector_labels, pod_labels[name]) for _, selector_labels in pdb_selectors):
                    problem(f"{where}: no PodDisruptionBudget covers it")

        hpa = hpa_targets.get(name)
        if hpa is not None:
            if "replicas" in spec:
                problem(f"{where}: sets replicas while HorizontalPodAutoscaler {hpa['metadata']['name']} "
                        "owns the count (every apply would reset it)")
            for metric in hpa["spec"].get("metrics") or []:
                resource = (metric.get("resource") or {}).get("name")
                if metric.get("type") == "Resource" and resource:
                    for container in pod["containers"]:
                        if resource not in ((container.get("resources") or {}).get("requests") or {}):
                            problem(f"{where}: the HPA scales on {resource} but container {container['name']} "
                                    f"requests none")

    for name, (source, hpa) in index["HorizontalPodAutoscaler"].items():
        target = hpa["spec"]["scaleTargetRef"]
        if target.get("kind") not in WORKLOAD_KINDS or target.get("name") not in index[target.get("kind", "")]:
            problem(f"{label}{source} (HorizontalPodAutoscaler {name}): targets {target.get('kind')} "
                    f"{target.get('name')}, which does not exist")
    for name, (source, pdb) in index["PodDisruptionBudget"].items():
        selector = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
        covered = [workload for workload, labels in pod_labels.items() if selects(selector, labels)]
        if not covered:
            problem(f"{label}{source} (PodDisruptionBudget {name}): selects no pods")
        minimum = pdb["spec"].get("minAvailable")
        for workload in covered:
            hpa = hpa_targets.get(workload)
            replicas = hpa["spec"].get("minReplicas", 1) if hpa else workloads[workload][1]["spec"].get("replicas", 1)
            if isinstance(minimum, int) and minimum >= replicas:
                problem(f"{label}{source} (PodDisruptionBudget {name}): minAvailable {minimum} with "
                        f"{replicas} replica(s) of {workload} blocks every node drain")

    for role in roles:
        if not role_workloads.get(role):
            problem(f"{label}no workload runs the {role} role (README.md's roles table)")
        elif len(role_workloads[role]) > 1:
            problem(f"{label}the {role} role runs in several workloads: {role_workloads[role]}")
    return {"workloads": len(workloads)}


def compare_rendered(model: list[tuple[str, dict]], rendered: list[tuple[str, dict]], generated: set[str]) -> None:
    """kubectl's render must have the model's objects (generated names hashed) and no others."""
    expected = sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in model)
    got = sorted((doc["kind"], base_name(doc["metadata"]["name"], generated)) for _, doc in rendered)
    if expected != got:
        problem(f"kubectl kustomize: the render's objects differ from the files' "
                f"(only in the files: {sorted(set(expected) - set(got))}; "
                f"only in the render: {sorted(set(got) - set(expected))})")


def main() -> int:
    roles = readme_roles()
    objects, namespace = load_base()
    if namespace and not any(doc["kind"] == "Namespace" and doc["metadata"]["name"] == namespace
                             for _, doc in objects):
        problem(f"no Namespace object named {namespace}")
    validate(objects, "")
    counts = cross_check(objects, "", roles)
    generated = {doc["metadata"]["name"] for source, doc in objects if source.startswith("kustomization.yaml")}
    render_note = "kubectl not used"
    if RENDERED.startswith("error:"):
        complaint = Path(RENDERED[len("error:"):]).read_text().strip().splitlines() or ["(no message)"]
        problem(f"kubectl kustomize ops/k8s refused the base: {complaint[-1]}")
    elif RENDERED:
        rendered = [(f"render#{number}", doc) for number, doc
                    in enumerate((d for d in yaml.safe_load_all(Path(RENDERED).read_text()) if d), 1)]
        compare_rendered(objects, rendered, generated)
        validate(rendered, "kubectl kustomize: ")
        cross_check(rendered, "kubectl kustomize: ", roles)
        render_note = f"kubectl kustomize render ({len(rendered)} objects) checked too"
    if problems:
        for message in problems:
            print(f"ops/check_k8s.sh: FAIL: {message}", file=sys.stderr)
        print(f"ops/check_k8s.sh: {len(problems)} problem(s) in ops/k8s", file=sys.stderr)
        return 1
    files = len({source.split("#")[0] for source, _ in objects if "#" in source})
    print(f"ops/check_k8s.sh: ops/k8s ok: {files} files, {len(objects)} objects ({len(generated)} generated) "
          f"valid against Kubernetes {' and '.join(VERSIONS)} (strict); {counts['workloads']} workloads run "
          f"the {len(roles)} roles of README.md with references, probes and secrets consistent; {render_note}")
    return 0


sys.exit(main())
PY
