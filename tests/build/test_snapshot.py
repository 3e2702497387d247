"""Source snapshots on real folders: ignore files, determinism, entry-script checks, size guard."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from modelhost.build.snapshot import check_entry_script, extract_snapshot, list_files, make_snapshot
from modelhost.errors import EntryScriptError, ValidationError

SCORE = "def init():\n    pass\n\n\ndef run(data):\n    return data\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write(
        tmp_path / "src",
        {
            "score.py": SCORE,
            "utils/helpers.py": "X = 1\n",
            "data/big.csv": "a,b\n",
            "notes.log": "x\n",
            ".git/config": "[core]\n",
        },
    )


def test_lists_everything_but_dot_git_without_ignore_files(project: Path) -> None:
    assert list_files(project) == ["data/big.csv", "notes.log", "score.py", "utils/helpers.py"]


def test_gitignore_with_negation_and_directories(project: Path) -> None:
    write(project, {".gitignore": "*.log\n!keep.log\ndata/\n", "keep.log": "k\n", "utils/x.log": "y\n"})
    assert list_files(project) == [".gitignore", "keep.log", "score.py", "utils/helpers.py"]


def test_amlignore_beats_gitignore(project: Path) -> None:
    write(project, {".gitignore": "*.py\n", ".amlignore": "data/\n"})
    files = list_files(project)
    assert "score.py" in files and "utils/helpers.py" in files
    assert "data/big.csv" not in files
    assert "notes.log" in files


def test_nested_ignore_files_apply_below_their_folder(project: Path) -> None:
    write(
        project,
        {
            ".gitignore": "*.tmp\n",
            "utils/.gitignore": "generated_*\n!*.tmp\n",
            "utils/generated_a.py": "",
            "utils/b.tmp": "",
            "c.tmp": "",
            "other/generated_b.py": "",
        },
    )
    files = list_files(project)
    assert "utils/generated_a.py" not in files  # nested rule
    assert "other/generated_b.py" in files  # nested rule stays in its folder
    assert "utils/b.tmp" in files  # nested negation overrides the parent
    assert "c.tmp" not in files


def test_anchored_patterns(project: Path) -> None:
    write(project, {".amlignore": "/score_old.py\nbuild/\n", "score_old.py": "", "utils/score_old.py": "",
                    "build/out.bin": "", "utils/build/x": ""})
    files = list_files(project)
    assert "score_old.py" not in files and "utils/score_old.py" in files
    assert not any(f.startswith("build/") or "/build/" in f for f in files)


def test_same_folder_gives_the_same_digest_whatever_the_mtimes(project: Path, tmp_path: Path) -> None:
    first = make_snapshot(project, "score.py", tmp_path / "out")
    os.utime(project / "score.py", (1_000_000, 1_000_000))
    second = make_snapshot(project, "score.py", tmp_path / "out2")
    assert first.digest == second.digest
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.path.name == f"{first.digest}.zip"
    assert first.size == first.path.stat().st_size
    assert first.files == ("data/big.csv", "notes.log", "score.py", "utils/helpers.py")


def test_copy_elsewhere_gives_the_same_digest(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "project"
    for rel in list_files(project):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes((project / rel).read_bytes())
    os.chmod(project / "score.py", 0o664)  # group bits are not kept
    assert make_snapshot(project, "score.py", tmp_path / "a").digest == make_snapshot(
        copy, "score.py", tmp_path / "b"
    ).digest


def test_changed_content_changes_the_digest(project: Path, tmp_path: Path) -> None:
    before = make_snapshot(project, "score.py", tmp_path / "out")
    (project / "utils/helpers.py").write_text("X = 2\n")
    assert make_snapshot(project, "score.py", tmp_path / "out").digest != before.digest


def test_ignored_changes_do_not_change_the_digest(project: Path, tmp_path: Path) -> None:
    write(project, {".amlignore": "*.log\n"})
    before = make_snapshot(project, "score.py", tmp_path / "out")
    (project / "notes.log").write_text("changed\n")
    assert make_snapshot(project, "score.py", tmp_path / "out").digest == before.digest


def test_zip_entries_are_sorted_with_fixed_times_and_modes(project: Path, tmp_path: Path) -> None:
    (project / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(project / "run.sh", 0o775)
    snap = make_snapshot(project, "score.py", tmp_path / "out")
    with zipfile.ZipFile(snap.path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in infos}
    assert modes["run.sh"] == 0o755 and modes["score.py"] == 0o644


def test_extract_round_trip(project: Path, tmp_path: Path) -> None:
    (project / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(project / "run.sh", 0o755)
    snap = make_snapshot(project, "score.py", tmp_path / "out")
    dest = tmp_path / "unpacked"
    extract_snapshot(snap.path, dest)
    assert list_files(dest) == list(snap.files)
    assert (dest / "score.py").read_text() == SCORE
    assert os.access(dest / "run.sh", os.X_OK)


def test_extract_refuses_paths_leaving_the_destination(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.txt", "x")
    with pytest.raises(ValidationError, match="unsafe path"):
        extract_snapshot(evil, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()


def test_entry_script_in_a_subfolder(project: Path, tmp_path: Path) -> None:
    write(project, {"app/score_v2.py": SCORE})
    snap = make_snapshot(project, "app/score_v2.py", tmp_path / "out")
    assert snap.entry_script == "app/score_v2.py"


def test_missing_entry_script(project: Path, tmp_path: Path) -> None:
    with pytest.raises(EntryScriptError, match=r"Entry script scoring\.py not found"):
        make_snapshot(project, "scoring.py", tmp_path / "out")


def test_ignored_entry_script(project: Path, tmp_path: Path) -> None:
    write(project, {".amlignore": "score.py\n"})
    with pytest.raises(EntryScriptError, match=r"Entry script score\.py is excluded by an ignore file"):
        make_snapshot(project, "score.py", tmp_path / "out")


def test_entry_script_syntax_error_names_file_and_line(project: Path, tmp_path: Path) -> None:
    (project / "score.py").write_text("def init():\n    pass\ndef run(data)\n    return data\n")
    with pytest.raises(EntryScriptError) as info:
        make_snapshot(project, "score.py", tmp_path / "out")
    assert str(info.value).startswith("Entry script score.py does not parse: line 3: ")
    assert not (tmp_path / "out").exists()  # checked before anything is written


@pytest.mark.parametrize(
    ("name", "match"),
    [("score.txt", r"must be a \.py file"), ("my-score.py", "not a valid Python module name"),
     ("class.py", "not a valid Python module name"), ("../score.py", "inside the source directory"),
     ("/abs/score.py", "inside the source directory")],
)
def test_entry_script_name_rules(project: Path, name: str, match: str) -> None:
    if not name.startswith(("/", "..")):
        write(project, {name: SCORE})
    with pytest.raises(EntryScriptError, match=match):
        check_entry_script(project, name, list_files(project))


def test_size_guard_names_the_biggest_files(project: Path, tmp_path: Path) -> None:
    (project / "data" / "model.bin").write_bytes(b"\0" * 300_000)
    (project / "data" / "small.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(ValidationError) as info:
        make_snapshot(project, "score.py", tmp_path / "out", max_bytes=100_000)
    message = str(info.value)
    assert "data/model.bin" in message and "snapshot limit" in message
    assert ".amlignore" in info.value.hint
    assert info.value.details[0] == "data/model.bin"
    write(project, {".amlignore": "data/\n"})
    assert make_snapshot(project, "score.py", tmp_path / "out", max_bytes=100_000).size < 100_000


def test_missing_source_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        make_snapshot(tmp_path / "nope", "score.py", tmp_path / "out")


def test_symlinked_files_are_followed_and_symlinked_folders_skipped(project: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"shared.py": "S = 1\n"})
    os.symlink(outside / "shared.py", project / "shared.py")
    os.symlink(project, project / "loop")
    files = list_files(project)
    assert "shared.py" in files
    assert not any(f.startswith("loop/") for f in files)
