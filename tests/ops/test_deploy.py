"""Deployment files: the compose file, Dockerfile and Procfile are consistent with the app, and gunicorn.conf.py
loads in gunicorn and serves correct metrics with several workers.

Docker itself cannot run here, so the compose file is checked by parsing it.
"""

from __future__ import annotations

import concurrent.futures
import glob
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from portal.config import load_settings
from portal.services.servers import parse_version, predates_multi_session
from tests.helpers import closed_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
PORTAL_SERVICES = ("migrate", "web", "worker", "scheduler")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service: dict[str, Any]) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def _resolve(value: str, sample: dict[str, str]) -> str:
    """${NAME}, ${NAME:-default} and ${NAME:?message} as compose fills them in from `sample`."""

    def fill(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in sample:
            return sample[name]
        if op == ":-":
            return arg
        raise AssertionError(f"{name} has no value and no default")

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", fill, value)


SAMPLE_ENV = {
    "SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "pg-password",
    "WAHA_API_KEY": "waha-api-key-0123456789",
    "WAHA_WEBHOOK_SECRET": "webhook-secret-0123456789",
    "SMTP_URL": "smtp://mailer:pw@mail.example.com:587",
}


def test_compose_has_every_part_of_the_installation(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "waha", "migrate", "web", "worker", "scheduler"} <= set(compose["services"])


def test_compose_pins_every_image(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        if name in PORTAL_SERVICES:
            assert service.get("build") == ".", name
            continue
        assert repository and tag and tag != "latest" and parse_version(tag.split("-")[0]), (name, image)


def test_compose_waha_is_2026_6_1_or_later_with_gows(compose: dict[str, Any]) -> None:
    for name in ("waha", "waha2"):
        service = compose["services"][name]
        assert service["image"].startswith("devlikeapro/waha:")
        assert not predates_multi_session(service["image"].split(":")[1])
        assert service["environment"]["WHATSAPP_DEFAULT_ENGINE"] == "GOWS"


def test_compose_wires_the_waha_api_key_and_webhook_back_to_the_portal(compose: dict[str, Any]) -> None:
    services = compose["services"]
    waha_env = services["waha"]["environment"]
    for name in PORTAL_SERVICES:
        env = services[name]["environment"]
        assert env["WAHA_API_KEY"] == waha_env["WAHA_API_KEY"], name
        base = urlparse(env["WAHA_BASE_URL"])
        assert (base.hostname, base.port) == ("waha", 3000)
        public = urlparse(_resolve(env["PUBLIC_BASE_URL"], SAMPLE_ENV))
        assert (public.hostname, public.port) == ("web", 8000)  # where WAHA posts /webhooks/waha
        assert env["WAHA_WEBHOOK_SECRET"].startswith("${WAHA_WEBHOOK_SECRET:?")
        assert urlparse(_resolve(env["DATABASE_URL"], SAMPLE_ENV)).hostname == "postgres"
        assert urlparse(env["REDIS_URL"]).hostname == "redis"


@pytest.mark.parametrize("service", PORTAL_SERVICES)
def test_compose_environment_passes_production_validation(compose: dict[str, Any], service: str) -> None:
    env = {k: _resolve(str(v), SAMPLE_ENV) for k, v in compose["services"][service]["environment"].items()}

    values, problems = load_settings(env)

    assert problems == []
    assert values["PORTAL_ENV"] == "production"


def test_compose_refuses_to_start_without_the_secrets(compose: dict[str, Any]) -> None:
    env = compose["services"]["web"]["environment"]
    for name in ("SECRET_KEY", "WAHA_API_KEY", "WAHA_WEBHOOK_SECRET"):
        with pytest.raises(AssertionError, match=name):
            _resolve(env[name], {})


def test_compose_runs_the_right_process_in_each_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _command(services["web"]) == "gunicorn -c gunicorn.conf.py wsgi:app"
    assert _command(services["worker"]) == "flask --app wsgi worker"
    assert _command(services["scheduler"]) == "flask --app wsgi scheduler"
    assert "flask --app wsgi db upgrade" in _command(services["migrate"])
    assert services["scheduler"]["deploy"]["replicas"] == 1
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_checks_the_health_of_every_long_running_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "waha", "web"):
        check = services[name]["healthcheck"]
        assert check["test"] and not check.get("disable"), name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "/ping" in " ".join(services["waha"]["healthcheck"]["test"])


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "--help"],
        ["scheduler", "--help"],
        ["db", "upgrade", "--help"],
        ["fleet", "check", "--help"],
        ["servers", "add", "--help"],
    ],
)
def test_commands_named_in_the_deployment_files_exist(app: Any, args: list[str]) -> None:
    result = app.test_cli_runner().invoke(args=args)

    assert result.exit_code == 0, result.output


