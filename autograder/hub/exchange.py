"""nbgrader's exchange: the shared folder assignments are released to and submitted into.

What nbgrader's default exchange needs of its root (``c.Exchange.root``): every user can
write there (the instructor's release creates ``<course_id>/`` in it, each student's submit
writes into ``<course_id>/inbound/``). We also want the sticky bit, as ``/tmp`` has it: without
it any user may rename the instructor's ``<course_id>/`` folder and put their own in its place.
nbgrader itself sets the modes below the root when it releases:

    <root>/                      1777  (the hub admin: ``autograder hub exchange``)
    <root>/<course_id>/           755  the instructor's
    <root>/<course_id>/outbound/  755  released notebooks, readable by everyone
    <root>/<course_id>/inbound/  2733  submissions: students write, only the instructor lists
    <root>/<course_id>/feedback/  711  feedback, named by a hash only its student can compute
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from autograder.hub import HubError

ROOT_MODE = 0o1777


class ExchangeSetupError(HubError):
    """The exchange folder is missing or its permissions would break (or open) the course."""


def exchange_problems(root: Path) -> list[str]:
    """What is wrong with ``root`` as an exchange root, each with how to fix it ([] if nothing)."""
    fix = f"a hub admin fixes it with `autograder hub exchange {root}` (or `install -d -m 1777 {root}`)"
    try:
        info = root.stat()
    except FileNotFoundError:
        return [f"The exchange folder {root} does not exist: {fix}."]
    except PermissionError:
        return [
            f"The exchange folder {root} cannot be reached (a parent folder is not searchable): {fix}."
        ]
    if not stat.S_ISDIR(info.st_mode):
        return [f"The exchange {root} is not a folder: {fix}."]
    mode = stat.S_IMODE(info.st_mode)
    problems = []
    if mode & 0o777 != 0o777:
        problems.append(
            f"The exchange folder {root} has mode {mode:04o}: every user must be able to write "
            f"there (students submit into it), so it must be 1777: {fix}."
        )
    if not mode & stat.S_ISVTX:
        problems.append(
            f"The exchange folder {root} has mode {mode:04o}, without the sticky bit: any user "
            f"could rename the course's folder and put their own in its place: {fix}."
        )
    return problems


def check_exchange(root: Path) -> None:
    """Raise :class:`ExchangeSetupError` with every problem of ``root``, if it has any."""
    problems = exchange_problems(root)
    if problems:
        raise ExchangeSetupError("\n".join(problems))


def prepare_exchange(root: Path) -> Path:
    """Create ``root`` (and its parents) as an exchange root, or fix its mode; the hub admin's step.

    Only its owner (or root) can change the mode of an existing folder: anyone else gets
    :class:`ExchangeSetupError` saying whose it is.
    """
    root = Path(os.path.abspath(root))
    root.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(root, ROOT_MODE)
    except PermissionError:
        owner = root.stat().st_uid
        raise ExchangeSetupError(
            f"Cannot set {root} to mode 1777: it belongs to uid {owner}; run this as that user or root."
        ) from None
    return root


# -- submissions nobody else can change -------------------------------------------------------
# nbgrader's submit leaves a submission folder 0777 and its files 0644 ("so the instructor can
# delete later"; the name's 12 random characters hide it), and its inbound/ is 2733 without
# the sticky bit: whoever learns the name can read, add, replace and delete files in it, and
# anyone can rename it. Here a submission folder is 2770: its student and the group of
# inbound/ (set-group-id, so the folder is in the instructor's own group) only, so no one
# else can even reach its files; inbound/ gets the sticky bit, so only a folder's owner or
# the instructor may rename or remove it; and collect takes only folders owned by the
# student they name (nbgrader's collect warns about another owner, and collects).
SUBMISSION_DIR_MODE = 0o2770
# Files stay 0644: nbgrader writes timestamp.txt and submission_secret.txt after copying,
# when the folder has lost its set-group-id bit, so they are in the student's group, and
# the instructor reads them as "other", through the folder only they and the student enter.
SUBMISSION_FILE_MODE = 0o644
INBOUND_MODE = 0o3733  # nbgrader's 2733 plus the sticky bit


def close_submission(folder: Path) -> None:
    """Make a submission reachable by its student and inbound/'s group only."""
    for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
        if not path.is_symlink():
            path.chmod(SUBMISSION_DIR_MODE if path.is_dir() else SUBMISSION_FILE_MODE)
    folder.chmod(SUBMISSION_DIR_MODE)


def protect_inbound(course_folder: Path) -> list[str]:
    """Add the sticky bit to ``<course_folder>/inbound`` (the instructor's, after a release);
    return warnings when its group has members besides the instructor (they could read
    every submission)."""
    inbound = course_folder / "inbound"
    inbound.chmod(INBOUND_MODE)
    info = inbound.stat()
    others = group_members(info.st_gid) - {_user_name(info.st_uid)}
    if not others:
        return []
    return [
        f"{inbound} belongs to group {_group_name(info.st_gid)}, which {', '.join(sorted(others))} "
        "also belong to: they can read every submission. Give the instructor a group of their "
        f"own (`chgrp <own group> {inbound}`)."
    ]


def group_members(gid: int) -> set[str]:
    import grp
    import pwd

    try:
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        members = set()
    return members | {user.pw_name for user in pwd.getpwall() if user.pw_gid == gid}


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
