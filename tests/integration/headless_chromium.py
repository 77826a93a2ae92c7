"""A tiny Chrome DevTools Protocol driver for Debian's headless Chromium (no Playwright, no
chromedriver): start the browser, open a page, wait until its rendered text contains what a
test expects, take a full-page screenshot.

Streamlit renders client-side over a websocket, so ``--dump-dom`` alone races the first
render; polling ``document.body.innerText`` over CDP waits for exactly what is needed.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENSURE_SCRIPT = REPO / "deploy" / "local" / "ensure_chromium.sh"


class BrowserError(RuntimeError):
    pass


def ensure_chromium() -> str:
    """Path of the chromium binary, installing Debian's package when missing (see the script)."""
    result = subprocess.run(["bash", str(ENSURE_SCRIPT)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise BrowserError(
            f"headless Chromium is needed for this test and could not be installed: "
            f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'exit ' + str(result.returncode)}"
        )
    return result.stdout.strip().splitlines()[-1]


class Chromium:
    """``with Chromium(binary, profile_dir) as browser: browser.open(url); ...``"""

    def __init__(self, binary: str, profile_dir: Path, width: int = 1600, height: int = 1200) -> None:
        self.binary = binary
        self.profile_dir = profile_dir
        self.width, self.height = width, height
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self._next_id = 0
        self.log_path = profile_dir / "chromium.log"

    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> None:
        import websocket  # websocket-client

        self.profile_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.profile_dir / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a stale one from an earlier run would point elsewhere
        args = [
            self.binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            f"--user-data-dir={self.profile_dir}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends the browser and its helpers
        )
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium did not open its DevTools port in {timeout_s:.0f}s: {self._log_tail()}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next((t for t in targets if t.get("type") == "page"), None)
        if page is None:
            raise BrowserError(f"no page target in chromium: {targets}")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width, height=self.height, deviceScaleFactor=1, mobile=False,
        )

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group chromium leads (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg_id = self._next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        result = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                           returnByValue=True)
        return str(result.get("result", {}).get("value") or "")

    def wait_for_text(self, needles: Iterable[str], timeout_s: float = 60.0, settle_s: float = 1.0) -> str:
        """Poll the page's visible text until it contains every needle; -> that text."""
        needles = list(needles)
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                time.sleep(settle_s)  # let charts finish drawing before a screenshot
                return self.text()
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise BrowserError(f"page text still lacks {missing} after {timeout_s:.0f}s; it reads:\n{text[:3000]}")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
            # Streamlit scrolls inside its own container: measure that, not the window.
            height = self.call(
                "Runtime.evaluate",
                expression="Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight))",
                returnByValue=True,
            ).get("result", {}).get("value") or size.get("height") or self.height
            height = int(min(max(height, self.height), 8000))
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                      mobile=False)
            time.sleep(1.0)
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def stop(self) -> None:
        if self.ws is not None:
            try:
                self.call("Browser.close")
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001
                pass
            self.ws = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self.proc.wait(timeout=5)
            self._signal_group(signal.SIGKILL)  # helpers (zygote, renderers) left in the group
            self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
