"""``dmm.zoo.transfer.download`` against the local server: a range the server ignores, an
address that is not there."""

from __future__ import annotations

import os

import pytest

from dmm.zoo.transfer import DownloadError, TransferStopped, download


def test_a_server_that_ignores_the_range_sends_the_file_again(served, tmp_path):
    data = os.urandom(300_000)
    (served.folder / "f.bin").write_bytes(data)
    dest = tmp_path / "dl" / "f.bin"
    served.drop_after["f.bin"] = 1000
    with pytest.raises(TransferStopped, match="stopped at byte 1000 of 300000"):
        download(served.url + "f.bin", dest, progress=False)
    served.honour_range = False
    assert download(served.url + "f.bin", dest, progress=False).read_bytes() == data
    assert served.log[-1] == ("f.bin", None, 200) and not dest.with_name("f.bin.part").exists()


def test_an_address_that_is_not_there_is_named(served, tmp_path):
    with pytest.raises(DownloadError, match=f"{served.url}gone.bin: HTTP 404"):
        download(served.url + "gone.bin", tmp_path / "dl" / "gone.bin", progress=False)
    assert list((tmp_path / "dl").iterdir()) == []  # no .part either
