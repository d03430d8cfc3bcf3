"""Serving fixtures: the app on the session's trained bundle, in-process or as a real server process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]

PREDICT_KEY = "helpdesk-key-0001"
REVIEW_KEY = "alice-review-key-0001"
ADMIN_KEY = "ops-admin-key-0001"
KEY_SPEC = f"helpdesk:predict:{PREDICT_KEY},alice:review:{REVIEW_KEY},ops:admin:{ADMIN_KEY}"
PREDICT = {"Authorization": f"Bearer {PREDICT_KEY}"}
ADMIN = {"X-API-Key": ADMIN_KEY}
REVIEW = {"Authorization": f"Bearer {REVIEW_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clone_bundle(
    models_dir: Path, source: Path, name: str, *, edit: Callable[[dict], None] | None = None
) -> Path:
    """A copy of ``source`` under a new name (so a new model version), its manifest optionally edited."""
    target = models_dir / name
    shutil.copytree(source, target)
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = name
    if edit is not None:
        edit(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return target


@pytest.fixture
def models_dir(trained: Any, tmp_path: Path) -> Path:
    """A private models folder holding the session's trained bundle, marked live."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copytree(trained.path, folder / trained.path.name)
    (folder / "LIVE").write_text(trained.path.name + "\n")
    return folder


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of exported encoders for the whole session (exports take seconds)."""
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture
def make_client(models_dir: Path, tmp_path: Path, onnx_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """Builds the app in-process (lifespan included) with test keys and any setting overridden."""
    from ticket_triage.config import Settings
    from ticket_triage.serving.app import create_app

    opened: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        defaults = {
            "models_dir": models_dir,
            "api_keys": KEY_SPEC,
            "api_key_file": tmp_path / "no-key-file.json",
            "onnx_dir": onnx_dir,
            "database_file": tmp_path / "review.sqlite3",
            "spool_dir": tmp_path / "spool",
            "model_watch_seconds": 0,  # tests that follow LIVE turn the watch on themselves
            # spaCy in this process: the worker process costs ~5 s to start and ~1 s to stop per app, and
            # dozens of tests build one. The worker keeps its own tests (test_entity_worker.py, the
            # CLI-agreement test in test_api_predict.py) and every real-server test, which runs the defaults.
            "entity_process": False,
        }
        settings = Settings(**{**defaults, **overrides})
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


class ServerProcess:
    """``triage serve`` in its own process, as an operator would run it."""

    def __init__(self, models_dir: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {
            **os.environ,
            "TRIAGE_API_KEYS": KEY_SPEC,
            "TRIAGE_ONNX_DIR": str(log_path.parent / "onnx"),
            "TRIAGE_DATABASE_FILE": str(log_path.parent / "review.sqlite3"),
            "TRIAGE_SPOOL_DIR": str(log_path.parent / "spool"),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticket_triage.cli",
                "serve",
                "--model",
                str(models_dir),
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@contextmanager
def running_server(models_dir: Path, log_path: Path, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(models_dir, env, log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def shared() -> Iterator[tuple[redis.Redis, str]]:
    """A sync client on the shared Redis and a model version nobody else uses; its keys go at teardown."""
    from ticket_triage.serving.cache import KEY_PREFIX

    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the shared Redis on 127.0.0.1:6379 is not answering: {exc}")
    version = f"test-{uuid.uuid4().hex}"
    yield client, version
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}:{version}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def make_writer(
    engine: Any,
    spool_dir: Path,
    *,
    metrics: Any = None,
    prepare: Callable[[], None] | None = None,
    retention_days: int = 30,
) -> Any:
    """A durable writer with small batches and quick retries, on a real engine, store and spool."""
    from ticket_triage.audit import DurableWriter
    from ticket_triage.audit.spool import Spool
    from ticket_triage.review import ReviewStore

    return DurableWriter(
        engine,
        ReviewStore(engine, lease_seconds=60),
        Spool(spool_dir),
        batch_size=50,
        flush_seconds=0.02,
        queue_max=10_000,
        retry_seconds=0.05,
        retention_days=retention_days,
        metrics=metrics,
        prepare=prepare,
    )


class PrivateRedis:
    """A throwaway ``redis-server`` on a fixed port that a test may kill, restart or freeze."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
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
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"private redis-server on port {self.port} exited with {self.proc.returncode}")
            try:
                with self.client() as client:
                    if client.ping():
                        return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"private redis-server on port {self.port} did not answer PING")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=0.5)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        server.proc.kill()  # SIGKILL also ends a frozen (SIGSTOPped) server
        server.proc.wait(timeout=10)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free port that a test may stop and
    restart. PostgreSQL refuses to run as root, so when the tests are root it runs as ``postgres``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="triage-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def cleanup(self) -> None:
        subprocess.run(
            [*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}")
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.cleanup()
