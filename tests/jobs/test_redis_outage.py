"""`flask worker` and `flask scheduler` outlive a Redis outage: they wait, log it once, and work once Redis is up.

Each test runs the real command in a subprocess against a Redis port that refuses connections, then starts a
throwaway `redis-server` on that port. The command's reconnect loop starts with a 50 ms pause instead of 500 ms
(portal.jobs.reconnect.FIRST_PAUSE_S, set before the command runs), so several reconnect attempts take a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue

from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Outage:
    """A Redis port nobody listens on, and a way to bring a real Redis up on it."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.tmp = tmp
        self.server: subprocess.Popen | None = None

    def start_redis(self) -> redis.Redis:
        self.server = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), timeout=10)
        return client

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    down = Outage(tmp_path)
    yield down
    down.stop()


FIRST_PAUSE_S = 0.05
# `flask <args>` with the reconnect loop's first pause shortened (it doubles after each failed try)
_FLASK = (
    f"from portal.jobs import reconnect; reconnect.FIRST_PAUSE_S = {FIRST_PAUSE_S}; from flask.cli import main; main()"
)
# long enough for the loop's first five tries (0.05 + 0.1 + 0.2 + 0.4 s of pauses)
SEVERAL_ATTEMPTS_S = 1.0
RQ_FIRST_RETRY_S = 1.0  # RQ's own dequeue loop tries again after 1 s, then 2, 4... (rq.worker.base)


def _command(args: list[str], environ: dict[str, str], sim: Any, redis_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, **environ, "WAHA_BASE_URL": sim.url, "FLASK_APP": "wsgi", "REDIS_URL": redis_url}
    return subprocess.Popen(
        [sys.executable, "-c", _FLASK, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _outlives_the_outage(process: subprocess.Popen, log: Path) -> None:
    """The command reports the outage (start-up takes a while on a busy machine), stays up and stays quiet."""
    wait_for(lambda: "Redis is unreachable" in log.read_text() or process.poll() is not None, timeout=60)
    time.sleep(SEVERAL_ATTEMPTS_S)
    assert process.poll() is None, log.read_text()
    assert log.read_text().count("Redis is unreachable") == 1, log.read_text()


def _outage_lines(text: str) -> int:
    return text.count("Redis is unreachable") + text.count("could not connect to Redis")


@pytest.mark.parametrize("args", [["worker"], ["worker", "--fork"]], ids=["in-process", "forking"])
def test_worker_waits_for_redis_logs_once_and_then_runs_jobs(_environ, sim, outage, tmp_path, args):
    log = tmp_path / "worker.log"
    process = _command(args, _environ, sim, outage.url, log)
    try:
        _outlives_the_outage(process, log)

        client = outage.start_redis()
        job = Queue("maintenance", connection=client).enqueue("os.getpid")
        wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=40)
        assert process.poll() is None
        # by default the job ran in the worker process itself; --fork ran it in a work horse of its own
        assert (job.return_value() == process.pid) is ("--fork" not in args)
        text = log.read_text()
        assert text.count("Redis is unreachable") == 1 and text.count("reachable again") == 1, text
    finally:
        _stop(process)


def test_worker_survives_redis_going_away_while_it_runs(_environ, sim, outage, tmp_path):
    log = tmp_path / "worker.log"
    client = outage.start_redis()
    process = _command(["worker"], _environ, sim, outage.url, log)
    try:
        first = Queue("maintenance", connection=client).enqueue("os.getcwd")
        wait_for(lambda: first.get_status(refresh=True) == "finished", timeout=60)

        outage.stop()
        wait_for(lambda: _outage_lines(log.read_text()) or process.poll() is not None, timeout=30)
        time.sleep(RQ_FIRST_RETRY_S + 0.5)  # past the next try, whoever makes it: the repeat must not be logged
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        # the outage is reported once, by our loop or by RQ's own dequeue retry (its repeats are filtered)
        assert _outage_lines(text) == 1, text

        client = outage.start_redis()  # an empty Redis: as after a restart without persistence
        second = Queue("maintenance", connection=client).enqueue("os.getcwd")
        wait_for(lambda: second.get_status(refresh=True) == "finished", timeout=60)
        assert process.poll() is None
    finally:
        _stop(process)


def test_scheduler_waits_for_redis_logs_once_and_then_schedules(_environ, sim, outage, tmp_path):
    log = tmp_path / "scheduler.log"
    process = _command(["scheduler"], _environ, sim, outage.url, log)
    try:
        _outlives_the_outage(process, log)

        client = outage.start_redis()
        wait_for(
            lambda: (
                "portal.jobs.maintenance.sync_sessions"
                in [job.func_name for job in Queue("maintenance", connection=client).jobs]
            ),
            timeout=40,
        )
        assert process.poll() is None
    finally:
        _stop(process)
