"""What the browser tests share: headless Chromium through Playwright, and
a static HTTP server on 127.0.0.1 (no request leaves the machine). Not a
conftest.py: tests/ has one already and both would be imported as
`conftest`."""
from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import os
import pathlib
import threading
from typing import Iterator

from conftest import require

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def chromium() -> Iterator:
    require(os.path.exists(CHROMIUM), f"{CHROMIUM} is not installed")
    require(importlib.util.find_spec("playwright") is not None, "playwright is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def static_server(root: pathlib.Path) -> Iterator[str]:
    """The base URL of a server of `root` on 127.0.0.1."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
