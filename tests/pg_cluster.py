"""Throwaway PostgreSQL clusters for tests that stop, restart or reconfigure a server.

The shared server (LEDGER_TEST_DATABASE_URL, by default the machine's own cluster) may
carry a developer's other databases, or a second test run: restarting it or editing its
pg_hba.conf breaks them. A test that needs to do such things gets a cluster of its own
instead: `initdb` into a temporary folder, its own free port on 127.0.0.1, its own
pg_hba.conf, started with `pg_ctl`, and removed afterwards.

Why not pytest-postgresql (the maintained library for this): it runs `initdb` and
`pg_ctl` as the current user, and every machine of this project (CI included) runs the
tests as root, which both programs refuse (its issues #341 and #455, closed without an
option for another OS user). Running them as the `postgres` user is the only change
needed, and it is a few lines here, so this is a small module rather than a dependency
with a workaround.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
DATABASE = "test"
# The OS user the server runs as when the tests run as root (initdb and postgres refuse
# root); Debian's postgresql package creates it.
OS_USER = "postgres"

# First match wins: the superuser logs in freely (the tests administer the cluster with
# it), every other role must give its password (scram), so "wrong password" is real.
HBA = f"""\
local all all trust
host all {SUPERUSER} 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


class ClusterUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (or no user to run them as): the caller skips."""


def find_bindir() -> Path:
    """The newest installed server binaries: Debian keeps them off PATH in
    /usr/lib/postgresql/VERSION/bin; elsewhere `initdb` is usually on PATH."""
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if (p / "bin" / "initdb").is_file()),
            key=lambda p: [int(x) if x.isdigit() else 0 for x in p.name.split(".")],
        )
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterUnavailable("no PostgreSQL server binaries (initdb) on this machine")


def free_port() -> int:
    """A port nothing listens on now. Another program may take it before the server binds
    it: `ThrowawayCluster.start` then tries another one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder, on a port of its own. Created and started
    by `create`; `close` stops it and removes the folder."""

    def __init__(self, bindir: Path, folder: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.run_as = run_as
        self.port = 0

    # -- creation ---------------------------------------------------------------------

    @classmethod
    def create(cls, password_roles: dict[str, str] | None = None) -> ThrowawayCluster:
        """initdb, start, then a database `test` and each role of `password_roles` (name to
        password), allowed to create schemas in `test`."""
        bindir = find_bindir()
        run_as = OS_USER if os.geteuid() == 0 else None
        if run_as is not None:
            try:
                pwd.getpwnam(run_as)
            except KeyError as missing:
                raise ClusterUnavailable(f"running as root and no {run_as!r} user to run "
                                         "PostgreSQL as") from missing
        folder = Path(tempfile.mkdtemp(prefix="tradeledger-pg-", dir=_temp_root(run_as)))
        cluster = cls(bindir, folder, run_as)
        try:
            cluster._give_to_server_user(folder)
            cluster._initdb()
            cluster.start()
            with cluster.connect() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                for role, password in (password_roles or {}).items():
                    cluster.create_password_role(role, password, conn)
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _initdb(self) -> None:
        # --no-sync and fsync=off (at start): the cluster is thrown away, so there is
        # nothing to keep safe from a power cut, and the fault tests stay fast.
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        hba = self.data / "pg_hba.conf"
        hba.write_text(HBA)
        self._give_to_server_user(hba)

    def _give_to_server_user(self, path: Path) -> None:
        """What the tests (root) write, the server's user must own: the folder initdb
        writes into, the pg_hba.conf the server reads."""
        if self.run_as is not None:
            owner = pwd.getpwnam(self.run_as)
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def create_password_role(self, role: str, password: str,
                             conn: psycopg.Connection | None = None) -> None:
        """A role that logs in with `password` only (see HBA) and may create schemas in the
        database `test`."""
        def create(admin: psycopg.Connection) -> None:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            admin.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(DATABASE), sql.Identifier(role)))

        if conn is not None:
            create(conn)
            return
        with self.connect() as admin:
            create(admin)

    # -- the server -------------------------------------------------------------------

    def _options(self) -> str:
        # Its own socket folder (not /var/run/postgresql, the machine cluster's), TCP on
        # 127.0.0.1 only.
        # pg_ctl hands these to a shell: quote the folder.
        return (f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c unix_socket_directories={shlex.quote(str(self.folder))}")

    def start(self) -> None:
        """Start the server; on the first start, on a free port (another one if something
        took it meanwhile), later on the same port, as the URLs handed out say."""
        attempts = 1 if self.port else 5
        for attempt in range(attempts):
            if not self.port or attempt:
                self.port = free_port()
            done = self._pg_ctl("start", "-w", "-t", "60", "-o", self._options(), check=False)
            if done.returncode == 0:
                return
        raise RuntimeError(f"the throwaway PostgreSQL did not start: {done.stderr}"
                           f"{self._log_tail()}")

    def stop(self) -> None:
        """A fast shutdown (what `pg_ctlcluster ... stop` does), waiting until it is down."""
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-w", "-t", "60", "-o", self._options())

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def close(self) -> None:
        """Stop the server if it runs (immediately: nothing in it is kept), remove the
        folder."""
        try:
            if self.data.is_dir() and self.running():
                self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "60", check=False)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- connections --------------------------------------------------------------------

    def url(self, user: str = SUPERUSER, password: str | None = None,
            database: str = DATABASE) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database=database), autocommit=True, connect_timeout=5)

    def wait_until_accepting(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- running the binaries -----------------------------------------------------------

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                         str(self.log), *args, check=check)

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if self.run_as is not None:
            # runuser (util-linux) needs no password and no login shell; `su -c` is the
            # fallback where it is missing.
            if shutil.which("runuser"):
                command = ["runuser", "-u", self.run_as, "--", *command]
            else:
                command = ["su", self.run_as, "-s", "/bin/sh", "-c", shlex.join(command)]
        # The cwd: the tests' own (often /root) is not readable by the postgres user.
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "LC_ALL": "C"})
        if check and done.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}{self._log_tail()}")
        return done

    def _log_tail(self) -> str:
        try:
            return "\nserver log:\n" + "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return ""


def _temp_root(run_as: str | None) -> str | None:
    """Where the cluster's folder goes: the usual temporary folder, unless the server runs
    as another user who cannot reach it (say TMPDIR under /root); then /tmp."""
    root = tempfile.gettempdir()
    if run_as is None or os.stat(root).st_mode & 0o001:
        return root
    return "/tmp" if os.path.isdir("/tmp") else root
