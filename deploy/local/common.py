"""Helpers shared by the local launchers: paths, port checks, PID files, one-line errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("GRD_RUN_DIR", REPO / ".run"))
CACHE_DIR = Path(os.environ.get("GRD_CACHE_DIR", REPO / ".cache"))
KAFKA_JARS = CACHE_DIR / "jars" / "kafka"
FLINK_JARS = CACHE_DIR / "jars" / "flink"


class SetupError(RuntimeError):
    """A problem the user fixes by hand; printed as one line, no traceback."""


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def require_java() -> str:
    java = shutil.which("java")
    if not java:
        raise SetupError("java not found: install OpenJDK 17 or newer (e.g. apt-get install openjdk-17-jre)")
    return java


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, variable: str) -> None:
    if port_in_use(port):
        raise SetupError(
            f"port {port} on 127.0.0.1 is already in use: stop what holds it, or set {variable} to another port"
        )


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_pid(pid_file: Path, name: str, timeout_s: float = 20.0) -> bool:
    """SIGTERM the recorded process group, wait, then SIGKILL. True when something was stopped."""
    pid = read_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        print(f"{name} did not stop in {timeout_s:.0f}s: killing it", file=sys.stderr)
        _signal_group(pid, signal.SIGKILL)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
