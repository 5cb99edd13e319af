"""Git revisions for side-by-side gates: which revision to gate against, and that revision's tree on disk.

``s2s-bench gate --against REV`` measures the working tree (the candidate) beside REV. Without REV the gate uses
the merge base of HEAD and ``main`` (what a branch changed), or HEAD's first parent when HEAD *is* main (what the
last commit, or merge, changed: CI on main). REV's tree is checked out into a temporary ``git worktree`` (detached,
removed afterwards), so the revision's own code serves its backends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAIN_REFS = ("main", "origin/main", "master", "origin/master")


class RevisionError(RuntimeError):
    """A revision that cannot be found or materialised; the message says which and what to do."""


def git(repo: Path, *args: str, check: bool = True, timeout: float = 120.0) -> str:
    """``git -C repo ARGS`` and its stripped stdout; raises :class:`RevisionError` with git's message."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RevisionError(f"git {' '.join(args)} failed to run: {exc}") from None
    if check and done.returncode != 0:
        raise RevisionError(
            f"git {' '.join(args)} in {repo} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout.strip() if done.returncode == 0 else ""


def repo_root(path: str | Path) -> Path:
    """The top of the git checkout holding ``path``; a clear error when it is not one."""
    path = Path(path).resolve()
    top = git(path if path.is_dir() else path.parent, "rev-parse", "--show-toplevel", check=False)
    if not top:
        raise RevisionError(
            f"{path} is not inside a git checkout: `gate --against` measures a revision beside the working tree, "
            "so it needs s2s-bench as a git clone (pip install -e . from a clone)"
        )
    return Path(top)


def harness_checkout() -> Path:
    """The checkout whose ``harness`` package is running: the candidate side of a gate."""
    return repo_root(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Revision:
    """A resolved revision: its commit, one line describing it, and why it was chosen."""

    commit: str
    subject: str
    chosen_by: str

    @property
    def short(self) -> str:
        return self.commit[:12]


def _commit(repo: Path, rev: str) -> str | None:
    return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False) or None


def _main_ref(repo: Path) -> str | None:
    return next((ref for ref in MAIN_REFS if _commit(repo, ref)), None)


def resolve(repo: Path, rev: str | None) -> Revision:
    """REV as a commit; ``None`` or ``""``: the default (module docstring). Raises :class:`RevisionError`."""
    if rev:
        commit, why = _commit(repo, rev), f"--against {rev}"
    else:
        main = _main_ref(repo)
        head = _commit(repo, "HEAD")
        if head is None:
            raise RevisionError(f"{repo} has no commit yet: nothing to gate against")
        if main is None:
            commit, rev, why = _commit(repo, "HEAD~1"), "HEAD~1", "no main branch here: HEAD's first parent"
        elif _commit(repo, main) == head:
            commit, rev, why = _commit(repo, "HEAD~1"), "HEAD~1", f"HEAD is {main}: its first parent"
        else:
            commit = git(repo, "merge-base", "HEAD", main, check=False) or None
            rev, why = f"merge-base HEAD {main}", f"the merge base of HEAD and {main}"
            if commit == head:
                why += " (HEAD itself: only the working tree's uncommitted changes are measured)"
    if commit is None:
        shallow = git(repo, "rev-parse", "--is-shallow-repository", check=False) == "true"
        hint = (
            " This clone is shallow: fetch the history the gate needs (git fetch --deepen=50, or clone without "
            "--depth)."
            if shallow
            else " Pass --against REV with a commit, branch or tag that exists here."
        )
        raise RevisionError(f"Cannot find revision {rev!r} in {repo}.{hint}")
    subject = git(repo, "log", "-1", "--format=%h %s (%cs)", commit, check=False)
    return Revision(commit=commit, subject=subject, chosen_by=why)


def working_tree_state(repo: Path) -> dict:
    """The candidate's commit and whether its tracked files differ from it (the gate measures them as they are)."""
    dirty = git(repo, "status", "--porcelain", "--untracked-files=no", check=False)
    return {"commit": _commit(repo, "HEAD"), "dirty": bool(dirty)}


@contextlib.contextmanager
def materialised(repo: Path, revision: Revision) -> Iterator[Path]:
    """REV's tree in a temporary detached ``git worktree``; removed (and unregistered) on exit."""
    parent = Path(tempfile.mkdtemp(prefix="s2s-gate-"))
    tree = parent / f"rev-{revision.short}"
    try:
        git(repo, "worktree", "add", "--detach", "--quiet", str(tree), revision.commit, timeout=600.0)
    except RevisionError as exc:
        shutil.rmtree(parent, ignore_errors=True)
        raise RevisionError(f"Cannot check out {revision.short} into a temporary worktree: {exc}") from None
    try:
        yield tree
    finally:
        git(repo, "worktree", "remove", "--force", "--force", str(tree), check=False)
        if tree.exists():  # removal failed: delete the files, then unregister the entry whose folder is gone
            shutil.rmtree(tree, ignore_errors=True)
            git(repo, "worktree", "prune", check=False)
        shutil.rmtree(parent, ignore_errors=True)
