"""A real S3-compatible server on 127.0.0.1: S3Proxy (Apache-2.0) from Maven Central.

The ``org.gaul:s3proxy:<version>:jar-with-dependencies`` artifact runs on its own; it is fetched
with Maven (deploy/maven/s3proxy/pom.xml) into ``.cache/jars/s3proxy`` on first use. Objects
live in the jclouds filesystem blob store under the run directory (or in memory with
``--transient``). Signature v2/v4 authentication with a fixed local identity.

    python -m deploy.local.s3_server up|down|status|env [--port 9000] [--transient]

``up`` and ``env`` print the environment to use it on stdout, as one ``export AWS_ENDPOINT_URL=...
AWS_ACCESS_KEY_ID=...`` line (``up``'s status line goes to stderr): ``eval "$(make s3-up)"``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deploy.local.common import (
    CACHE_DIR,
    REPO,
    RUN_DIR,
    SetupError,
    check_port_free,
    fail,
    read_pid,
    require_java,
    stop_pid,
    tail,
)

S3PROXY_JARS = CACHE_DIR / "jars" / "s3proxy"
POM = REPO / "deploy" / "maven" / "s3proxy" / "pom.xml"
IDENTITY = "geodispatch-local"
CREDENTIAL = "geodispatch-local-secret"


@dataclass(frozen=True)
class S3Config:
    run_dir: Path = RUN_DIR / "s3proxy"
    port: int = int(os.environ.get("S3_PORT", "9000"))
    transient: bool = False
    heap: str = "256m"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "s3proxy.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "s3proxy.log"

    def env(self) -> dict[str, str]:
        """What a boto3 client needs to talk to this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": IDENTITY,
            "AWS_SECRET_ACCESS_KEY": CREDENTIAL,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def ensure_jar() -> Path:
    """The runnable S3Proxy jar, fetched with Maven when missing."""
    jars = sorted(S3PROXY_JARS.glob("s3proxy-*-jar-with-dependencies.jar"))
    if jars:
        return jars[-1]
    mvn = shutil.which("mvn")
    if not mvn:
        raise SetupError("mvn not found: install Maven (apt-get install maven) to fetch S3Proxy from Maven Central")
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            f"-Dmaven.repo.local={CACHE_DIR / 'm2'}",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={S3PROXY_JARS}",
        ],
        capture_output=True,
        text=True,
    )
    jars = sorted(S3PROXY_JARS.glob("s3proxy-*-jar-with-dependencies.jar"))
    if result.returncode != 0 or not jars:
        raise SetupError(f"fetching S3Proxy with Maven failed: {(result.stdout + result.stderr).strip()[-400:]}")
    return jars[-1]


def properties(cfg: S3Config) -> str:
    lines = [
        f"s3proxy.endpoint={cfg.endpoint}",
        "s3proxy.authorization=aws-v2-or-v4",
        f"s3proxy.identity={IDENTITY}",
        f"s3proxy.credential={CREDENTIAL}",
        "jclouds.identity=local",
        "jclouds.credential=local",
    ]
    if cfg.transient:
        lines.append("jclouds.provider=transient")
    else:
        lines += ["jclouds.provider=filesystem", f"jclouds.filesystem.basedir={cfg.run_dir / 'data'}"]
    return "\n".join(lines) + "\n"


def start(cfg: S3Config, timeout_s: float = 60.0) -> int:
    pid = read_pid(cfg.pid_file)
    if pid is not None:
        wait_ready(cfg, timeout_s)
        return pid
    check_port_free(cfg.port, "S3_PORT")
    jar = ensure_jar()
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "data").mkdir(exist_ok=True)
    props = cfg.run_dir / "s3proxy.conf"
    props.write_text(properties(cfg))
    with open(cfg.log_file, "ab") as log:
        proc = subprocess.Popen(
            [
                require_java(),
                f"-Xmx{cfg.heap}",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-jar",
                str(jar),
                "--properties",
                str(props),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: `down` stops it and only it
        )
    cfg.pid_file.write_text(str(proc.pid))
    try:
        wait_ready(cfg, timeout_s, proc)
    except SetupError:
        stop_pid(cfg.pid_file, "s3proxy")
        raise
    return proc.pid


def wait_ready(cfg: S3Config, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SetupError(
                f"S3Proxy exited with code {proc.returncode}; last lines of its log:\n{tail(cfg.log_file)}"
            )
        try:
            urllib.request.urlopen(cfg.endpoint + "/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # any S3 answer (403 for an anonymous request) means it is serving
        except OSError as exc:
            last = str(exc)
            time.sleep(0.3)
    raise SetupError(
        f"S3Proxy on {cfg.endpoint} did not answer within {timeout_s:.0f}s ({last}); log:\n{tail(cfg.log_file)}"
    )


def stop(cfg: S3Config) -> bool:
    return stop_pid(cfg.pid_file, "s3proxy", timeout_s=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.s3_server", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("--port", type=int, default=S3Config.port, help="port on 127.0.0.1 (env S3_PORT, default 9000)")
    parser.add_argument("--transient", action="store_true", help="keep objects in memory only")
    args = parser.parse_args(argv)
    cfg = S3Config(port=args.port, transient=args.transient)
    exports = " ".join(f"{k}={v}" for k, v in cfg.env().items())
    try:
        if args.action == "up":
            pid = start(cfg)
            # The status line goes to stderr so that `eval "$(make s3-up)"` runs only the export line.
            print(f"S3Proxy up on {cfg.endpoint}, pid {pid}, log {cfg.log_file}", file=sys.stderr)
            print(f"export {exports}")
        elif args.action == "down":
            print("S3Proxy stopped" if stop(cfg) else "S3Proxy was not running")
        elif args.action == "env":
            print(f"export {exports}")
        else:
            pid = read_pid(cfg.pid_file)
            print(f"S3Proxy running, pid {pid}, {cfg.endpoint}" if pid else "S3Proxy not running")
            return 0 if pid else 1
    except SetupError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
