"""altcraft.backup.files: a spool restored by root belongs to the owner of its directory, the
platform's user (akmtad, running as that user, writes and removes its files); as another
user nothing is chowned. Extraction keeps to plain files inside the spool, also on Debian
12's Python 3.11.2 (no tarfile data filter)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from altcraft.backup import files

PLATFORM_USER = (65534, 65534)  # nobody:nogroup, an owner other than root


def _spool_tar(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    (source / "ab").mkdir(parents=True)
    (source / "ab" / "message.eml").write_text("Subject: hi\r\n\r\nbody\r\n")
    tar_path = tmp_path / "akmta.tar"
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
    return tar_path


def test_a_restored_spool_belongs_to_the_owner_of_its_directory(tmp_path):
    tar_path = _spool_tar(tmp_path)
    spool = tmp_path / "spool" / "akmta"
    spool.mkdir(parents=True)
    (spool / "stale.eml").write_text("gone after the restore")
    if os.geteuid() == 0:  # the spool left root's by an interrupted restore, its directory the platform's
        os.chown(spool.parent, *PLATFORM_USER)
    owner = (spool.parent.stat().st_uid, spool.parent.stat().st_gid)

    files.restore_spool(tar_path, spool)

    restored = sorted(p.relative_to(spool).as_posix() for p in spool.rglob("*"))
    assert restored == ["ab", "ab/message.eml"]
    assert {(p.stat().st_uid, p.stat().st_gid) for p in [spool, *spool.rglob("*")]} == {owner}
    assert (spool.stat().st_mode & 0o777) == 0o700


def test_without_a_spool_the_restore_takes_its_parents_owner(tmp_path):
    tar_path = _spool_tar(tmp_path)
    parent = tmp_path / "spool"
    parent.mkdir()
    if os.geteuid() == 0:
        os.chown(parent, *PLATFORM_USER)
    owner = (parent.stat().st_uid, parent.stat().st_gid)

    files.restore_spool(tar_path, parent / "akmta")

    assert {(p.stat().st_uid, p.stat().st_gid) for p in [parent / "akmta", *(parent / "akmta").rglob("*")]} == {owner}


@pytest.mark.parametrize("data_filter", [True, False], ids=["python-data-filter", "debian12-python-3.11.2"])
def test_extract_data_refuses_links_and_names_outside(tmp_path, monkeypatch, data_filter):
    if not data_filter:  # Debian 12's Python has no tarfile.data_filter (nor extractall's filter=)
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        real = tarfile.TarFile.extractall
        monkeypatch.setattr(tarfile.TarFile, "extractall",
                            lambda self, path=".", members=None, *, numeric_owner=False: real(
                                self, path, members, numeric_owner=numeric_owner))
    good = _spool_tar(tmp_path)
    with tarfile.open(good) as tar:
        files.extract_data(tar, tmp_path / "out")
    assert (tmp_path / "out" / "ab" / "message.eml").read_text().startswith("Subject: hi")

    for name, kind in (("../escape.eml", tarfile.REGTYPE), ("/abs.eml", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        bad = tmp_path / f"bad-{kind!r}-{len(name)}.tar"
        with tarfile.open(bad, "w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        with tarfile.open(bad) as tar:
            try:  # refused, or (an absolute name, by Python's filter) put inside: never outside
                files.extract_data(tar, tmp_path / "out2")
            except (ValueError, tarfile.TarError):
                pass
        assert not (tmp_path / "escape.eml").exists() and not Path("/abs.eml").exists()
        assert not (tmp_path / "out2" / "link").is_symlink()
