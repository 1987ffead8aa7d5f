"""The deployment files: scripts/check-deploy passes and catches faults, and the compose
file, the Dockerfiles and the helper scripts in deploy/ hold the facts docs/deploy.md
relies on. There is no Docker engine here, so the files are parsed, not run; the helper
scripts run for real against real Redis and MinIO processes."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from limits.storage import storage_from_string
from minio.error import S3Error
from ruamel.yaml import YAML

from tests.services import MinioServer, free_port, wait_for
from vault.config import load_config
from vault.storage import ObjectStore

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
MINIO_DOCKERFILE = ROOT / "deploy" / "minio.Dockerfile"
WITNESS_DOCKERFILE = ROOT / "deploy" / "witness.Dockerfile"
TOOLS = Path(os.environ.get("TOOLS") or Path.home() / ".cache" / "haven-tools")
VENV = ROOT / ".venv"
# The MinIO commit ARCHITECTURE.md names: tests, `make serve` and production all run it.
MINIO_COMMIT = "7aac2a2c5b7c882e68c1ce017d8256be2feea27f"
KEYS_TARGET = "/run/haven/keys"
ONE_SHOTS = {"migrate", "minio-setup"}
# Versions that are complete with two numbers; every other image needs three.
TWO_PART_VERSIONS = {"postgres", "debian"}
DEFAULT_RE = re.compile(r"\$\{(\w+):-([^}]*)\}")


def _resolve_defaults(value: str) -> str:
    """Replace ``${VAR:-default}`` with its default, as Compose does when VAR is unset."""
    return DEFAULT_RE.sub(lambda match: match.group(2), value)


def _tag_is_exact(image: str) -> bool:
    """Whether an image reference names a full version: no latest, no bare major."""
    name, _, tag = _resolve_defaults(image).rpartition(":")
    if not name or "/" in tag:
        return False
    if name.startswith("localhost/haven-minio"):
        return MINIO_COMMIT.startswith(tag) and len(tag) >= 8
    parts = 2 if name.rsplit("/", 1)[-1] in TWO_PART_VERSIONS else 3
    version = r"\d+" + r"\.\d+" * (parts - 1)
    return re.fullmatch(version + r"(-[a-z0-9.-]+)?", tag) is not None


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments left out."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, args = stripped.partition(" ")
            pairs.append((instruction.upper(), " ".join(args.split())))
    return pairs


def _final_stage(path: Path) -> list[tuple[str, str]]:
    """The instructions of the last build stage."""
    instructions = _dockerfile(path)
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _dockerfile_arg(path: Path, name: str) -> str:
    """The default value of a build ARG."""
    for instruction, args in _dockerfile(path):
        if instruction == "ARG" and args.startswith(f"{name}="):
            return args.split("=", 1)[1]
    raise AssertionError(f"{path.name} has no ARG {name}")


def _go() -> str:
    """The Go toolchain (scripts/system-deps installs it)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        pytest.fail("go not found: run scripts/system-deps")
    return go


