#!/usr/bin/env bash
# test_compose.sh — checks that docker-compose.yml and the Dockerfile describe the
# production stack the README promises, without running Docker: services redis, postgres
# and ticketd; Redis with AOF on; ticketd in production on port 8000, with a healthcheck,
# started only once both stores are healthy; data on named volumes; secrets only from the
# git-ignored .env (env_file) or ${VAR} references, never written in the file; and a
# multi-stage Dockerfile on Debian 12. Then the same of docker-compose.cluster.yml, the stack
# on Redis Cluster: six cluster-enabled Redis nodes with AOF, each healthy and on its own named
# volume; an init job that creates 3 masters + 3 replicas from all six once they are healthy;
# at least two ticketd in production on the cluster (TICKETD_REDIS_CLUSTER naming the nodes,
# no TICKETD_REDIS_URL), started after the init job succeeded and PostgreSQL is healthy; and a
# balancer publishing port 8000 whose configuration sends traffic to every ticketd. Parses the
# YAML with python3 and PyYAML (python3-yaml, from scripts/install-deps.sh).
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$repo"

# Debian's interpreter is the one python3-yaml installs for; another python3 may lack it.
python=python3
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    python=/usr/bin/python3
fi

if "$python" - docker-compose.yml Dockerfile docker-compose.cluster.yml <<'EOF'; then
import re
import sys

import yaml

compose_path, dockerfile_path, cluster_path = sys.argv[1], sys.argv[2], sys.argv[3]
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


def load(path):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        print(f"{path}: {err}")
        sys.exit(1)


def command_line(service):
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def depends_condition(service, name):
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return None
    return (depends.get(name) or {}).get("condition")


def volume_sources(service):
    return [v.get("source") if isinstance(v, dict) else str(v).split(":", 1)[0] for v in service.get("volumes") or []]


compose = load(compose_path)

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


def check_secrets(where, services):
    for name, service in services.items():
        for path in env_files(service):
            if path != ".env":
                fail(f"{where}: {name} reads env_file {path}, not .env")
        for key, value in env_dict(service).items():
            value = "" if value is None else str(value)
            if SECRET.search(key) and value and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}", value):
                fail(f"{where}: {name}: {key} is written in the file instead of coming from .env or ${{VAR}}")
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", password):
                    fail(f"{where}: {name}: {key} carries a literal password in a URL")


check_secrets(compose_path, services)

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

# docker-compose.cluster.yml: the same promises on Redis Cluster, two ticketd behind a balancer.
cluster = load(cluster_path)
cservices = cluster.get("services") or {}
cnamed = set((cluster.get("volumes") or {}).keys())


def cfail(message):
    fail(f"{cluster_path}: {message}")


def healthy(service):
    health = service.get("healthcheck") or {}
    return bool(health.get("test")) and not health.get("disable")


def addresses(name, service):
    """How the others may reach a service: its name and any fixed address."""
    found = {name}
    networks = service.get("networks") or {}
    if isinstance(networks, dict):
        for net in networks.values():
            if isinstance(net, dict) and net.get("ipv4_address"):
                found.add(str(net["ipv4_address"]))
    return found


nodes = {n: s for n, s in cservices.items() if re.search(r"--cluster-enabled\s+yes\b", command_line(s))}
if len(nodes) != 6:
    cfail(f"{len(nodes)} cluster-enabled Redis nodes, want 6 (3 masters + 3 replicas)")
node_volumes = []
for name, node in nodes.items():
    command = command_line(node)
    if not re.search(r"--appendonly\s+yes\b", command):
        cfail(f"{name} does not run with --appendonly yes")
    if not healthy(node):
        cfail(f"{name} has no healthcheck")
    own = [source for source in volume_sources(node) if source in cnamed]
    if not own:
        cfail(f"{name} keeps its data (AOF, nodes.conf) on no named volume")
    node_volumes += own
if len(set(node_volumes)) != len(node_volumes):
    cfail("cluster nodes share a volume: each needs its own AOF and nodes.conf")

