"""These tests run against the sandbox without its data plane: no traffic, nothing to drain."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_traffic(nothing_to_drain: None) -> None:
    pass
