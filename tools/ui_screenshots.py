"""Screenshots of a chain's asset pages in the Dagster UI, with headless Chromium.

Starts `dagster-webserver` on the repository's workspace and a Dagster instance (`DAGSTER_HOME`, for
example the one `make demo` filled), then drives Chromium through the DevTools protocol: open a
page, click a tab (the events' "Plots" view is page state, not a URL), wait, capture a PNG.

    python tools/ui_screenshots.py --out /tmp/shots [--chain host_31337]

Needs `chromium` (Debian: `apt-get install -y chromium`); not part of the tests.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from fhevm_dagster.devnet import free_port

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1600, 1200


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    click: str | None = None  # text of a button to press once the page has loaded


def pages(chain: str, partition: str | None) -> list[Page]:
    part = f"&partition={partition}" if partition else ""
    return [
        Page("lineage", f"/asset-groups/{chain}/lineage"),
        Page("computations-plots", f"/assets/{chain}/fhe_computations", "Plots"),
        Page("computations-partition", f"/assets/{chain}/fhe_computations?view=partitions{part}"),
        Page("commits-partition", f"/assets/{chain}/digest_commits?view=partitions{part}"),
        Page("objects-partition", f"/assets/{chain}/ciphertext_objects?view=partitions{part}"),
        Page("runs", "/runs"),
    ]


def wait_http(url: str, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return bytes(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s") from None
            time.sleep(0.5)


def graphql(base: str, query: str) -> Any:
    req = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


class DevTools:
    """One Chromium tab over the DevTools protocol (JSON over a websocket)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.ids = ws, itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def shot(self, url: str, click: str | None, settle_s: float) -> bytes:
        self.call("Page.navigate", url=url)
        time.sleep(settle_s)
        if click:
            script = (
                "Array.from(document.querySelectorAll('button'))"
                f".filter(b => b.textContent.trim() === {json.dumps(click)})"
                ".map(b => (b.click(), 1)).length"
            )
            clicked = self.call("Runtime.evaluate", expression=script, returnByValue=True)
            if not clicked.get("result", {}).get("value"):
                print(f"  no button {click!r} on {url}", file=sys.stderr)
            time.sleep(settle_s / 2)
        png = self.call("Page.captureScreenshot", format="png")["data"]
        return base64.b64decode(png)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    ap.add_argument("--chain", default="host_31337", help="the chain's asset group")
    ap.add_argument("--partition", help="the range whose partition pages to show")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds a page gets to load")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    if not os.environ.get("DAGSTER_HOME"):
        print("DAGSTER_HOME names the Dagster instance to show", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    web_port, cdp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    webserver = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        *("-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(web_port)),
    ]
    with tempfile.TemporaryDirectory() as profile, process(webserver, args.out / "webserver.log"):
        wait_http(f"{base}/server_info", 120)
        graphql(base, "mutation { setNuxSeen }")  # no "join the community" dialog on top
        browser = [
            chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--remote-debugging-port={cdp_port}", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}", "about:blank",
        ]  # fmt: skip
        with process(browser, args.out / "chromium.log"):
            targets = json.loads(wait_http(f"http://127.0.0.1:{cdp_port}/json/list", 30))
            tab = next(t for t in targets if t.get("type") == "page")
            with connect(tab["webSocketDebuggerUrl"], max_size=None) as ws:
                tools = DevTools(ws)
                tools.call("Page.enable")
                for page in pages(args.chain, args.partition):
                    png = tools.shot(base + page.path, page.click, args.settle)
                    (args.out / f"{page.name}.png").write_bytes(png)
                    print(f"{page.name}.png  {len(png):>8} bytes  {page.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
