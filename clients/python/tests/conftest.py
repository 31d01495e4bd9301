"""A real Herald for the suite: the repository's build (`target/debug/herald`, or
`HERALD_BIN`), started once on a free port with a SQLite database of its own."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from herald_client import Herald, HeraldOperator

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, url: str, admin_token: str, database: Path) -> None:
        self.url = url
        self.admin_token = admin_token
        self.database = database


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = Path(os.environ.get("HERALD_BIN", REPO / "target" / "debug" / "herald"))
    if not binary.exists():
        reason = f"no Herald build at {binary} (cargo build, or set HERALD_BIN)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    work = Path(tempfile.mkdtemp(prefix="herald-python-"))
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = dict(
        os.environ,
        HERALD__DATABASE__URL=f"sqlite://{work}/herald.db",
        HERALD__DATABASE__BUSY_TIMEOUT_MS="500",
        HERALD__SERVER__PORT=str(port),
        HERALD__ADMIN__TOKEN=token,
        HERALD__SEED__DEMO_TENANT="false",
        HERALD__DEMO__ENABLED="false",
        HERALD__WEBHOOKS__ALLOW_PRIVATE_TARGETS="true",
        HERALD__WEBHOOKS__RETRY_SCHEDULE_SECS="1,1,1",
    )
    log = open(work / "herald.log", "w")
    process = subprocess.Popen([str(binary), "serve"], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail(f"Herald did not start; its log: {(work / 'herald.log').read_text()}")
    yield Server(url, token, work / "herald.db")
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def operator(server: Server) -> Iterator[HeraldOperator]:
    with HeraldOperator(server.url, server.admin_token) as client:
        yield client


class Tenant:
    """A tenant of its own for a test: its slug, an API key and an HS256 signing key."""

    def __init__(self, slug: str, api_key: str, kid: str, secret: str) -> None:
        self.slug, self.api_key, self.kid, self.secret = slug, api_key, kid, secret


@pytest.fixture
def tenant(operator: HeraldOperator) -> Tenant:
    slug = f"t{uuid.uuid4().hex[:12]}"
    operator.create_tenant(slug, allowed_origins=["https://app.example.com"])
    key = operator.create_api_key(slug, name="tests")
    signing = operator.create_signing_key(slug)
    return Tenant(slug, key["key"], signing["kid"], signing["secret"])


@pytest.fixture
def herald(server: Server, tenant: Tenant) -> Iterator[Herald]:
    with Herald(server.url, tenant.api_key) as client:
        yield client
