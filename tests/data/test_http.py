"""Resumable verified downloads against a local HTTP server with planted faults."""
import gzip
import hashlib
import os

import pytest

from viral.data.http import DownloadError, fetch, fetch_from_mirrors, part_path

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # several read chunks


def _serve(server, path="/f.bin", data=PAYLOAD):
    server.state.files[path] = data
    return server.url + path


def _fetch(url, dest, **kwargs):
    return fetch(url, dest, retries=kwargs.pop("retries", 3), backoff_s=0.0, timeout_s=5.0, show_progress=False,
                 **kwargs)


def test_plain_download_is_identical_and_recorded(http_server, tmp_path):
    url = _serve(http_server)
    got = _fetch(url, tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert got.size == len(PAYLOAD) and got.sha256 == hashlib.sha256(PAYLOAD).hexdigest() and got.url == url
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_404_is_one_line_and_leaves_nothing(http_server, tmp_path):
    with pytest.raises(DownloadError, match=r"/missing\.bin: HTTP 404") as err:
        _fetch(http_server.url + "/missing.bin", tmp_path / "m.bin")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert len(http_server.state.requests) == 1  # a 404 is not retried


def test_500_then_success(http_server, tmp_path):
    url = _serve(http_server)
    http_server.state.faults["/f.bin"] = ["500", "500"]
    _fetch(url, tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert len(http_server.state.requests) == 3


def test_persistent_500_gives_up_after_the_retries(http_server, tmp_path):
    url = _serve(http_server)
    http_server.state.faults["/f.bin"] = ["500"] * 10
    with pytest.raises(DownloadError, match="gave up after 3 attempts: HTTP 500"):
        _fetch(url, tmp_path / "f.bin", retries=2)
    assert not (tmp_path / "f.bin").exists()


def test_dropped_connection_resumes_with_range_to_an_identical_file(http_server, tmp_path):
    url = _serve(http_server)
    http_server.state.faults["/f.bin"] = ["drop", "drop"]
    got = _fetch(url, tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert got.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    ranges = [r for _, r in http_server.state.requests]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[2] > ranges[1]
    assert not part_path(tmp_path / "f.bin").exists()


def test_interrupted_run_resumes_from_the_part_file(http_server, tmp_path):
    url = _serve(http_server)
    part_path(tmp_path / "f.bin").write_bytes(PAYLOAD[:1000])
    _fetch(url, tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert http_server.state.requests == [("/f.bin", "bytes=1000-")]


def test_server_ignoring_range_rewrites_from_the_start(http_server, tmp_path):
    url = _serve(http_server)
    part_path(tmp_path / "f.bin").write_bytes(b"stale bytes from elsewhere")
    http_server.state.faults["/f.bin"] = ["norange"]
    _fetch(url, tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_oversized_part_restarts_cleanly(http_server, tmp_path):
    url = _serve(http_server)
    part_path(tmp_path / "f.bin").write_bytes(PAYLOAD + b"junk")
    _fetch(url, tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"expected_size": len(PAYLOAD) + 1}, f"size {len(PAYLOAD)} bytes, expected {len(PAYLOAD) + 1}"),
        ({"expected_sha256": "0" * 64}, "sha256 .* expected 0000"),
    ],
)
def test_wrong_size_or_checksum_deletes_the_file(http_server, tmp_path, kwargs, message):
    url = _serve(http_server)
    with pytest.raises(DownloadError, match=message):
        _fetch(url, tmp_path / "f.bin", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_retried(http_server, tmp_path):
    url = _serve(http_server, data=b"small")
    http_server.state.faults["/f.bin"] = ["slow"]
    fetch(url, tmp_path / "f.bin", retries=2, backoff_s=0.0, timeout_s=0.5, show_progress=False)
    assert (tmp_path / "f.bin").read_bytes() == b"small"


def test_mirrors_fall_back_and_report_every_failure(http_server, tmp_path):
    good = _serve(http_server, "/b/f.bin")
    got = fetch_from_mirrors([http_server.url + "/a/f.bin", good], tmp_path / "f.bin", retries=0, backoff_s=0.0,
                             show_progress=False)
    assert got.url == good and (tmp_path / "f.bin").read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match=r"g\.bin: every mirror failed: .*/a/g\.bin: HTTP 404 .* \| .*/b/g\.bin: HTTP 404"):
        fetch_from_mirrors([http_server.url + "/a/g.bin", http_server.url + "/b/g.bin"], tmp_path / "g.bin",
                           retries=0, backoff_s=0.0, show_progress=False)


GZ = gzip.compress(os.urandom(300_000))  # a small gzip file (< 1 MiB) that does not shrink
HTML = b"<!DOCTYPE html>\n<html><body>Service temporarily unavailable</body></html>\n"


def test_a_page_served_with_200_is_refused_and_the_next_mirror_used(http_server, tmp_path):
    bad, good = _serve(http_server, "/a/f.gz", HTML), _serve(http_server, "/b/f.gz", GZ)
    got = fetch_from_mirrors([bad, good], tmp_path / "f.gz", retries=0, backoff_s=0.0, show_progress=False,
                             magic=b"\x1f\x8b")
    assert got.url == good and (tmp_path / "f.gz").read_bytes() == GZ
    with pytest.raises(DownloadError) as err:
        _fetch(bad, tmp_path / "g.gz", magic=b"\x1f\x8b")
    assert str(err.value) == (f"{bad}: body starts with {HTML[:24]!r} (an HTML page, not the file), "
                              "expected b'\\x1f\\x8b'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]  # nothing of the page was kept


def test_a_page_answering_a_resume_leaves_the_partial_file_alone(http_server, tmp_path):
    url = _serve(http_server, "/f.gz", HTML)
    part = part_path(tmp_path / "f.gz")
    part.write_bytes(GZ[:1000])
    http_server.state.faults["/f.gz"] = ["norange"]  # a 200 page instead of the 206 continuation
    with pytest.raises(DownloadError, match="an HTML page"):
        _fetch(url, tmp_path / "f.gz", magic=b"\x1f\x8b")
    assert part.read_bytes() == GZ[:1000]
    _serve(http_server, "/f.gz", GZ)
    _fetch(url, tmp_path / "f.gz", magic=b"\x1f\x8b")
    assert (tmp_path / "f.gz").read_bytes() == GZ and http_server.state.requests[-1] == ("/f.gz", "bytes=1000-")


def test_a_part_begun_by_an_unchecked_run_is_checked_when_complete(http_server, tmp_path):
    url = _serve(http_server, "/f.gz", HTML + GZ)
    part_path(tmp_path / "f.gz").write_bytes(HTML)
    with pytest.raises(DownloadError, match="an HTML page.*the partial file was deleted"):
        _fetch(url, tmp_path / "f.gz", magic=b"\x1f\x8b")
    assert list(tmp_path.iterdir()) == []


def test_a_mirror_dying_for_good_keeps_the_partial_file_for_the_next_run(http_server, tmp_path):
    urls = [_serve(http_server, "/a/f.bin"), _serve(http_server, "/b/f.bin")]
    http_server.state.faults["/a/f.bin"] = ["drop"] * 2
    http_server.state.faults["/b/f.bin"] = ["500"] * 2
    with pytest.raises(DownloadError, match=r"every mirror failed: .*bytes kept in .*f\.bin\.part to resume"):
        fetch_from_mirrors(urls, tmp_path / "f.bin", retries=1, backoff_s=0.0, show_progress=False)
    kept = part_path(tmp_path / "f.bin").stat().st_size
    assert kept >= len(PAYLOAD) // 2
    fetch_from_mirrors(urls, tmp_path / "f.bin", retries=1, backoff_s=0.0, show_progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert http_server.state.requests[-1] == ("/a/f.bin", f"bytes={kept}-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_another_mirror_continues_the_same_file_but_never_mixes_in_another(http_server, tmp_path):
    same, other = _serve(http_server, "/b/f.bin"), _serve(http_server, "/c/f.bin", PAYLOAD[::-1] + b"longer")
    dying = _serve(http_server, "/a/f.bin")
    http_server.state.faults["/a/f.bin"] = ["drop"]
    with pytest.raises(DownloadError):
        _fetch(dying, tmp_path / "f.bin", retries=0)
    kept = part_path(tmp_path / "f.bin").stat().st_size
    _fetch(same, tmp_path / "f.bin", retries=0)  # same size announced: a copy of the file, continued
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD and http_server.state.requests[-1] == ("/b/f.bin", f"bytes={kept}-")
    (tmp_path / "f.bin").unlink()
    http_server.state.faults["/a/f.bin"] = ["drop"]
    with pytest.raises(DownloadError):
        _fetch(dying, tmp_path / "f.bin", retries=0)
    _fetch(other, tmp_path / "f.bin", retries=1)  # another size: started again, not appended
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD[::-1] + b"longer"


def test_a_small_file_keeps_what_arrived_before_a_stall(http_server, tmp_path):
    assert len(GZ) < (1 << 20)
    url = _serve(http_server, "/f.gz", GZ)
    http_server.state.faults["/f.gz"] = ["stall"]
    with pytest.raises(DownloadError, match="timed out|connection lost"):
        fetch(url, tmp_path / "f.gz", retries=0, backoff_s=0.0, timeout_s=0.5, show_progress=False)
    kept = part_path(tmp_path / "f.gz").stat().st_size
    assert 0 < kept <= len(GZ) // 2
    _fetch(url, tmp_path / "f.gz")
    assert (tmp_path / "f.gz").read_bytes() == GZ and http_server.state.requests[-1] == ("/f.gz", f"bytes={kept}-")


def test_a_stall_before_the_first_block_is_retried(http_server, tmp_path):
    url = _serve(http_server, "/tiny.bin", b"x" * 1000)
    http_server.state.faults["/tiny.bin"] = ["stall", "stall"]
    with pytest.raises(DownloadError, match=r"gave up after 1 attempts: connection lost after 0 bytes"):
        fetch(url, tmp_path / "tiny.bin", retries=0, backoff_s=0.0, timeout_s=0.5, show_progress=False)
    fetch(url, tmp_path / "tiny.bin", retries=1, backoff_s=0.0, timeout_s=0.5, show_progress=False)
    assert (tmp_path / "tiny.bin").read_bytes() == b"x" * 1000
