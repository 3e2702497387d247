"""The pod-to-workspace data path, its pure and file-level parts: the upload path rules, the
service-scoped upload token, sealed file names, the writers' lock, and the data writer's rotation
(a real DataWriter thread writing real files in a temp folder)."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest

from modelhost.control.data_upload import check_data_path, upload_allowed
from modelhost.errors import ValidationError
from modelhost.runtime.upload import Uploader, pending_files, upload_token
from modelhost.scoring.data_spool import hold_writer_lock, is_sealed, seal, writers_gone
from modelhost.scoring.data_writer import DataWriter

GOOD = "sklearn_model/1/inputs/2026/11/23/data-svc-g1-abc-7.1763900000000.csv"


@pytest.mark.parametrize(
    ("rel", "fragment"),
    [
        ("../1/inputs/2026/11/23/x.csv", "part '..'"),
        ("m/1/inputs/2026/11/23/../x.csv", "8 part(s)"),
        ("m/../inputs/2026/11/23/x.csv", "part '..'"),
        ("/1/inputs/2026/11/23/x.csv", "part ''"),
        ("m/1/inputs/2026/11/23/.hidden.csv", "part '.hidden.csv'"),
        ("m/1/inputs/2026/11/23", "6 part(s)"),
        ("m/1/outputs/2026/11/23/x.csv", "designation 'outputs'"),
        ("m/1/inputs/2026/13/23/x.csv", "no yyyy/mm/dd date"),
        ("m/1/inputs/26/11/23/x.csv", "no yyyy/mm/dd date"),
        ("m/1/inputs/2026/11/23/x.txt", "not a .csv file"),
        ("m/1/inputs/2026/11/23/a b.csv", "part 'a b.csv'"),
        ("m/1/inputs/2026/11/23/a\\b.csv", "part 'a\\\\b.csv'"),
    ],
    ids=["dotdot", "too-deep", "dotdot-inner", "absolute", "hidden", "too-short", "designation", "month",
         "year", "not-csv", "space", "backslash"],
)
def test_data_paths_outside_the_layout_are_refused(rel: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_data_path(rel)
    assert fragment in str(info.value)
    assert info.value.status_code == 400 and "<model>/<version>/<designation>" in (info.value.hint or "")


def test_a_layout_path_is_accepted_as_is() -> None:
    assert str(check_data_path(GOOD)) == GOOD


def test_upload_token_is_scoped_to_one_service() -> None:
    a, b = upload_token("fetch-secret", "svc-a"), upload_token("fetch-secret", "svc-b")
    assert a != b and a == upload_token("fetch-secret", "svc-a")
    assert upload_token("other-fetch-secret", "svc-a") != a
    assert "fetch-secret" not in a
    path_a, path_b = f"/api/v1/services/svc-a/data/{GOOD}", f"/api/v1/services/svc-b/data/{GOOD}"
    assert upload_allowed("PUT", path_a, f"Bearer {a}".encode(), "fetch-secret")
    assert not upload_allowed("PUT", path_b, f"Bearer {a}".encode(), "fetch-secret")  # A cannot write B
    assert not upload_allowed("GET", path_a, f"Bearer {a}".encode(), "fetch-secret")  # write-only
    assert not upload_allowed("PUT", "/api/v1/services/svc-a", f"Bearer {a}".encode(), "fetch-secret")
    assert not upload_allowed("PUT", "/api/v1/blobs/" + "0" * 64, f"Bearer {a}".encode(), "fetch-secret")
    assert not upload_allowed("PUT", path_a, b"Bearer fetch-secret", "fetch-secret")
    assert not upload_allowed("PUT", path_a, f"Bearer {a}".encode(), None)


@pytest.mark.parametrize(
    ("name", "sealed"),
    [
        ("data-svc-g1-abc-7.csv", False),
        ("data-svc-g1-abc-7-1.csv", False),
        ("data-svc-g1-abc-7.1763900000000.csv", True),
        ("data-svc-g1-abc-7-1.1763900000123.csv", True),
        ("data-svc-g1-abc-7.17639.csv", False),
        ("data-svc-g1-abc-7.1763900000000.csv.tmp", False),
    ],
)
def test_sealed_names(name: str, sealed: bool) -> None:
    assert is_sealed(name) is sealed


def test_seal_keeps_two_seals_of_one_path_within_a_millisecond(tmp_path: Path) -> None:
    first = tmp_path / "data-r-1.csv"
    first.write_text("a\n1\n")
    one = seal(str(first), 1763900000000)
    first.write_text("a\n2\n")
    two = seal(str(first), 1763900000000)
    assert Path(one).name == "data-r-1.1763900000000.csv" and Path(two).name == "data-r-1.1763900000001.csv"
    assert not first.exists() and Path(one).read_text() == "a\n1\n" and Path(two).read_text() == "a\n2\n"


def test_writers_lock_tells_whether_a_writer_is_alive(tmp_path: Path) -> None:
    assert writers_gone(str(tmp_path))  # no writer ever started
    fd = hold_writer_lock(str(tmp_path))
    other = hold_writer_lock(str(tmp_path))  # a second worker process shares it
    assert not writers_gone(str(tmp_path))
    os.close(fd)
    assert not writers_gone(str(tmp_path))
    os.close(other)  # what the kernel does when the process exits
    assert writers_gone(str(tmp_path))


def _rows(files: list[Path]) -> list[list[str]]:
    out = []
    for f in files:
        with f.open(newline="") as handle:
            reader = csv.reader(handle)
            assert next(reader) == ["a", "b"]  # every file, also after a rotation, starts with its header
            out += list(reader)
    return out


def test_rotating_writer_seals_files_and_starts_new_ones_with_a_header(tmp_path: Path) -> None:
    folder = str(tmp_path / "svc" / "m" / "1" / "inputs" / "2026" / "11" / "23")
    writer = DataWriter(str(tmp_path), "svc", "pod-7", rotate_s=0.3)
    assert not writers_gone(str(tmp_path))
    writer.put((folder, "data", ("a", "b"), [[1, 2], [3, 4]]))
    deadline = time.monotonic() + 10
    while not pending_files(tmp_path / "svc", final=False):
        assert time.monotonic() < deadline, "no sealed file within 10 s"
        time.sleep(0.05)
    writer.put((folder, "data", ("a", "b"), [[5, 6]]))
    writer.close()
    sealed = pending_files(tmp_path / "svc", final=False)
    assert len(sealed) == 2 and pending_files(tmp_path / "svc", final=True) == sealed  # nothing left open
    assert sorted(_rows(sealed)) == [["1", "2"], ["3", "4"], ["5", "6"]]


def test_writer_without_rotation_keeps_one_open_file(tmp_path: Path) -> None:
    folder = str(tmp_path / "svc" / "m" / "1" / "inputs" / "2026" / "11" / "23")
    writer = DataWriter(str(tmp_path), "svc", "host-9")
    writer.put((folder, "data", ("a", "b"), [[1, 2]]))
    writer.close()
    assert [p.name for p in Path(folder).iterdir()] == ["data-host-9.csv"]
    assert writers_gone(str(tmp_path)) and not (tmp_path / ".writers.lock").exists()


def test_pending_files_skip_hidden_and_open_files(tmp_path: Path) -> None:
    day = tmp_path / "svc" / "m" / "1" / "inputs" / "2026" / "11" / "23"
    day.mkdir(parents=True)
    for name in ("data-p-1.csv", "data-p-1.1763900000000.csv", ".x.csv", "notes.txt"):
        (day / name).write_text("a\n")
    (tmp_path / "svc" / ".rejected").mkdir()
    (tmp_path / "svc" / ".rejected" / "data-p-2.1763900000000.csv").write_text("a\n")
    assert [p.name for p in pending_files(tmp_path / "svc", final=False)] == ["data-p-1.1763900000000.csv"]
    assert [p.name for p in pending_files(tmp_path / "svc", final=True)] == [
        "data-p-1.1763900000000.csv", "data-p-1.csv"
    ]


def test_uploader_urls_and_repr_hide_the_token(tmp_path: Path) -> None:
    up = Uploader("http://cp:8080/", "svc", "tok-secret-123", tmp_path)
    f = tmp_path / "svc" / GOOD
    assert up.url_for(f) == f"http://cp:8080/api/v1/services/svc/data/{GOOD}"
    assert "tok-secret-123" not in repr(up)