def _run_check_deploy(root: Path) -> subprocess.CompletedProcess[str]:
    """Run scripts/check-deploy of a tree, with this checkout's venv and tools folder."""
    env = dict(os.environ, VENV=str(VENV), TOOLS=str(TOOLS))
    return subprocess.run(
        [str(root / "scripts" / "check-deploy")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (anchors and merge keys resolved)."""
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(COMPOSE_FILE)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services by name."""
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="session")
def mc_binary() -> Path:
    """The mc client at the version deploy/minio.Dockerfile pins, built once into TOOLS."""
    version = _dockerfile_arg(MINIO_DOCKERFILE, "MC_VERSION")
    target = TOOLS / f"mc-{version[-12:]}" / "mc"
    if not target.exists():
        staging = target.parent.with_name(target.parent.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        env = dict(os.environ, GOBIN=str(staging), GOFLAGS="-trimpath", CGO_ENABLED="0")
        subprocess.run(
            [_go(), "install", f"github.com/minio/mc@{version}"],
            env=env,
            check=True,
            capture_output=True,
            timeout=1500,
        )
        staging.rename(target.parent)
    return target


@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """A copy of the files scripts/check-deploy reads, to break one at a time."""
    root = tmp_path / "repo"
    for name in ("docker-compose.yml", "Dockerfile", ".hadolint.yaml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "scripts", root / "scripts")
    shutil.copytree(ROOT / "deploy", root / "deploy", ignore=shutil.ignore_patterns("secrets"))
    return root


@pytest.fixture
def init_secrets(tmp_path: Path) -> Callable[[], Path]:
    """Return a callable that runs deploy/init-secrets into a folder and returns it."""
    folder = tmp_path / "secrets"

    def _init_secrets() -> Path:
        subprocess.run(
            [str(ROOT / "deploy" / "init-secrets"), str(folder)],
            check=True,
            capture_output=True,
            text=True,
        )
        return folder

    return _init_secrets


@pytest.fixture
def redis_with_password(tmp_path: Path, init_secrets: Callable[[], Path]) -> Iterator[int]:
    """A real Redis started, as in compose, from the redis_conf that init-secrets wrote."""
    folder = init_secrets()
    port = free_port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            str(folder / "redis_conf"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
                ).stdout.strip()
                in {"PONG", "NOAUTH Authentication required."}
            ),
            "redis",
        )
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- scripts/check-deploy ------------------------------------------------------------------


@pytest.mark.timeout(1800)
def test_check_deploy_passes() -> None:
    """Schema, compose linter, hadolint, Caddy and ShellCheck all pass on the real files."""
    result = _run_check_deploy(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for label in (
        "identical to dclint@",
        "validates against the Compose Specification schema",
        "passes dclint",
        "pass hadolint",
        "deploy/Caddyfile is valid",
        "deploy/Caddyfile is formatted",
        "pass shellcheck",
    ):
        assert label in result.stdout, label
    assert re.search(r"all \d+ checks passed", result.stdout)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("path", "old", "new", "failing_check"),
    [
        (
            "deploy/compose-spec.schema.json",
            '"title": "Compose Specification"',
            '"title": "Compose Spec"',
            "differs from",
        ),
        (
            "docker-compose.yml",
            "    shm_size: 128mb\n",
            "    shm_size: 128mb\n    no_such_key: true\n",
            "Compose Specification schema",
        ),
        ("docker-compose.yml", "redis:8.2.2-bookworm", "redis:latest", "dclint"),
        (
            "Dockerfile",
            "RUN pip install --no-cache-dir uv==0.13.8",
            "RUN pip install uv",
            "hadolint",
        ),
        ("deploy/Caddyfile", "lb_policy least_conn", "lb_policy most_wanted", "is valid"),
        ("deploy/Caddyfile", "\theader -Server", "    header -Server", "is formatted"),
        ("deploy/init-secrets", 'mkdir -p "$dir"', "mkdir -p $dir", "shellcheck"),
    ],
)
def test_check_deploy_fails_on_a_fault(
    deploy_copy: Path, path: str, old: str, new: str, failing_check: str
) -> None:
    """Each check catches its kind of fault and makes the script exit non-zero."""
    target = deploy_copy / path
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = _run_check_deploy(deploy_copy)
    assert result.returncode != 0
    fail_lines = [line for line in result.stderr.splitlines() if "FAIL" in line]
    assert fail_lines and failing_check in fail_lines[-1], result.stdout + result.stderr


# -- docker-compose.yml ----------------------------------------------------------------------


def test_every_image_is_pinned_to_an_exact_version(services: dict[str, dict[str, Any]]) -> None:
    """No latest, no bare major: every service names a full version (or the MinIO commit)."""
    for name, service in services.items():
        assert "image" in service, name
        assert _tag_is_exact(service["image"]), f"{name}: {service['image']}"


def test_images_built_here_are_never_pulled(services: dict[str, dict[str, Any]]) -> None:
    """A service that builds its image never asks a registry for that name."""
    built = {name: s for name, s in services.items() if "build" in s}
    nodes = {"minio1", "minio2", "minio3", "minio4"}
    assert (
        set(built)
        == {"app", "events", "keys", "migrate", "minio", "minio-setup", "witness"} | nodes
    )
    for name, service in built.items():
        assert service["pull_policy"] == "never", name
        assert service["image"].startswith("localhost/"), name
    assert services["app"]["build"]["dockerfile"] == "Dockerfile"
    assert services["minio"]["build"]["dockerfile"] == "deploy/minio.Dockerfile"
    assert services["witness"]["build"]["dockerfile"] == "deploy/witness.Dockerfile"


def test_witness_image_is_the_litewitness_the_tests_run(
    services: dict[str, dict[str, Any]],
) -> None:
    """The witness image builds the litewitness version that make test and make serve run."""
    version = _dockerfile_arg(WITNESS_DOCKERFILE, "LITEWITNESS_VERSION")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"LITEWITNESS_VERSION := {version}" in makefile
    assert services["witness"]["image"].rpartition(":")[2] == version.removeprefix("v")
    assert services["witness"]["profiles"] == ["witness"]
    assert "ports" not in services["witness"]


def test_minio_image_is_the_commit_the_tests_run(services: dict[str, dict[str, Any]]) -> None:
    """Production builds the same MinIO commit and module contents as make test."""
    version = _dockerfile_arg(MINIO_DOCKERFILE, "MINIO_VERSION")
    assert version.endswith(MINIO_COMMIT[:12])
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"MINIO_VERSION := {version}" in makefile
    assert f"MINIO_COMMIT := {MINIO_COMMIT}" in makefile
    tag = services["minio"]["image"].rpartition(":")[2]
    assert MINIO_COMMIT.startswith(tag)
    binary = os.environ.get("HAVEN_MINIO_BIN")
    if binary and Path(binary).exists():
        info = subprocess.run(
            [_go(), "version", "-m", binary], capture_output=True, text=True, check=True
        ).stdout
        assert _dockerfile_arg(MINIO_DOCKERFILE, "MINIO_SUM") in info


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    """Every service that stays up is health-checked and restarted; one-shots are not."""
    for name, service in services.items():
        if name in ONE_SHOTS or "tools" in service.get("profiles", []):
            assert service["restart"] == "no", name
            assert service["healthcheck"] == {"disable": True}, name
            continue
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert {"interval", "timeout", "retries", "start_period"} <= set(check), name
        assert service["restart"] == "unless-stopped", name


def test_start_order_waits_for_health_and_one_shots(services: dict[str, dict[str, Any]]) -> None:
    """The app starts after migrations and the bucket set-up; Caddy after a healthy app."""
    expected = {
        "app": {
            "migrate": "service_completed_successfully",
            "minio-setup": "service_completed_successfully",
            "minio": "service_healthy",
            "postgres": "service_healthy",
            "redis": "service_healthy",
        },
        "caddy": {"app": "service_healthy", "events": "service_healthy"},
        "events": {
            "migrate": "service_completed_successfully",
            "postgres": "service_healthy",
            "redis": "service_healthy",
        },
        "migrate": {"postgres": "service_healthy"},
        "minio-setup": {"minio": "service_healthy"},
    }
    for name, service in services.items():
        conditions = {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        assert conditions == expected.get(name, {}), name
        for dep, condition in conditions.items():
            if condition == "service_healthy":
                assert "test" in services[dep]["healthcheck"], dep
            else:
                assert dep in ONE_SHOTS


def test_app_runs_read_only_without_privileges(services: dict[str, dict[str, Any]]) -> None:
    """The app's root filesystem is read-only, with RAM for /tmp, and it holds no capability."""
    for name in ("app", "events", "migrate", "keys", "minio", "minio-setup"):
        service = services[name]
        assert service["read_only"] is True, name
        assert any(entry.startswith("/tmp:") for entry in service["tmpfs"]), name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    assert "user" not in services["app"]  # the image's non-root USER applies


def test_app_trusts_one_proxy_and_sets_secure_cookies(services: dict[str, dict[str, Any]]) -> None:
    """Behind exactly one proxy (Caddy), with secure cookies and an https public URL."""
    env = services["app"]["environment"]
    assert env["HAVEN_PROXY_HOPS"] == "1"
    assert env["HAVEN_SECURE_COOKIES"] == "true"
    assert env["HAVEN_PUBLIC_URL"].startswith("https://${HAVEN_DOMAIN:?")
    assert env["HAVEN_KEYS_DIR"] == KEYS_TARGET
    assert env["WEB_CONCURRENCY"] == "${WEB_CONCURRENCY:-2}"
    config = load_config(
        {"HAVEN_PROXY_HOPS": env["HAVEN_PROXY_HOPS"], "HAVEN_SECURE_COOKIES": "true"}
    )
    assert config["HAVEN_PROXY_HOPS"] == 1
    assert config["SESSION_COOKIE_NAME"].startswith("__Host-")


def test_every_app_setting_is_one_the_app_reads(services: dict[str, dict[str, Any]]) -> None:
    """No misspelt setting: each variable is read by vault/config.py or gunicorn_conf.py."""
    known = "".join(
        (ROOT / "vault" / name).read_text(encoding="utf-8")
        for name in ("config.py", "gunicorn_conf.py", "gunicorn_events.py")
    )
    for name in ("app", "events", "migrate", "keys"):
        for variable in services[name]["environment"]:
            base = variable.removesuffix("_FILE")
            assert f'"{base}"' in known, f"{name}: {variable}"


def test_secret_files_are_mounted_where_the_env_points(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Every *_FILE variable names a secret that the same service mounts."""
    for name, service in services.items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(compose["secrets"]), name
        for variable, value in (service.get("environment") or {}).items():
            if variable.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), f"{name}: {variable}"
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {variable}"


def test_no_secret_values_in_deployment_files(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Secrets come only from files under deploy/secrets/, never from a value in a file."""
    secret_word = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|_URL$")
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if secret_word.search(variable) and variable not in {
                "HAVEN_PUBLIC_URL",
                "HAVEN_MINIO_URL",
            }:
                assert variable.endswith("_FILE"), f"{name}: {variable}={value}"
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, name
        assert secret["file"] == f"${{HAVEN_SECRETS_DIR:-./deploy/secrets}}/{name}"
    credentials_in_url = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
    for path in (COMPOSE_FILE, ROOT / "deploy" / ".env.example", ROOT / "deploy" / "Caddyfile"):
        text = path.read_text(encoding="utf-8")
        assert not credentials_in_url.search(text.replace("$(cat", "")), path
    ignore = (ROOT / "deploy" / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert "*" in ignore and "!.gitignore" in ignore


def test_keyring_is_mounted_read_only_except_in_the_keys_tool(
    services: dict[str, dict[str, Any]],
) -> None:
    """The keyring is a bind mount from the host, writable only in the `keys` tool."""
    for name, service in services.items():
        mounts = [
            volume
            for volume in service.get("volumes", [])
            if isinstance(volume, dict) and volume["target"] == KEYS_TARGET
        ]
        if name not in {"app", "events", "migrate", "keys"}:
            assert not mounts, name
            continue
        (mount,) = mounts
        assert mount["type"] == "bind", name
        assert mount["source"] == "${HAVEN_KEYS_HOST_DIR:-./keys}", name
        assert mount["bind"] == {"create_host_path": False}, name
        assert mount.get("read_only", False) is (name != "keys"), name
    assert services["keys"]["profiles"] == ["tools"]
    assert services["keys"]["command"] == ["haven", "keys", "init"]


def test_caddy_is_the_only_way_in(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Only Caddy publishes ports; the state services sit on an internal network."""
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"caddy"}
    ports = {(p["target"], p["protocol"]) for p in services["caddy"]["ports"]}
    assert ports == {(80, "tcp"), (443, "tcp"), (443, "udp")}
    assert compose["networks"]["backend"] == {"internal": True}
    assert services["caddy"]["networks"] == ["edge"]
    assert set(services["app"]["networks"]) == {"backend", "edge"}
    assert set(services["events"]["networks"]) == {"backend", "edge"}
    for name in ("postgres", "redis", "minio", "minio-setup", "migrate"):
        assert services[name]["networks"] == ["backend"], name
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert "{$HAVEN_DOMAIN} {" in caddyfile
    assert re.search(r"reverse_proxy \{\s+#[^\n]*\n\s+dynamic a app 8000", caddyfile)
    assert compose["configs"]["caddyfile"] == {"file": "./deploy/Caddyfile"}


def test_named_volumes_hold_the_state(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Database, objects and certificates live in named volumes declared at the top."""
    nodes = {f"minio{n}-data{d}" for n in range(1, 5) for d in (1, 2)}
    assert (
        set(compose["volumes"])
        == {
            "caddy-config",
            "caddy-data",
            "minio-data",
            "postgres-data",
            "witness-data",
        }
        | nodes
    )
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "minio-data:/data" in services["minio"]["volumes"]
    assert "witness-data:/data" in services["witness"]["volumes"]


def test_distributed_profile_is_four_minio_nodes_with_two_drives_each(
    services: dict[str, dict[str, Any]],
) -> None:
    """The `distributed` profile: one erasure set of 4 nodes x 2 drives, parity one node."""
    nodes = {name: s for name, s in services.items() if "distributed" in s.get("profiles", [])}
    assert set(nodes) == {"minio1", "minio2", "minio3", "minio4"}
    for number, (name, node) in enumerate(sorted(nodes.items()), start=1):
        assert node["image"] == services["minio"]["image"], name
        env = node["environment"]
        assert env["MINIO_VOLUMES"] == "http://minio{1...4}:9000/data{1...2}", name
        assert env["MINIO_STORAGE_CLASS_STANDARD"] == "EC:2", name
        assert node["volumes"] == [f"minio{number}-data1:/data1", f"minio{number}-data2:/data2"]
        assert node["networks"] == {"backend": {"aliases": ["minio-cluster"]}}, name
        assert "ports" not in node, name
    # The app and the bucket set-up follow HAVEN_S3_ENDPOINT to the cluster when it is set.
    assert services["app"]["environment"]["HAVEN_S3_ENDPOINT"] == "${HAVEN_S3_ENDPOINT:-minio:9000}"
    setup_url = services["minio-setup"]["environment"]["HAVEN_MINIO_URL"]
    assert setup_url == "http://${HAVEN_S3_ENDPOINT:-minio:9000}"


# -- Dockerfiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [DOCKERFILE, MINIO_DOCKERFILE, WITNESS_DOCKERFILE], ids=lambda p: p.name
)
def test_base_images_use_exact_tags(path: Path) -> None:
    """Every FROM names a full version of a Docker Hub image, or an earlier stage."""
    stages: set[str] = set()
    for instruction, args in _dockerfile(path):
        if instruction != "FROM":
            continue
        image, _, alias = args.partition(" AS ")
        if image not in stages:
            assert _tag_is_exact(image), f"{path.name}: {image}"
        if alias:
            stages.add(alias.strip())


def test_dockerfile_runs_gunicorn_as_non_root_with_a_health_check() -> None:
    """The final stage drops to a non-root user, checks /healthz with Python, runs gunicorn."""
    final = _final_stage(DOCKERFILE)
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    (healthcheck,) = [args for instruction, args in final if instruction == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python" and "/healthz" in command[-1]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    (cmd,) = [json.loads(args) for instruction, args in final if instruction == "CMD"]
    assert cmd[:3] == ["gunicorn", "-c", "vault/gunicorn_conf.py"]
    assert cmd[-1] == "vault.wsgi:app"
    copies = " ".join(
        args for instruction, args in _dockerfile(DOCKERFILE) if instruction == "COPY"
    )
    assert "keys" not in copies and "secrets" not in copies
    minio_final = _final_stage(MINIO_DOCKERFILE)
    assert [a for i, a in minio_final if i == "USER"] == ["10002:10002"]
    assert any(i == "HEALTHCHECK" for i, _ in minio_final)


def test_dockerfile_builds_web_assets_and_installs_from_the_lock() -> None:
    """npm ci && npm run build for web/dist; uv==0.13.8 syncs uv.lock without dev tools."""
    runs = [args for instruction, args in _dockerfile(DOCKERFILE) if instruction == "RUN"]
    assert any(run.startswith("npm ci") for run in runs)
    assert any(run.startswith("npm run build") for run in runs)
    assert any("uv==0.13.8" in run for run in runs)
    assert any(run.startswith("uv sync --frozen --no-dev") for run in runs)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "COPY --from=web /src/web/dist /app/web/dist" in text


def test_build_context_leaves_keys_and_secrets_out() -> None:
    """.dockerignore is an allow-list: keys/, secrets and .env can never reach an image."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "vault",
        "web",
        "deploy/minio-setup",
    }


def test_image_health_check_passes_against_a_running_app(live_server: Any) -> None:
    """The HEALTHCHECK command exits 0 against a live app and non-zero with nothing there."""
    (healthcheck,) = [a for i, a in _final_stage(DOCKERFILE) if i == "HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    port = live_server.url.rsplit(":", 1)[1]
    for bind, expected in ((f"127.0.0.1:{port}", 0), (f"127.0.0.1:{free_port()}", 1)):
        result = subprocess.run(
            [sys.executable, "-c", command[2]],
            env=dict(os.environ, HAVEN_BIND=bind),
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == expected, bind


# -- deploy/init-secrets and deploy/minio-setup --------------------------------------------


def test_init_secrets_makes_consistent_private_files_once(
    init_secrets: Callable[[], Path], compose: dict[str, Any]
) -> None:
    """One file per compose secret, 0444 in a 0700 folder; a second run changes nothing."""
    folder = init_secrets()
    assert {path.name for path in folder.iterdir()} == set(compose["secrets"])
    assert folder.stat().st_mode & 0o777 == 0o700
    values = {path.name: path.read_text(encoding="utf-8").strip() for path in folder.iterdir()}
    assert all(path.stat().st_mode & 0o777 == 0o444 for path in folder.iterdir())
    password = values["postgres_password"]
    assert re.fullmatch(r"[0-9a-f]{64}", password)
    assert values["database_url"] == f"postgresql://haven:{password}@postgres:5432/haven"
    redis_password = values["redis_conf"].removeprefix("requirepass ")
    assert values["redis_url"] == f"redis://:{redis_password}@redis:6379/0"
    assert len(set(values.values())) == len(values)
    init_secrets()
    again = {path.name: path.read_text(encoding="utf-8").strip() for path in folder.iterdir()}
    assert again == values


def test_app_reads_the_generated_secret_files(init_secrets: Callable[[], Path]) -> None:
    """The *_FILE variables of the compose file load the generated files as settings."""
    folder = init_secrets()
    config = load_config(
        {
            "HAVEN_DATABASE_URL_FILE": str(folder / "database_url"),
            "HAVEN_REDIS_URL_FILE": str(folder / "redis_url"),
            "HAVEN_S3_ACCESS_KEY_FILE": str(folder / "s3_access_key"),
            "HAVEN_S3_SECRET_KEY_FILE": str(folder / "s3_secret_key"),
        }
    )
    url = (folder / "database_url").read_text(encoding="utf-8").strip()
    assert config["HAVEN_DATABASE_URL"] == url.replace("postgresql://", "postgresql+psycopg://")
    assert config["RATELIMIT_STORAGE_URI"].startswith("redis://:")
    assert config["HAVEN_S3_ACCESS_KEY"] == "haven-app"


def test_redis_health_check_and_limiter_use_the_generated_password(
    redis_with_password: int,
    init_secrets: Callable[[], Path],
    services: dict[str, dict[str, Any]],
) -> None:
    """Redis started from redis_conf refuses strangers; its health check and the app get in."""
    folder = init_secrets()
    port = redis_with_password
    test = services["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    shell = (
        test[1]
        .replace("$$", "$")
        .replace("/run/secrets/redis_conf", str(folder / "redis_conf"))
        .replace("redis-cli ping", f"redis-cli -p {port} ping")
    )
    assert subprocess.run(["sh", "-c", shell], timeout=30).returncode == 0
    stranger = shell.replace(f"-p {port}", f"-p {port} --no-auth-warning -a wrong")
    assert subprocess.run(["sh", "-c", stranger], timeout=30).returncode != 0
    url = (folder / "redis_url").read_text(encoding="utf-8").strip()
    storage = storage_from_string(url.replace("@redis:6379", f"@127.0.0.1:{port}"))
    assert storage.check()


@pytest.mark.timeout(1800)
def test_minio_setup_gives_the_app_its_bucket_and_nothing_else(
    minio: MinioServer, mc_binary: Path, tmp_path: Path
) -> None:
    """deploy/minio-setup, run twice, leaves a bucket the app's own user can use, alone."""
    info = subprocess.run(
        [_go(), "version", "-m", str(mc_binary)], capture_output=True, text=True, check=True
    ).stdout
    assert _dockerfile_arg(MINIO_DOCKERFILE, "MC_SUM") in info
    folder = tmp_path / "secrets"
    folder.mkdir()
    app_user = f"haven-app-{secrets.token_hex(4)}"
    app_secret = secrets.token_hex(32)
    for name, value in {
        "minio_root_user": minio.access_key,
        "minio_root_password": minio.secret_key,
        "s3_access_key": app_user,
        "s3_secret_key": app_secret,
    }.items():
        (folder / name).write_text(value + "\n", encoding="utf-8")
    bucket = f"deploy-{secrets.token_hex(4)}"
    env = dict(
        os.environ,
        PATH=f"{mc_binary.parent}:{os.environ['PATH']}",
        HAVEN_SECRETS_DIR=str(folder),
        HAVEN_MINIO_URL=f"http://127.0.0.1:{minio.port}",
        HAVEN_S3_BUCKET=bucket,
        TMPDIR=str(tmp_path),
    )
    for _ in range(2):
        result = subprocess.run(
            ["sh", str(ROOT / "deploy" / "minio-setup")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert app_secret not in result.stdout + result.stderr

    # Every call Haven makes: multipart upload, ranged read, size, listing, delete, abort.
    store = ObjectStore(f"127.0.0.1:{minio.port}", app_user, app_secret, bucket)
    store.ensure_bucket()
    store.ping()
    payload = secrets.token_bytes(1000)
    upload = store.create_upload("object")
    assert [u.upload_id for u in store.list_uploads("object")] == [upload]
    etag = store.upload_part("object", upload, 1, [payload], len(payload))
    store.complete_upload("object", upload, [(1, etag)])
    reader = store.open("object")
    assert b"".join(reader) == payload
    reader.close()
    assert store.size("object") == len(payload)
    assert [name for name, _ in store.list_objects("obj")] == ["object"]
    store.remove("object")
    store.abort_upload("object", store.create_upload("object"))

    # And nothing else: no new buckets, no other bucket's objects.
    with pytest.raises(S3Error):
        store.client.make_bucket(f"other-{secrets.token_hex(4)}")
    root = ObjectStore(f"127.0.0.1:{minio.port}", minio.access_key, minio.secret_key, bucket)
    other = f"other-{secrets.token_hex(4)}"
    root.client.make_bucket(other)
    with pytest.raises(S3Error):
        next(iter(store.client.list_objects(other)))


# -- docs/deploy.md ----------------------------------------------------------------------------


def test_deploy_doc_covers_the_operator_runbook() -> None:
    """docs/deploy.md has every part an operator needs, with the commands it names."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for heading in (
        "## First deploy",
        "## Upgrades",
        "## Backups",
        "## Restore",
        "## Key rotation",
        "## Scale-out",
        "### Capacity of one host",
        "## What the operator can and cannot see",
        "## Why MinIO is built from source",
    ):
        assert heading in text, heading
    for command in (
        "haven keys init",
        "haven admin invite --role admin",
        "haven backup keygen",
        "haven backup /backup/haven.backup",
        "haven backup verify",
        "haven backup keys",
        "haven restore /restore/haven.backup",
        "haven keys rotate session",
        "haven keys retire data 1",
        "haven keys rotate logsign",
        "--scale app=3",
        "MINIO_VOLUMES",
        "WEB_CONCURRENCY",
    ):
        assert command in text, command
