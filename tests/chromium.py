"""Open a page in real headless Chromium (Debian's ``chromium``) and report what a person would see.

Chromium is driven through its DevTools protocol over a WebSocket (``websocket-client``): the page is
loaded from ``file://``, JavaScript exceptions and console errors are collected, every request that
failed is recorded, each ``<img>`` is checked to have loaded (``complete`` and a natural width), the
tables are counted, and a PNG screenshot of the whole page is written.  The browser runs with a fresh
profile, no network beyond loopback (the page is a file) and is ended by its own process id.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-allow-origins=*", "--hide-scrollbars"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One DevTools session on a fresh tab."""

    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def wait_for(self, event: str, timeout: float = 30.0) -> dict:
        for i, msg in enumerate(self.events):
            if msg.get("method") == event:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == event:
                return msg
            self.events.append(msg)
        raise TimeoutError(f"no {event} in {timeout} s")


def inspect_page(html_path: Path, screenshot: Path, width: int = 1300, timeout: float = 60.0) -> dict:
    """Load *html_path* in headless Chromium; returns errors, broken images, table count and the screenshot path."""
    import websocket
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium is not installed (.ci/setup installs Debian's chromium)")
    profile = Path(tempfile.mkdtemp(prefix="almatools-chromium-"))
    proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        import urllib.request
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        target = next(t for t in targets if t.get("type") == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout)
        try:
            page = Page(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                page.call(f"{domain}.enable")
            page.call("Page.navigate", url=Path(html_path).resolve().as_uri())
            page.wait_for("Page.loadEventFired", timeout)
            images = page.call("Runtime.evaluate", returnByValue=True, expression=(
                "Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete, "
                "width: i.naturalWidth}))"))["result"]["value"]
            tables = page.call("Runtime.evaluate", returnByValue=True,
                               expression="document.querySelectorAll('table').length")["result"]["value"]
            title = page.call("Runtime.evaluate", returnByValue=True, expression="document.title")["result"]["value"]
            # a click on a sortable header runs the page's script: its errors are caught below too
            page.call("Runtime.evaluate", expression="var h = document.querySelector('table.sortable th'); "
                                                     "if (h) { h.click(); h.click(); }")
            metrics = page.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000),
                                   "scale": 1})
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            time.sleep(0.2)
            page.call("Runtime.evaluate", expression="1")  # drain the events the click raised
        finally:
            ws.close()
        events = page.events
        errors = [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                  or e["params"]["exceptionDetails"].get("text") for e in events
                  if e.get("method") == "Runtime.exceptionThrown"]
        errors += [e["params"]["entry"]["text"] for e in events
                   if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
        errors += [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
                   for e in events if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"]
        failed = [e["params"].get("errorText", "") for e in events if e.get("method") == "Network.loadingFailed"]
        broken = [i["src"] for i in images if not i["complete"] or not i["width"]]
        return {"errors": errors, "failed_requests": failed, "images": images, "broken_images": broken,
                "tables": tables, "title": title, "screenshot": str(screenshot)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":  # python tests/chromium.py page.html shot.png
    import sys
    print(json.dumps(inspect_page(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))
    os._exit(0)