inits = {n: s for n, s in cservices.items() if re.search(r"--cluster\s+create\b", command_line(s))}
if len(inits) != 1:
    cfail(f"{len(inits)} services run redis-cli --cluster create, want one init job")
for name, init in inits.items():
    command = command_line(init)
    if not re.search(r"--cluster-replicas\s+1\b", command) or "--cluster-yes" not in command:
        cfail(f"{name} does not create with --cluster-replicas 1 --cluster-yes")
    for node_name, node in nodes.items():
        if not any(f"{address}:" in command for address in addresses(node_name, node)):
            cfail(f"{name} does not name node {node_name}")
        if depends_condition(init, node_name) != "service_healthy":
            cfail(f"{name} does not wait for {node_name} with condition: service_healthy")
    if init.get("restart") not in (None, "no", "on-failure"):
        cfail(f"{name} is a one-shot job but restarts {init.get('restart')}")

postgres = cservices.get("postgres")
if postgres is None:
    cfail("no service postgres")
else:
    if not healthy(postgres):
        cfail("postgres has no healthcheck")
    if not any(source in cnamed for source in volume_sources(postgres)):
        cfail("postgres keeps its data on no named volume")

ticketds = {n: s for n, s in cservices.items() if "TICKETD_ENV" in env_dict(s)}
if len(ticketds) < 2:
    cfail(f"{len(ticketds)} ticketd services, want at least two behind the balancer")
node_addresses = set().union(*(addresses(n, s) for n, s in nodes.items())) if nodes else set()
for name, service in ticketds.items():
    env = env_dict(service)
    if env.get("TICKETD_ENV") != "production":
        cfail(f"{name} does not set TICKETD_ENV: production")
    seeds = [seed.strip() for seed in str(env.get("TICKETD_REDIS_CLUSTER") or "").split(",") if seed.strip()]
    if not seeds:
        cfail(f"{name} does not set TICKETD_REDIS_CLUSTER")
    for seed in seeds:
        if seed.rsplit(":", 1)[0] not in node_addresses:
            cfail(f"{name}: seed {seed} is no cluster node")
    if "TICKETD_REDIS_URL" in env:
        cfail(f"{name} sets TICKETD_REDIS_URL, which the cluster setting ignores")
    if not healthy(service):
        cfail(f"{name} has no healthcheck")
    for init in inits:
        if depends_condition(service, init) != "service_completed_successfully":
            cfail(f"{name} does not wait for {init} with condition: service_completed_successfully")
    if depends_condition(service, "postgres") != "service_healthy":
        cfail(f"{name} does not wait for postgres with condition: service_healthy")
    if ".env" not in env_files(service) and "TICKETD_SECRET" not in env:
        cfail(f"{name} gets TICKETD_SECRET from nowhere (no env_file .env, no ${{TICKETD_SECRET}})")

balancers = {n: s for n, s in cservices.items() if n not in ticketds and any(publishes_8000(p) for p in s.get("ports") or [])}
if len(balancers) != 1:
    cfail(f"{len(balancers)} services other than ticketd publish port 8000, want one balancer")
for name, balancer in balancers.items():
    config = ""
    for source in volume_sources(balancer):
        if source.startswith("./"):
            try:
                with open(source) as f:
                    config += f.read()
            except OSError as err:
                cfail(f"{name}: {err}")
    for ticketd_name, service in ticketds.items():
        if depends_condition(balancer, ticketd_name) != "service_healthy":
            cfail(f"{name} does not wait for {ticketd_name} with condition: service_healthy")
        if not any(f"{address}:8000" in config for address in addresses(ticketd_name, service)):
            cfail(f"{name}'s configuration does not send traffic to {ticketd_name}:8000")

check_secrets(cluster_path, cservices)

for message in failures:
    print(f"compose: {message}")
sys.exit(1 if failures else 0)
EOF
    echo "docker-compose.yml, docker-compose.cluster.yml and Dockerfile describe the production stacks"
    echo "1 passed, 0 failed"
else
    echo "0 passed, 1 failed"
    exit 1
fi
