"""A real browser for the report.html tests and benchmarks/html_report.py: Debian's chromium, headless, driven
by Playwright (never `playwright install`: the system's chromium is the browser), with the network cut off.

`SYNCBENCH_NO_BROWSER=1` is the only way to skip the browser tests; without it a missing chromium or
Playwright fails them (CI installs both: `apt-get install chromium`, the `dev` extra).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SYNCBENCH_CHROMIUM", "/usr/bin/chromium")
# --proxy-server points every http(s) request at a closed port; `route` below aborts anything else that is
# not the page itself, and records it.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--proxy-server=127.0.0.1:9"]


def browser_or_skip() -> Any:
    """A Playwright chromium context factory, or a skip where SYNCBENCH_NO_BROWSER says there is no browser;
    a loud failure where there should be one and is not."""
    if os.environ.get("SYNCBENCH_NO_BROWSER"):
        pytest.skip("SYNCBENCH_NO_BROWSER is set: no browser on this machine")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium (or set SYNCBENCH_NO_BROWSER=1 "
                    "where no browser can be had)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (never `playwright install`)")
    return True


@dataclass
class Load:
    """What one page load did."""

    page: Any
    url: str
    console: list[str] = field(default_factory=list)
    """Console messages of type error or warning, and uncaught exceptions."""
    requests: list[str] = field(default_factory=list)
    """Every request other than the page itself (any that reached the router was aborted)."""
    ready_s: float = 0.0
    """From navigation to the page saying it has drawn (`body[data-ready]`)."""


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A fresh headless chromium (its own user-data-dir) and a page factory."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="syncbench-chromium-") as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS,
                                                   headless=True, viewport={"width": width, "height": height})
        try:
            yield ctx
        finally:
            ctx.close()


def load(ctx: Any, path: Path, timeout_s: float = 120.0, init: str = "") -> Load:
    """Open `path` (file://) in a new page of `ctx`, after script `init` if any; wait until it has drawn;
    record console errors and every request that would leave the page."""
    page = ctx.new_page()
    if init:
        page.add_init_script(init)
    url = path.resolve().as_uri()
    out = Load(page, url)
    page.on("console", lambda m: out.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: out.console.append(f"uncaught: {e}"))

    page.on("request", lambda r: out.requests.append(r.url) if r.url != url else None)
    page.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready", timeout=timeout_s * 1000)
    out.ready_s = time.perf_counter() - t
    state = page.evaluate("document.body.dataset.ready")
    if state != "1":
        out.console.append(f"page did not draw: {page.locator('#error').inner_text()}")
    return out
