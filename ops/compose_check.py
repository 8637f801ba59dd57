#!/usr/bin/env python3
"""Checks docker-compose.yml (issue 13, item 7) without a Docker engine: `docker-compose config`
must accept it, and what it says about Emporium must agree with the documentation (README.md,
whose roles table a test checks against the code, and ../shared/API.md when it is next to the
repository):

  - every role of the README's roles table (except `all`) runs as its own service from the one image, with
    `--role <role>`, a health check on the node listener's /health/ready, and `depends_on` the
    registry being healthy (the registry itself excepted);
  - the gateway publishes the default public port (8080), the registry its node port (8761);
  - every variable the Emporium services get is an `EMPORIUM_*` variable the README or API.md
    documents (or the variable of a documented flag), and
    every store URL points at a service of the file;
  - the stores, the broker and the mail catcher the URLs name have health checks.

    /usr/bin/python3 ops/compose_check.py    # exit 1 with the reasons when something disagrees

ops/test.sh runs it with Debian's python3 (docker-compose depends on python3-yaml).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
API = ROOT.parent / "shared" / "API.md"


def documented_variable(variable: str, documented: str) -> bool:
    """`NAME` is named in the documentation; `NAME_FILE` and `NAME_VAULT` are when `NAME` is."""
    names = [variable] + [variable.removesuffix(suffix) for suffix in ("_FILE", "_VAULT") if variable.endswith(suffix)]
    return any(re.search(rf"`{re.escape(name)}`", documented) for name in names)


def main() -> int:
    rendered = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                              capture_output=True, text=True, cwd=ROOT)
    if rendered.returncode != 0:
        print(f"docker-compose config refused docker-compose.yml:\n{rendered.stderr}", file=sys.stderr)
        return 1
    services = yaml.safe_load(rendered.stdout)["services"]
    readme = (ROOT / "README.md").read_text()
    # The contract when it sits next to the repository (../shared/API.md), and the README always:
    # its roles table is checked against the code's Role::ALL by a test in nodes/src/services.rs.
    api = API.read_text() if API.exists() else ""
    documented = readme + api
    roles_section = readme.split("## Roles", 1)[1].split("\n## ", 1)[0]
    roles = [name for name in re.findall(r"^\| `([a-z]+)` \|", roles_section, re.MULTILINE) if name != "all"]
    flag_variables = {"EMPORIUM_" + flag.upper().replace("-", "_") for flag in re.findall(r"\[--([a-z-]+)", readme)}
    problems: list[str] = []
    if not roles:
        problems.append("no roles table found in README.md")

    emporium = {name: service for name, service in services.items() if service.get("image") == "emporium:local"}
    for role in roles:
        service = emporium.get(role)
        if service is None:
            problems.append(f"no service runs the {role} role")
            continue
        command = service.get("command", [])
        if command[:2] != ["--role", role]:
            problems.append(f"{role}: command {command} does not start with --role {role}")
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        if "/health/ready" not in test:
            problems.append(f"{role}: no health check on /health/ready")
        depends = service.get("depends_on", {})
        if role != "registry" and depends.get("registry", {}).get("condition") != "service_healthy":
            problems.append(f"{role}: does not wait for a healthy registry")
    for name in emporium:
        if name not in roles:
            problems.append(f"service {name} runs the image but is no role of API.md")

    published = {name: [str(port.get("published")) for port in service.get("ports", [])]
                 for name, service in emporium.items()}
    if "8080" not in published.get("gateway", []):
        problems.append("the gateway does not publish 8080")
    if "8761" not in published.get("registry", []):
        problems.append("the registry does not publish 8761")

    # What vault-seed puts into Vault (`vault kv put secret/emporium key=value ...`).
    seed_command = (services.get("vault-seed") or {}).get("command") or []
    seeded = {f"{seed_command[3]}#{item.split('=', 1)[0]}": item.split("=", 1)[1]
              for item in seed_command[4:] if "=" in item} if seed_command[:3] == ["vault", "kv", "put"] else {}

    for name, service in emporium.items():
        environment = dict(service.get("environment") or {})
        for variable, location in list(environment.items()):
            if variable.endswith("_VAULT"):
                if location not in seeded:
                    problems.append(f"{name}: {variable}={location} but vault-seed does not put that key")
                else:
                    environment[variable.removesuffix("_VAULT")] = seeded[location]
        if any(variable.endswith("_VAULT") for variable in environment):
            depends = service.get("depends_on", {})
            if depends.get("vault-seed", {}).get("condition") != "service_completed_successfully":
                problems.append(f"{name}: reads secrets from Vault but does not wait for vault-seed")
        for variable, value in environment.items():
            if not variable.startswith("EMPORIUM_"):
                problems.append(f"{name}: {variable} is not an Emporium variable")
            elif variable not in flag_variables and not documented_variable(variable, documented):
                problems.append(f"{name}: {variable} is documented neither in README.md nor in API.md")
            for url_variable, host_service in [("EMPORIUM_MYSQL_URL", "mariadb"), ("EMPORIUM_MONGODB_URL", "mongodb"),
                                               ("EMPORIUM_AMQP_URL", "rabbitmq"), ("EMPORIUM_SMTP_URL", "mailpit")]:
                if variable == url_variable:
                    if f"@{host_service}:" not in str(value) and f"//{host_service}:" not in str(value):
                        problems.append(f"{name}: {variable} does not point at the {host_service} service")
                    if "healthcheck" not in services.get(host_service, {}):
                        problems.append(f"{host_service} has no health check")

    if problems:
        print("docker-compose.yml disagrees with the documentation:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    checked = "README.md and API.md" if api else "README.md (no ../shared/API.md here)"
    print(f"docker-compose.yml: {len(services)} services, the {len(roles)} roles agree with {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
