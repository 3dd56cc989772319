"""Stored files appear whole or not at all, and a torn content-addressed blob is written again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from opsportal.storage import AtomicFileSystemStorage
from registry import artifacts


class DiesMidWrite(ContentFile):
    """Content whose writer is interrupted after the first chunk (as by SIGKILL or a full disk)."""

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield b"first half"
        raise OSError("No space left on device")


def test_an_interrupted_write_leaves_nothing_under_the_name(tmp_path: Path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    with pytest.raises(OSError, match="No space"):
        storage.save("results/ab/abc", DiesMidWrite(b""))
    assert not storage.exists("results/ab/abc")
    assert os.listdir(tmp_path / "results" / "ab") == []  # no partial file left behind either


def test_a_file_is_stored_whole_and_an_existing_one_is_never_replaced(tmp_path: Path):
    storage = AtomicFileSystemStorage(location=tmp_path)
    assert storage.save("kind/one", ContentFile(b"original")) == "kind/one"
    other = storage.save("kind/one", ContentFile(b"newcomer"))
    assert other != "kind/one"
    assert storage.open("kind/one").read() == b"original" and storage.open(other).read() == b"newcomer"
    assert oct((tmp_path / "kind" / "one").stat().st_mode & 0o777) == "0o644"


def test_a_torn_blob_is_written_again_by_the_next_save(tmp_path: Path):
    data = os.urandom(200_000)
    sha = hashlib.sha256(data).hexdigest()
    key = f"results/{sha[:2]}/{sha}"
    default_storage.save(key, ContentFile(data[:4096]))  # what an older, non-atomic writer left when killed
    blob = artifacts.blob_put_bytes(data, "results")
    assert (blob.key, blob.size) == (key, len(data))
    with artifacts.blob_local_copy(blob.key, sha, tmp_path) as copy:
        assert copy.read_bytes() == data
