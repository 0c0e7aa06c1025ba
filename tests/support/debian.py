"""Debian packages some tests need, installed once per run with apt-get when missing.

On a developer's machine a missing package skips the tests that need it. In CI
(``CI=true``) those tests must run, so the packages are installed — and installing takes
minutes, so it must overlap the tests instead of delaying them:

* the run's first process (pytest itself, or xdist's controller) calls
  :func:`start_installing` from ``pytest_configure``: it takes the installer's file lock at
  once and runs one ``apt-get`` for everything missing in a background thread;
* a test that needs a package calls :func:`wait_for` (any process): it waits until that
  package is installed (packages installed without their recommended ones go first, so
  PostgreSQL is ready long before Chromium) or the lock is free, then installs it itself
  if it is still missing, so a failed background install is retried and its error shown
  where the package is needed.

Every wait is bounded: apt-get waits at most :data:`LOCK_TIMEOUT` for dpkg's own lock (held
by another package manager on a fresh machine), each command runs at most
:data:`APT_TIMEOUT`, and a test waits at most :data:`WAIT_LIMIT` for another process's
install. An install that failed in one process is recorded beside the lock
(:data:`FAILED`), so other processes show its error at once instead of trying again, each
for as long: a stalled mirror fails the tests that need the package within minutes instead
of stalling the run.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: One lock file per machine: two apt-get runs at once would fail on dpkg's own lock.
LOCK = Path(tempfile.gettempdir()) / "rehearse-tests-apt.lock"
#: The error of this run's failed install, for the other processes.
FAILED = LOCK.with_suffix(".failed")
#: How long one ``apt-get`` command may take.
APT_TIMEOUT = 600
#: How long apt-get waits for dpkg's lock (another package manager running).
LOCK_TIMEOUT = 120
#: How long a test waits for another process's install before it fails.
WAIT_LIMIT = 3 * APT_TIMEOUT


@dataclass(frozen=True)
class Package:
    """A Debian package and how to tell it is installed.

    Attributes:
        name: The package's name.
        present: A glob that matches a file only once the package is installed.
        recommends: Install its recommended packages too (Chromium's fonts).
    """

    name: str
    present: str
    recommends: bool = False

    def installed(self) -> bool:
        """Whether a file of the package is on disk and, where dpkg is, dpkg has finished
        installing it (its files are unpacked before it and what it needs are set up)."""
        if not glob.glob(self.present):
            return False
        if shutil.which("dpkg-query") is None:
            return True
        status = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", self.name],
                                capture_output=True, text=True, check=False)
        return status.stdout == "installed"


#: Every Debian package the suite uses.
PACKAGES = {
    "chromium": Package("chromium", "/usr/bin/chromium", recommends=True),
    "postgresql": Package("postgresql", "/usr/lib/postgresql/*/bin/initdb"),
}
#: Seconds between looks at a package being installed by another process.
POLL = 0.5


def can_install() -> bool:
    """In CI, as root, with apt-get: the only place tests install system packages."""
    return (os.environ.get("CI") == "true" and shutil.which("apt-get") is not None
            and os.geteuid() == 0)


def start_installing() -> None:
    """Install every missing package in the background (CI only; no-op elsewhere)."""
    missing = [package for package in PACKAGES.values() if not package.installed()]
    if not missing or not can_install():
        return
    FAILED.unlink(missing_ok=True)
    lock = _locked()
    thread = threading.Thread(target=_install_holding, args=(lock, missing),
                              name="apt-get", daemon=True)
    thread.start()


def wait_for(name: str) -> bool:
    """Wait for a background install, install the package if still missing (CI only).

    Returns:
        Whether the package is installed now.

    Raises:
        subprocess.CalledProcessError: apt-get failed (its output is in the error).
        subprocess.TimeoutExpired: an apt-get command took longer than :data:`APT_TIMEOUT`.
        RuntimeError: another process's install failed, or took longer than
            :data:`WAIT_LIMIT`.
    """
    package = PACKAGES[name]
    if package.installed() or not can_install():
        return package.installed()
    deadline = time.monotonic() + WAIT_LIMIT
    lock = LOCK.open("a")
    try:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # another process installs: this package may come first
                if package.installed():
                    return True
                if time.monotonic() > deadline:
                    raise RuntimeError(f"apt-get for {name} still running after "
                                       f"{WAIT_LIMIT} s in another process") from None
                time.sleep(POLL)
        if FAILED.exists() and not package.installed():
            raise RuntimeError(f"installing {name} failed in another test process:\n"
                               + FAILED.read_text(encoding="utf-8", errors="replace"))
        _install_or_record([package])
    finally:
        lock.close()
    return package.installed()


def _locked() -> IO[str]:
    lock = LOCK.open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _install_holding(lock: IO[str], packages: list[Package]) -> None:
    try:
        _install_or_record(packages)
    except (OSError, subprocess.SubprocessError):
        pass  # recorded: wait_for() shows it where the package is needed
    finally:
        lock.close()


def _install_or_record(packages: list[Package]) -> None:
    """Install `packages`; on failure, record the error in :data:`FAILED` and re-raise."""
    try:
        _install(packages)
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "stderr", None) or b""
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        FAILED.write_text(f"{error}\n{text[-4000:]}", encoding="utf-8")
        raise


def _install(packages: list[Package]) -> None:
    missing = [package for package in packages if not package.installed()]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = f"DPkg::Lock::Timeout={LOCK_TIMEOUT}"
    commands = [["apt-get", "-o", wait, "update", "-qq"]]
    plain = [package.name for package in missing if not package.recommends]
    if plain:
        commands.append(["apt-get", "-o", wait, "install", "-y", "-qq",
                         "--no-install-recommends", *plain])
    full = [package.name for package in missing if package.recommends]
    if full:
        commands.append(["apt-get", "-o", wait, "install", "-y", "-qq", *full])
    for command in commands:
        subprocess.run(command, env=env, check=True, timeout=APT_TIMEOUT, capture_output=True)
