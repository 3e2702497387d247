"""Source snapshots: a project folder as one deterministic, content-addressed zip.

:func:`list_files` decides what goes in (``.amlignore`` where a folder has one, else
``.gitignore``, with gitignore semantics including negation and nested files; ``.git/`` always
out). :func:`make_snapshot` checks the entry script and the size, then writes the zip with sorted
entries, a fixed timestamp and normalised permissions, so identical folders give byte-identical
zips and one digest (sha256 of the zip bytes) whatever their mtimes.
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from modelhost.errors import EntryScriptError, ValidationError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IGNORE_FILES",
    "Snapshot",
    "check_entry_script",
    "extract_snapshot",
    "list_files",
    "make_snapshot",
]

DEFAULT_MAX_BYTES = 300 * 2**20  # v1's snapshot limit
IGNORE_FILES = (".amlignore", ".gitignore")  # the first one a folder has wins
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ALWAYS_EXCLUDED_DIRS = frozenset({".git"})


@dataclass(frozen=True)
class Snapshot:
    """A written snapshot: ``digest`` is the sha256 hex of the zip at ``path`` (``size`` bytes)."""

    digest: str
    path: Path
    size: int
    files: tuple[str, ...]
    entry_script: str


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    for name in IGNORE_FILES:
        candidate = directory / name
        if candidate.is_file():
            return pathspec.GitIgnoreSpec.from_lines(candidate.read_text(errors="replace").splitlines())
    return None


_Specs = Sequence[tuple[PurePosixPath, pathspec.GitIgnoreSpec]]


def _ignored(rel: PurePosixPath, is_dir: bool, specs: _Specs) -> bool:
    """gitignore semantics: the deepest ignore file with a matching pattern decides (last match wins)."""
    for base, spec in reversed(specs):
        sub = rel.relative_to(base).as_posix() + ("/" if is_dir else "")
        result = spec.check_file(sub)
        if result.include is not None:
            return bool(result.include)
    return False


def list_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files a snapshot of ``root`` holds, sorted.

    Each folder's ``.amlignore`` (or, without one, its ``.gitignore``) applies to that folder and
    below; an ignored folder is not entered (as in git, a negation cannot re-include its files).
    Symlinked files are followed; symlinked folders are skipped (they may loop or leave the tree).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValidationError(f"source directory {str(root)!r} does not exist or is not a folder")
    found: list[str] = []
    specs_by_dir: dict[PurePosixPath, list[tuple[PurePosixPath, pathspec.GitIgnoreSpec]]] = {}
    for current, dirnames, filenames in os.walk(root):
        here = PurePosixPath(Path(current).relative_to(root).as_posix())
        inherited = specs_by_dir.get(here.parent, []) if here != PurePosixPath(".") else []
        spec = _ignore_spec(Path(current))
        specs = [*inherited, (here, spec)] if spec is not None else list(inherited)
        specs_by_dir[here] = specs
        kept_dirs = []
        for name in sorted(dirnames):
            rel = here / name
            if name in _ALWAYS_EXCLUDED_DIRS or (Path(current) / name).is_symlink():
                continue
            if not _ignored(rel, True, specs):
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in filenames:
            rel = here / name
            if (Path(current) / name).is_file() and not _ignored(rel, False, specs):
                found.append(rel.as_posix())
    return sorted(found)


def _normalize_entry(entry_script: str) -> str:
    rel = PurePosixPath(entry_script.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise EntryScriptError(
            f"Entry script {entry_script} must be a path inside the source directory",
            hint="Give entry_script relative to source_directory, e.g. 'score.py'.",
        )
    return rel.as_posix()


def check_entry_script(root: Path, entry_script: str, files: Sequence[str]) -> None:
    """Raise EntryScriptError unless ``entry_script`` is a snapshot file, a valid module name, and parses."""
    rel = _normalize_entry(entry_script)
    path = Path(root) / rel
    if rel not in set(files):
        if path.is_file():
            raise EntryScriptError(
                f"Entry script {rel} is excluded by an ignore file in {root}",
                hint="Remove the pattern that matches it from .amlignore/.gitignore.",
            )
        raise EntryScriptError(
            f"Entry script {rel} not found in source directory {root}",
            hint="Check entry_script and source_directory: entry_script is relative to source_directory.",
        )
    module = PurePosixPath(rel)
    if module.suffix != ".py":
        raise EntryScriptError(f"Entry script {rel} must be a .py file", hint="Rename it to end in .py.")
    if not module.stem.isidentifier() or keyword.iskeyword(module.stem):
        raise EntryScriptError(
            f"Entry script {rel}: {module.stem!r} is not a valid Python module name",
            hint="Rename it to a valid identifier that is not a keyword, e.g. score.py.",
        )
    try:
        ast.parse(path.read_bytes(), filename=rel)
    except SyntaxError as exc:
        raise EntryScriptError(
            f"Entry script {rel} does not parse: line {exc.lineno}: {exc.msg}",
            hint="Fix the syntax error (run 'python -m py_compile' on it to check).",
        ) from exc
    except ValueError as exc:  # e.g. null bytes
        raise EntryScriptError(f"Entry script {rel} does not parse: {exc}") from exc


def _check_size(root: Path, files: Sequence[str], max_bytes: int) -> None:
    sizes = [(os.stat(root / f).st_size, f) for f in files]
    total = sum(size for size, _ in sizes)
    if total <= max_bytes:
        return
    biggest = sorted(sizes, reverse=True)[:5]
    named = ", ".join(f"{f} ({size / 2**20:.1f} MB)" for size, f in biggest)
    raise ValidationError(
        f"Source directory {root} holds {total / 2**20:.1f} MB, over the snapshot limit of "
        f"{max_bytes / 2**20:.0f} MB; biggest files: {named}",
        hint="List data, models and build outputs in a .amlignore file in the source directory "
        "(gitignore syntax); register models separately.",
        details=[f for _, f in biggest],
    )


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3  # unix, so external_attr holds the mode
    executable = bool(mode & stat.S_IXUSR)
    info.external_attr = ((0o100755 if executable else 0o100644) & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_snapshot(
    source_dir: Path, entry_script: str, out_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Snapshot:
    """Snapshot ``source_dir`` into ``out_dir/<digest>.zip`` (reused when it exists)."""
    root = Path(source_dir).resolve()
    files = list_files(root)
    entry = _normalize_entry(entry_script)
    check_entry_script(root, entry, files)
    _check_size(root, files, max_bytes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".snapshot-", suffix=".zip", dir=out_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compresslevel=6) as archive:
            for rel in files:
                path = root / rel
                with open(path, "rb") as src, archive.open(_zip_info(rel, os.stat(path).st_mode), "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        digest = _sha256_file(tmp)
        final = out_dir / f"{digest}.zip"
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    size = final.stat().st_size
    return Snapshot(digest=digest, path=final, size=size, files=tuple(files), entry_script=entry)


def extract_snapshot(zip_path: Path, dest: Path) -> None:
    """Unpack a snapshot into ``dest`` (created), restoring the executable bit; refuses unsafe paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            rel = PurePosixPath(info.filename)
            if rel.is_absolute() or ".." in rel.parts:
                raise ValidationError(f"snapshot {zip_path} holds an unsafe path {info.filename!r}")
            if info.is_dir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
