"""A throwaway PostgreSQL cluster for the tests: initialised in a temporary folder, listening
on a free port of 127.0.0.1 only, removed afterwards.

Debian's ``postgresql`` package puts its programs in ``/usr/lib/postgresql/<version>/bin``;
:func:`find_binaries` looks there and on ``PATH``. ``initdb`` refuses to run as root, so as
root the cluster belongs to the ``postgres`` user (created by the package) or, failing that,
to a system user created for it. In CI (``CI=true``) a missing package is installed by
the run's background ``apt-get`` (:mod:`tests.support.debian`): there the tests that need
PostgreSQL must never be skipped.

Each test process (xdist's workers) starts a cluster of its own when it first needs one, on
a port from a range of its own (:func:`free_port`), so clusters and webhook servers of
different processes never meet.

Local connections are trusted, except for :data:`PASSWORD_USER`, whose password
(:data:`PASSWORD`) is checked (SCRAM), so that tests can prove the password comes from the
environment. Durability settings are the server's defaults apart from ``fsync``, off unless
asked for: the tests restart the server (a crash included) but never the machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import debian

SUPERUSER = "rehearse"
PASSWORD_USER = "rehearse_pw"
PASSWORD = "correct horse battery staple"
_FALLBACK_OWNER = "rehearse-pg"


class Unavailable(Exception):
    """PostgreSQL cannot be started here (no binaries, no user to run it as)."""


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def install_binaries() -> Path | None:
    """Wait for Debian's ``postgresql`` package (CI only: installed in the background, or
    here if that failed) and return its programs; None where nothing installs it.

    Raises:
        Unavailable: apt-get failed (its last output lines say why).
    """
    try:
        debian.wait_for("postgresql")
    except subprocess.CalledProcessError as exc:
        output = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise Unavailable(f"apt-get could not install postgresql: "
                          f"{output.strip()[-500:] or exc}") from None
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"apt-get could not install postgresql: {exc}") from None
    return find_binaries()


#: Ports of one test process: a range of its own below the kernel's ephemeral ports, chosen
#: by its xdist worker number, so that two processes never pick the same port at once (a
#: webhook server binds with SO_REUSEPORT and would share it).
_PORT_BASE, _PORTS_EACH = 20_000, 1_000
_next_port = itertools.count()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, from this process's range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = _PORT_BASE + (int(worker) if worker.isdigit() else 0) % 16 * _PORTS_EACH
    for _ in range(_PORTS_EACH):
        port = base + next(_next_port) % _PORTS_EACH
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Unavailable(f"no free port in {base}-{base + _PORTS_EACH - 1}")


@dataclass
class Cluster:
    """A running throwaway cluster.

    Attributes:
        bin_dir: Where ``pg_ctl`` lives.
        data_dir: The cluster's files.
        port: Its port on 127.0.0.1.
        owner: The system user the server runs as (None: the current user).
    """

    bin_dir: Path
    data_dir: Path
    port: int
    owner: str | None

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """A connection URL (no password in it)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        log = self.data_dir.parent / "server.log"
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(log),
                     "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 "
                           f"-c unix_socket_directories={self.data_dir.parent}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` rolls back sessions, ``immediate`` is a crash."""
        self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port."""
        self.stop(mode)
        self.start()

    def _pg_ctl(self, *args: str) -> None:
        run_as(self.owner, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args])


def run_as(owner: str | None, command: list[str]) -> None:
    """Run a command as ``owner`` (as root) or as the current user; raise on failure.

    The command runs in a session of its own, without a terminal: a server it starts must
    never touch the terminal of the tests (a background process group that does is stopped
    by the kernel, and with it the tests and everything they started).
    """
    who: dict[str, object] = {}
    if owner is not None:
        entry = pwd.getpwnam(owner)
        who = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
               "env": {**os.environ, "HOME": entry.pw_dir, "USER": owner}}
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, start_new_session=True, **who)
    if done.returncode != 0:
        raise Unavailable(f"{Path(command[0]).name} failed: "
                          f"{(done.stderr or done.stdout).strip()[-800:]}")


def _owner() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _FALLBACK_OWNER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    run_as(None, ["useradd", "--system", "--no-create-home", _FALLBACK_OWNER])
    return _FALLBACK_OWNER


@contextlib.contextmanager
def throwaway_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """Initialise and start a cluster in a temporary folder; stop and remove it afterwards.

    Args:
        durable: Keep ``fsync`` on, as in production (benchmarks); tests turn it off.

    Raises:
        Unavailable: PostgreSQL is not installed (in CI: could not be), or the cluster
            could not be set up; the message says why.
    """
    bin_dir = find_binaries() or install_binaries()
    if bin_dir is None:
        raise Unavailable("PostgreSQL's initdb and pg_ctl are not installed "
                          "(Debian: apt-get install postgresql)")
    owner = _owner()
    home = Path(tempfile.mkdtemp(prefix="rehearse-pg-"))
    data_dir = home / "data"
    password_file = home / "password"
    try:
        password_file.write_text(PASSWORD + "\n")
        if owner is not None:
            shutil.chown(home, owner)
            shutil.chown(password_file, owner)
        run_as(owner, [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER,
                       "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        (data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n")
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"fsync = {'on' if durable else 'off'}\nmax_connections = 200\n"
                       "shared_buffers = 64MB\n")
        cluster = Cluster(bin_dir, data_dir, free_port(), owner)
        cluster.start()
        try:
            _create_password_user(cluster)
            yield cluster
        finally:
            with contextlib.suppress(Unavailable):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _create_password_user(cluster: Cluster) -> None:
    import psycopg  # noqa: PLC0415  (only the tests that use PostgreSQL need it)

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                conn.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}' "
                             "CREATEDB")
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
