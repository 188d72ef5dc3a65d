#!/usr/bin/env bash
# test_compose.sh — checks that docker-compose.yml and the Dockerfile describe the
# production stack the README promises, without running Docker: services redis, postgres
# and ticketd; Redis with AOF on; ticketd in production on port 8000, with a healthcheck,
# started only once both stores are healthy; data on named volumes; secrets only from the
# git-ignored .env (env_file) or ${VAR} references, never written in the file; and a
# multi-stage Dockerfile on Debian 12. Parses the YAML with python3 and PyYAML
# (python3-yaml, from scripts/install-deps.sh).
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"

# Debian's interpreter is the one python3-yaml installs for; another python3 may lack it.
python=python3
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    python=/usr/bin/python3
fi

if "$python" - docker-compose.yml Dockerfile <<'EOF'; then
import re
import sys

import yaml

compose_path, dockerfile_path = sys.argv[1], sys.argv[2]
failures = []


def fail(message):
    failures.append(message)


def env_dict(service):
    """A service's environment as a dict, from either the map or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): v for k, v in env.items()}


def env_files(service):
    files = service.get("env_file")
    if files is None:
        return []
    if not isinstance(files, list):
        files = [files]
    return [f["path"] if isinstance(f, dict) else f for f in files]


try:
    with open(compose_path) as f:
        compose = yaml.safe_load(f)
except (OSError, yaml.YAMLError) as err:
    print(f"{compose_path}: {err}")
    sys.exit(1)

services = compose.get("services") or {}
for name in ("redis", "postgres", "ticketd"):
    if name not in services:
        fail(f"no service {name}")

redis = services.get("redis") or {}
command = redis.get("command", "")
command = " ".join(command) if isinstance(command, list) else str(command)
if not re.search(r"--appendonly\s+yes\b", command):
    fail("redis does not run with --appendonly yes")

ticketd = services.get("ticketd") or {}
if env_dict(ticketd).get("TICKETD_ENV") != "production":
    fail("ticketd does not set TICKETD_ENV: production")


def publishes_8000(port):
    if isinstance(port, dict):
        return str(port.get("published")) == "8000" and str(port.get("target")) == "8000"
    return re.fullmatch(r"(?:[0-9.]+:)?8000:8000(?:/tcp)?", str(port)) is not None


if not any(publishes_8000(p) for p in ticketd.get("ports") or []):
    fail("ticketd does not publish port 8000")
health = ticketd.get("healthcheck") or {}
if not health.get("test") or health.get("disable"):
    fail("ticketd has no healthcheck")
depends = ticketd.get("depends_on") or {}
for store in ("redis", "postgres"):
    condition = depends.get(store, {}).get("condition") if isinstance(depends, dict) else None
    if condition != "service_healthy":
        fail(f"ticketd does not wait for {store} with condition: service_healthy")
for store in ("redis", "postgres"):
    if not (services.get(store) or {}).get("healthcheck"):
        fail(f"{store} has no healthcheck, so service_healthy can never hold")

# Named volumes: declared at the top level, and each store keeps its data on one.
named = set((compose.get("volumes") or {}).keys())
if not named:
    fail("no named volumes declared")
for store in ("redis", "postgres"):
    sources = []
    for volume in (services.get(store) or {}).get("volumes") or []:
        sources.append(volume.get("source") if isinstance(volume, dict) else str(volume).split(":", 1)[0])
    if not any(source in named for source in sources):
        fail(f"{store} keeps its data on no named volume")

# Secrets: only from .env or ${VAR}, never a literal value in the file.
SECRET = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|_KEY", re.IGNORECASE)
for name, service in services.items():
    for path in env_files(service):
        if path != ".env":
            fail(f"{name} reads env_file {path}, not .env")
    for key, value in env_dict(service).items():
        value = "" if value is None else str(value)
        if SECRET.search(key) and value and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}", value):
            fail(f"{name}: {key} is written in the file instead of coming from .env or ${{VAR}}")
        for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
            if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", password):
                fail(f"{name}: {key} carries a literal password in a URL")

# Production refuses to start without TICKETD_SECRET: it must reach ticketd from .env.
if ".env" not in env_files(ticketd) and "TICKETD_SECRET" not in env_dict(ticketd):
    fail("ticketd gets TICKETD_SECRET from nowhere (no env_file .env, no ${TICKETD_SECRET})")

# Dockerfile: at least two stages, all on Debian 12, the last one copying from another.
try:
    with open(dockerfile_path) as f:
        dockerfile = f.read()
except OSError as err:
    fail(f"{dockerfile_path}: {err}")
    dockerfile = ""
froms = re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", dockerfile, re.MULTILINE | re.IGNORECASE)
if len(froms) < 2:
    fail(f"Dockerfile has {len(froms)} FROM lines; a multi-stage build has at least two")
for image in froms:
    if not re.fullmatch(r"debian:(?:12|bookworm)(?:[-.@][\w.:-]*)?", image):
        fail(f"Dockerfile stage on {image}, not debian:12 / bookworm")
if froms and not re.search(r"^\s*COPY\s+--from=", dockerfile, re.MULTILINE | re.IGNORECASE):
    fail("Dockerfile's stages do not hand anything over (no COPY --from)")

for message in failures:
    print(f"compose: {message}")
sys.exit(1 if failures else 0)
EOF
    echo "docker-compose.yml and Dockerfile describe the production stack"
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
    exit 1
fi
