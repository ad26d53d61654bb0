"""A private PostgreSQL cluster for development and tests: install, initdb, configure, start, stop.

It is never Debian's default cluster: it lives in the project's data area, listens on loopback only on
its own port, and uses scram-sha-256 for every TCP login. PostgreSQL refuses to run as root, so when we
are root the server runs as the ``postgres`` OS user (via runuser) and the data area must be somewhere
that user can reach.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.kafka_node import port_free

# Clients reach the server over TCP; the socket only serves the postgres OS user (peer auth).
_PG_HBA = """\
# Written by services/postgres_node.py on every start; edits are overwritten.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 peer
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""
_INCLUDE = "include = 'selene.conf'"
# sun_path holds 108 bytes; leave room so a deep checkout does not stop the server from starting.
_MAX_SOCKET_PATH = 100


class PostgresNodeError(RuntimeError):
    """The local PostgreSQL could not be installed, initialised, started or stopped."""


def server_user() -> str | None:
    """The OS user the server must run as: ``postgres`` when we are root, else ourselves (None)."""
    return "postgres" if os.geteuid() == 0 else None


def find_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL server binaries, if any are installed."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name))

    return Path(max(found, key=version)).parent if found else None


def install_server() -> Path:
    """Install Debian's PostgreSQL server package (root only) and return its bin dir."""
    if os.geteuid() != 0:
        raise PostgresNodeError(
            "PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin/postgres); "
            "install them with `sudo apt-get install -y postgresql` or run as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise PostgresNodeError(f"{' '.join(cmd)} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresNodeError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin/postgres")
    return bin_dir


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _user_can_write(path: Path, user: str) -> bool:
    """Ask the kernel rather than reason about modes: ACLs and mount options count too."""
    cmd = ["runuser", "-u", user, "--", "test", "-w", str(path), "-a", "-x", str(path)]
    return subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL).returncode == 0


def choose_area(preferred: Path, fallback: Path, user: str | None) -> Path:
    """``preferred`` if the server's OS user can use it there, else ``fallback``.

    A checkout under /root (mode 0700) is the usual reason: ``postgres`` cannot traverse it. The
    fallback's parent is created world-traversable; the area itself stays private to that user.
    """
    for candidate in (preferred, fallback):
        candidate.parent.mkdir(parents=True, exist_ok=True)
        parent = candidate.parent.lstat()
        if stat.S_ISLNK(parent.st_mode) or parent.st_uid != os.geteuid():
            # The fallback sits in a world-writable directory under a predictable name.
            raise PostgresNodeError(f"{candidate.parent} is a symlink or owned by someone else; remove it")
        if user is not None:
            candidate.parent.chmod(candidate.parent.stat().st_mode | 0o711)
        candidate.mkdir(mode=0o700, exist_ok=True)
        _chown(candidate, user)
        if user is None or _user_can_write(candidate, user):
            return candidate
        if not any(candidate.iterdir()):
            candidate.rmdir()
    raise PostgresNodeError(f"the {user} OS user can use neither {preferred} nor {fallback}")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class PostgresNode:
    """A cluster in ``area`` (data/, run/ for the socket, postgresql.log) served on ``host:port``."""

    area: Path
    port: int
    bin_dir: Path
    user: str | None
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.area / "data"

    @property
    def socket_dir(self) -> Path:
        return self.area / "run"

    @property
    def log_path(self) -> Path:
        return self.area / "postgresql.log"

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        # cwd inside the area: the server's user may not be allowed into the caller's cwd.
        return subprocess.run(cmd, cwd=self.area, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)

    def _fail(self, what: str, result: subprocess.CompletedProcess[str]) -> PostgresNodeError:
        return PostgresNodeError(f"{what} failed:\n{result.stdout}{result.stderr}\n{self.log_tail()}")

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def initdb(self, superuser: str, password: str) -> None:
        """Create the cluster: UTF-8, C collation (locale-independent), page checksums on."""
        pwfile = self.area / ".initdb-password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        _chown(pwfile, self.user)
        try:
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", superuser, f"--pwfile={pwfile}",
                "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                "--data-checksums",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise self._fail("initdb", result)

    def config_text(self) -> str:
        socket_dirs = str(self.socket_dir)
        if len(f"{socket_dirs}/.s.PGSQL.{self.port}") > _MAX_SOCKET_PATH:
            socket_dirs = ""  # TCP only; a too-long socket path would stop the server from starting
        settings = {
            "listen_addresses": _quote(self.host),
            "port": str(self.port),
            "unix_socket_directories": _quote(socket_dirs),
            "shared_buffers": "'256MB'",
            "max_connections": "200",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "password_encryption": "'scram-sha-256'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        header = "# Written by services/postgres_node.py on every start; edits are overwritten.\n"
        return header + "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _write(self, path: Path, text: str) -> bool:
        if path.is_file() and path.read_text() == text:
            return False
        path.write_text(text)
        path.chmod(0o600)
        _chown(path, self.user)
        return True

    def write_config(self) -> bool:
        """Write selene.conf and pg_hba.conf; True if either changed (a running server needs a restart)."""
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        _chown(self.socket_dir, self.user)
        main_conf = self.data_dir / "postgresql.conf"
        lines = main_conf.read_text().splitlines()
        if _INCLUDE not in lines:  # last, so our settings win over initdb's
            main_conf.write_text("\n".join([*lines, _INCLUDE]) + "\n")
        changed = self._write(self.data_dir / "selene.conf", self.config_text())
        return self._write(self.data_dir / "pg_hba.conf", _PG_HBA) or changed

    def pid(self) -> int | None:
        """The postmaster's pid if it runs, from postmaster.pid checked against /proc."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm in ("postgres", "postmaster") else None

    def start(self) -> None:
        """Start and wait until it accepts connections (pg_ctl -w)."""
        if not port_free(self.host, self.port):
            raise PostgresNodeError(
                f"port {self.port} on {self.host} is taken by another process, not the cluster in "
                f"{self.data_dir}; stop it or free the port"
            )
        result = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60")
        if result.returncode != 0:
            raise self._fail("pg_ctl start", result)

    def restart(self) -> None:
        result = self._run("pg_ctl", "restart", "-D", str(self.data_dir), "-l", str(self.log_path), "-m", "fast", "-w")
        if result.returncode != 0:
            raise self._fail("pg_ctl restart", result)

    def stop(self) -> bool:
        """Fast shutdown (rolls back open transactions, no crash recovery needed); True if it ran."""
        if self.pid() is None:
            return False
        result = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")
        if result.returncode != 0 and self.pid() is not None:
            raise self._fail("pg_ctl stop", result)
        return True

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.is_file():
            return f"(no log yet at {self.log_path})"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.log_path} ---\n" + "\n".join(text)
