"""The hub flow test says why it cannot run, rather than passing or vanishing silently."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.hub import unix_users


def test_not_root_is_a_stated_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in (unix_users.why_unavailable() or "")


def test_a_missing_tool_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name == "useradd" else real_which(name)
    )
    assert "needs useradd" in (unix_users.why_unavailable() or "")