def test_procfile_names_web_worker_scheduler_and_release() -> None:
    entries = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert entries == {
        "web": "gunicorn -c gunicorn.conf.py wsgi:app",
        "worker": "flask --app wsgi worker",
        "scheduler": "flask --app wsgi scheduler",
        "release": "flask --app wsgi db upgrade",
    }


def test_dockerfile_builds_in_stages_and_runs_as_a_user_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)

    assert stages == ["builder", "runtime"]
    builder, runtime = text.split("AS runtime")
    assert "scripts/fetch_assets.py" in builder and "pip install" in builder
    assert "--from=builder /opt/venv" in runtime
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", runtime, flags=re.MULTILINE)
    assert '"gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"' in runtime


def test_dockerfile_copies_only_files_that_exist() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources = [part for part in shlex.split(line)[1:-1] if not part.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), source


def _gunicorn_config(path: Path) -> Any:
    from gunicorn.app.base import Application

    class ConfigOnly(Application):
        def init(self, parser: Any, opts: Any, args: Any) -> None:
            return None

        def load_config(self) -> None:
            self.load_config_from_file(str(path))

        def load(self) -> Any:
            raise AssertionError("not serving")

    return ConfigOnly().cfg


def test_gunicorn_config_loads_with_threads_and_workers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("WEB_CONCURRENCY", "5")
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    monkeypatch.setenv("PORT", "9123")

    cfg = _gunicorn_config(ROOT / "gunicorn.conf.py")

    assert cfg.worker_class_str == "gthread"
    assert cfg.workers == 5 and cfg.threads == 4
    assert cfg.bind == ["0.0.0.0:9123"]
    assert cfg.timeout > 0 and cfg.graceful_timeout > 0
    assert cfg.child_exit.__module__ == "__config__" and cfg.on_starting.__module__ == "__config__"


def test_gunicorn_child_exit_drops_the_live_gauges_of_a_dead_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    cfg = _gunicorn_config(ROOT / "gunicorn.conf.py")
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")

    class DeadWorker:
        pid = 4242

    cfg.child_exit(None, DeadWorker())

    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db"]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_add_up_across_gunicorn_workers(_environ: dict[str, str], sim: Any, tmp_path: Path) -> None:
    port = closed_port()
    metrics_dir = tmp_path / "metrics"
    env = dict(
        _environ,
        WAHA_BASE_URL=sim.url,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PATH=os.environ["PATH"],
    )
    gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    return True
            except requests.RequestException:  # refused, or accepted by the socket before a worker is up
                pass
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            return False

        wait_for(healthy, timeout=30, interval=0.1)  # gunicorn starts

        # The first answered poll above counts; a poll that timed out may still be answered later, so read the
        # starting point from the server rather than assume it.
        start_text = requests.get(base + "/metrics", timeout=5).text
        sent = _samples(start_text).get(
            ("portal_http_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200"))), 0.0
        )
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(30):  # until both workers have answered some
                statuses = list(pool.map(lambda _: requests.get(base + "/healthz", timeout=5).status_code, range(40)))
                sent += len(statuses)
                assert set(statuses) == {200}
                if len(glob.glob(str(metrics_dir / "counter_*.db"))) >= 2:
                    break
        assert len(glob.glob(str(metrics_dir / "counter_*.db"))) >= 2, "only one worker answered"

        totals = set()
        for _ in range(8):  # scrapes land on either worker; every one must see all requests
            text = requests.get(base + "/metrics", timeout=5).text
            totals.add(
                _samples(text).get(
                    ("portal_http_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200")))
                )
            )
        assert totals == {float(sent)}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_env_example_names_every_variable_compose_requires() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }

    assert required and required <= example
