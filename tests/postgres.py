"""A throwaway PostgreSQL server for tests (used by the `postgres_url` fixture in tests/conftest.py).

`postgres_session()` yields an SQLAlchemy URL, `postgresql+psycopg2://postgres@127.0.0.1:PORT/nasengine_test`,
of a database on a server of its own: a fresh cluster in a temporary directory (initdb, trust auth, TCP on
127.0.0.1 only, fsync off), started with pg_ctl on a free port and stopped and deleted afterwards. The server
binaries come from /usr/lib/postgresql/*/bin (Debian's `postgresql` package), $NASENGINE_TEST_PG_BIN or PATH.
PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system user.

`NASENGINE_TEST_POSTGRES_URL=postgresql+psycopg2://user:pw@host:port/db` uses that server instead (the tests
then create studies and, through `create_database`, databases there). When no server can run (no binaries, no
driver, no `postgres` user under root, the server fails to start) the tests skip with a one-line reason, or
fail with it when `NASENGINE_REQUIRE_POSTGRES=1` or `NASENGINE_REQUIRE_ALL=1` (CI sets it, so a broken set-up
cannot pass as skips).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from tests import requirements

URL_ENV = "NASENGINE_TEST_POSTGRES_URL"
REQUIRE_ENV = "NASENGINE_REQUIRE_POSTGRES"
BIN_ENV = "NASENGINE_TEST_PG_BIN"
DATABASE = "nasengine_test"
SUPERUSER = "postgres"
INSTALL_HINT = "apt-get install -y postgresql"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can run here; the message is the one-line reason."""


def unavailable(reason: str) -> None:
    """Skip the test with `reason`, or fail with it when $NASENGINE_REQUIRE_POSTGRES or $NASENGINE_REQUIRE_ALL
    is set."""
    requirements.unavailable(f"PostgreSQL: {reason}", REQUIRE_ENV)


def _version_key(path: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[./]", path) if p)


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: $NASENGINE_TEST_PG_BIN, the newest Debian install, or PATH."""
    candidates = []
    if os.environ.get(BIN_ENV):
        candidates.append(os.environ[BIN_ENV])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates += ["/usr/local/pgsql/bin"]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(os.path.dirname(on_path))
    for d in candidates:
        if all(os.access(os.path.join(d, exe), os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    raise PostgresUnavailable(f"PostgreSQL server binaries not found ({INSTALL_HINT})")


def require_driver() -> None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise PostgresUnavailable("psycopg2 not installed (pip install -e '.[postgres]')") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_line(text: str) -> str:
    """The line that says why: the last FATAL/ERROR/PANIC line of a server log or tool output, else the last."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.search(r"\b(FATAL|PANIC|ERROR|error):", ln)]
    line = (errors or lines or ["no output"])[-1]
    return re.sub(r"^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[\d+\] ", "", line)  # drop the log's timestamp/pid


class PostgresServer:
    """One throwaway cluster; `start()` returns the superuser URL of its `postgres` database."""

    def __init__(self, bin_dir: Path | None = None):
        self.bin_dir = bin_dir or find_bin_dir()
        self.run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' system user to run the server as") from None
        self.base: Path | None = None
        self.port: int | None = None
        self.started = False

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.run_as is not None:  # drop root: the server (forked by pg_ctl) inherits these ids
            kwargs = dict(user=self.run_as.pw_uid, group=self.run_as.pw_gid, extra_groups=[])
        env = dict(os.environ, LC_ALL="C", LANG="C")
        try:
            return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], cwd=self.base, env=env, timeout=timeout,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, **kwargs)
        except (OSError, subprocess.SubprocessError) as e:
            raise PostgresUnavailable(f"{args[0]} failed: {e}") from e

    def start(self, attempts: int = 3) -> str:
        self.base = Path(tempfile.mkdtemp(prefix="nasengine-pg-"))
        atexit.register(self.stop)
        socket_dir = self.base / "sock"
        socket_dir.mkdir()
        if self.run_as is not None:
            for p in (self.base, socket_dir):
                os.chown(p, self.run_as.pw_uid, self.run_as.pw_gid)
        r = self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                      "--no-locale", "--no-sync")
        if r.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {_last_line(r.stderr + r.stdout)}")
        log = self.base / "server.log"
        for _ in range(attempts):  # another process may take the free port before the server binds it
            self.port = _free_port()
            # pg_ctl hands -o to /bin/sh, hence the quoting
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                    f"-c unix_socket_directories={shlex.quote(str(socket_dir))} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
            r = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60",
                          "-o", opts, "start")
            if r.returncode == 0:
                self.started = True
                return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
        tail = _last_line(log.read_text(errors="replace")) if log.exists() else _last_line(r.stderr + r.stdout)
        raise PostgresUnavailable(f"PostgreSQL server did not start: {tail}")

    def stop(self) -> None:
        if self.base is None:
            return
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
            except PostgresUnavailable:
                pass
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
        atexit.unregister(self.stop)


def create_database(url: str, name: str) -> str:
    """Create database `name` (dropping an old one) on the server of `url`; return the URL of the new database."""
    import sqlalchemy as sa

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    base = sa.engine.make_url(url)
    engine = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def postgres_session() -> Iterator[str]:
    """The body of the `postgres_url` fixture: yield a database URL, skipping when no server can run."""
    override = os.environ.get(URL_ENV)
    if override:
        yield override
        return
    server = None
    try:
        require_driver()
        server = PostgresServer()
        url = create_database(server.start(), DATABASE)
    except PostgresUnavailable as e:
        if server is not None:
            server.stop()
        unavailable(str(e))
    except BaseException:
        if server is not None:
            server.stop()
        raise
    try:
        yield url
    finally:
        server.stop()
