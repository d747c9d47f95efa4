"""A throwaway PostgreSQL cluster for tests, from the installed Debian server binaries.

`postgres_url` (session scope) yields the SQLAlchemy URL of a fresh cluster on 127.0.0.1, free port;
`postgres_database` a fresh database in it; `store_url` a fresh store URL on SQLite and PostgreSQL.
Without the binaries the fixture skips, or FAILS when `FHEVM_DAGSTER_REQUIRE_POSTGRES=1` (CI).
tests/conftest.py registers them as a plugin: one cluster for the whole session, and a test using
them is marked `postgres` (tiers.py); a test without that marker cannot start the cluster.
`initdb` refuses to run as root, so as root the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiers import require

REQUIRE_ENV = "FHEVM_DAGSTER_REQUIRE_POSTGRES"


def _bin_dir() -> Path | None:
    override = os.environ.get("FHEVM_DAGSTER_PG_BIN")
    candidates = [override] if override else sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1]
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL required ({REQUIRE_ENV}=1) but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_db_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the `postgres` database of a fresh, trust-authenticated cluster."""
    require("postgres", "starts PostgreSQL")
    bin_dir = _bin_dir()
    if bin_dir is None:
        _unavailable(
            "no initdb/pg_ctl under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
        raise AssertionError("unreachable")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _unavailable("running as root without runuser to switch to the postgres user")
    root = Path(tempfile.mkdtemp(prefix="fhevm-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    log = root / "server.log"

    def run(*cmd: str) -> None:
        proc = subprocess.run(_as_db_user(list(cmd)), capture_output=True, text=True)
        if proc.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(
                f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}\n{server_log}",
                pytrace=False,
            )

    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c full_page_writes=off"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_db_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database in the session cluster (isolation between tests)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    url: str = request.getfixturevalue("postgres_database")
    return url
