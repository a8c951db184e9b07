"""A throwaway PostgreSQL server for the `PostgresStore` tests, and a fresh database per test.

`find_binaries` looks for ``initdb``/``pg_ctl``/``postgres`` on ``PATH`` and in Debian's
``/usr/lib/postgresql/<version>/bin``; `throwaway_server` runs a cluster in a temporary
directory on 127.0.0.1 (trust authentication, fsync off: its data is thrown away) and
`fresh_database` gives each test its own database on it (or on an external server).
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["PostgresUnavailable", "find_binaries", "fresh_database", "throwaway_server"]

_BINARIES = ("initdb", "pg_ctl", "postgres")
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
_READY_TIMEOUT = 30.0  # seconds


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here (binaries or a user to run them missing)."""


def find_binaries() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version first).

    Raises:
        PostgresUnavailable: None has all three.
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        # /usr/local/bin/initdb may be a link: pg_ctl finds `postgres` next to its real path.
        candidates.append(Path(on_path).resolve().parent)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in _BINARIES):
            return directory
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in "
        "/usr/lib/postgresql/*/bin; install PostgreSQL (e.g. `apt-get install postgresql`) or "
        "set INTENTFLOW_TEST_POSTGRES_DSN to a server's DSN"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def throwaway_server(database: str = "intentflow_test") -> Iterator[str]:
    """Start a PostgreSQL cluster, create ``database`` on it, yield its DSN, then stop it.

    Raises:
        PostgresUnavailable: No binaries, or running as root without a ``postgres`` user.
        RuntimeError: The server did not start (the message holds its log).
    """
    bin_dir = find_binaries()
    run_as: dict[str, Any] = {}
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root, and PostgreSQL refuses to: no `postgres` user to run it as"
            ) from None
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="intentflow-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if owner is not None:
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def run(*args: str | Path) -> None:
        # cwd=root: the postgres user may not be allowed into our working directory.
        subprocess.run(
            [str(a) for a in args],
            check=True,
            cwd=root,
            capture_output=True,
            timeout=120,
            **run_as,
        )

    started = False
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        for attempt in range(_START_ATTEMPTS):
            port = _free_port()
            options = f"-k {sockets} -h 127.0.0.1 -p {port} -F"
            try:
                run(bin_dir / "pg_ctl", "start", "-D", data, "-l", log, "-w", "-t", "60",
                    "-o", options)  # fmt: skip
            except subprocess.CalledProcessError:
                if attempt + 1 == _START_ATTEMPTS:
                    text = log.read_text(errors="replace") if log.exists() else "(no log)"
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{text}") from None
                continue
            started = True
            break
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait_ready(admin)
        _execute(admin, f'CREATE DATABASE "{database}"')
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError):
                run(bin_dir / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w")
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(dsn: str) -> None:
    """Return once the server accepts a connection (bounded: `_READY_TIMEOUT` seconds)."""
    import psycopg

    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=5).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _execute(dsn: str, statement: str) -> None:
    import psycopg

    # CREATE/DROP DATABASE cannot run inside a transaction block: autocommit.
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement.encode())


@contextlib.contextmanager
def fresh_database(dsn: str) -> Iterator[str]:
    """Yield the DSN of a new, empty database on ``dsn``'s server; drop it afterwards.

    When ``dsn``'s user may not create databases (an external server), yield ``dsn`` itself
    with intentflow's tables dropped before and after instead.
    """
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"intentflow_test_{uuid.uuid4().hex[:12]}"
    try:
        _execute(dsn, f'CREATE DATABASE "{name}"')
    except psycopg.errors.InsufficientPrivilege:
        _drop_tables(dsn)
        try:
            yield dsn
        finally:
            _drop_tables(dsn)
        return
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        # FORCE: a store a failed test did not close still holds connections.
        _execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_tables(dsn: str) -> None:
    _execute(dsn, "DROP TABLE IF EXISTS intentflow_runs, intentflow_meta")
