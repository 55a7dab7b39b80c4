"""Headless Chromium for tests that check pages in a real browser (Debian's ``chromium``)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def dump_dom(target: Path | str, *, wait_ms: int = 5000, timeout_s: float = 120) -> str:
    """The page's DOM after its scripts ran, in a fresh browser profile (no cache, no cookies)."""
    url = target.as_uri() if isinstance(target, Path) else target
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", f"--user-data-dir={profile}", f"--virtual-time-budget={wait_ms}",
             "--window-size=1400,900", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout_s,
        )
    if proc.returncode != 0:
        raise AssertionError(f"chromium failed on {url} ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout
