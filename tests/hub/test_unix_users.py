"""The hub flow test says why it cannot run, rather than passing or vanishing silently."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

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


@pytest.mark.skipif(unix_users.why_unavailable() is not None, reason="needs root and useradd")
def test_a_removed_user_leaves_nothing_in_the_temporary_directory(tmp_path) -> None:
    user = unix_users.create_user(f"agt{uuid.uuid4().hex[:6]}", tmp_path)
    theirs = Path(tempfile.mkdtemp(prefix="autograder-sandbox-test-"))  # as their slots' folder
    (theirs / "slot-0.lock").touch()
    for path in (theirs, theirs / "slot-0.lock"):
        os.chown(path, user.uid, user.uid)
    assert unix_users.remove_user(user) == ""
    assert not theirs.exists()
