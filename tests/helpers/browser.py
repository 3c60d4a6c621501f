"""Headless Chromium for the browser tests: its arguments, and where screenshots are kept."""

from __future__ import annotations

from helpers.configs import REPO

# Screenshots of the browser tests, kept after the run (git-ignored).
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
