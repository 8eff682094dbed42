"""Resumable, verified HTTP downloads (standard library only).

A download streams into `<dest>.part`, resumes with an HTTP Range request after a dropped connection
or an interrupted run, retries transient failures (connection errors, timeouts, 5xx, 429) with
exponential backoff, checks the body's first bytes (so an error page served with 200 is refused), the
size (Content-Length / Content-Range and an optional expected size) and an optional sha256, and only
then renames the file into place. A `.part` survives every failure (the next attempt, mirror or run
continues it; `<dest>.part.json` records where it came from); only one that turns out wrong is deleted.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from viral.io import write_json
from viral.stage import StageError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Read, write and hash in blocks this small: a connection lost mid-block loses the block, so small files
# keep progress across failures too.
CHUNK_BYTES = 64 << 10
USER_AGENT = "viral-pipeline/0.1 (+https://github.com/; research data download)"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(StageError):
    """A download that failed for good (one line: URL and reason)."""


class HTTPStatusError(DownloadError):
    """A non-retryable HTTP status (4xx other than 429)."""

    def __init__(self, url: str, code: int, reason: str) -> None:
        super().__init__(f"{url}: HTTP {code} {reason}")
        self.code = code


class TransientError(Exception):
    """A failure worth retrying: connection lost, timeout, 5xx, 429 (a partial file is kept for a resume)."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def open_url(request: urllib.request.Request, timeout_s: float) -> http.client.HTTPResponse:
    """urlopen with failures sorted into HTTPStatusError (give up) and TransientError (retry)."""
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code == 429:
            raise TransientError(f"HTTP {err.code} {err.reason}") from None
        raise HTTPStatusError(request.full_url, err.code, str(err.reason)) from None
    except (TimeoutError, socket.timeout) as err:
        raise TransientError(f"timed out after {timeout_s:g} s ({err})", timeout=True) from None
    except urllib.error.URLError as err:
        timeout = isinstance(err.reason, (TimeoutError, socket.timeout))
        raise TransientError(f"{err.reason}", timeout=timeout) from None
    except (ConnectionError, http.client.HTTPException) as err:
        raise TransientError(f"{type(err).__name__}: {err}") from None


def with_retries(call: Callable[[], T], what: str, retries: int, backoff_s: float) -> T:
    """`call()`, retried on TransientError up to `retries` times, waiting backoff_s * 2^attempt between."""
    for attempt in range(retries + 1):
        try:
            return call()
        except TransientError as err:
            if attempt == retries:
                raise
            wait = backoff_s * 2**attempt
            log.warning("%s: %s; retry %d/%d in %.1f s", what, err, attempt + 1, retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def get_bytes(url: str, timeout_s: float, retries: int, backoff_s: float) -> tuple[bytes, str]:
    """The body and Content-Type of `url` (small resources such as images), with retries."""

    def once() -> tuple[bytes, str]:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with open_url(request, timeout_s) as response:
            try:
                body = response.read()
            except (TimeoutError, socket.timeout) as err:
                raise TransientError(f"timed out reading the body ({err})", timeout=True) from None
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                raise TransientError(f"connection lost ({err})") from None
            return body, response.headers.get("Content-Type", "")

    return with_retries(once, url, retries, backoff_s)


@dataclass(frozen=True)
class Downloaded:
    url: str
    size: int
    sha256: str


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def origin_path(part: Path) -> Path:
    """Beside a `.part`: the URL it was fetched from and the size that server announced (JSON)."""
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    origin_path(part).unlink(missing_ok=True)


def _record_origin(part: Path, url: str, total: int | None) -> None:
    write_json(origin_path(part), {"url": url, "size": total})


def _same_resource(part: Path, url: str, total: int | None) -> bool:
    """Whether a `.part` may be continued from `url`: fetched from it, or from a mirror that announced the
    same size (mirrors hold copies of one file; a different size means a different file)."""
    try:
        origin = json.loads(origin_path(part).read_text())
    except (OSError, ValueError):
        return True  # a part without a readable record (an older run): the final size check decides
    return origin.get("url") == url or (total is not None and origin.get("size") == total)


def sha256_file(path: Path, upto: int | None = None) -> "hashlib._Hash":
    digest = hashlib.sha256()
    remaining = path.stat().st_size if upto is None else upto
    with open(path, "rb") as stream:
        while remaining > 0:
            block = stream.read(min(CHUNK_BYTES, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _total_size(response: http.client.HTTPResponse, offset: int) -> int | None:
    """The full size of the resource, from Content-Range (206) or Content-Length (200)."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if not match or int(match.group(1)) != offset:
            raise TransientError(f"unexpected Content-Range {response.headers.get('Content-Range')!r} for offset {offset}")
        return None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("Content-Length")
    return int(length) if length is not None else None


def _wrong_start(head: bytes, magic: bytes) -> str | None:
    """Why a body starting with `head` is not the expected file (it must start with `magic`), or None."""
    if head.startswith(magic):
        return None
    looks = " (an HTML page, not the file)" if head.lstrip()[:1] == b"<" else ""
    return f"body starts with {head[:24]!r}{looks}, expected {magic!r}"


def _attempt(url: str, part: Path, timeout_s: float, progress, magic: bytes = b"") -> int | None:
    """One request, appending to `part` from its current size; returns the expected total size.

    A body that does not start with `magic` is refused before it touches `part` (DownloadError)."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = open_url(request, timeout_s)
    except HTTPStatusError as err:
        if err.code == 416 and offset:
            _discard(part)  # the partial file does not fit the resource any more: start again
            raise TransientError(f"HTTP 416 resuming at byte {offset}; restarting") from None
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: rewrite from the start
        total = _total_size(response, offset)
        if offset and not _same_resource(part, url, total):
            _discard(part)  # progress on another mirror's different file: never mix the two
            raise TransientError("the partial file came from another mirror with another size; restarting")
        if progress is not None:
            progress.reset(total=total)
            progress.update(offset)
        try:
            block = response.read(CHUNK_BYTES)
            if not offset and (problem := _wrong_start(block, magic)):
                raise DownloadError(f"{url}: {problem}")
            if not offset or not origin_path(part).exists():
                _record_origin(part, url, total)
            with open(part, "ab" if offset else "wb") as stream:
                while block:
                    stream.write(block)
                    if progress is not None:
                        progress.update(len(block))
                    block = response.read(CHUNK_BYTES)
        except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException, OSError) as err:
            kept = part.stat().st_size if part.exists() else 0
            raise TransientError(f"connection lost after {kept} bytes ({err})",
                                 timeout=isinstance(err, (TimeoutError, socket.timeout))) from None
    size = part.stat().st_size
    if total is not None and size < total:
        raise TransientError(f"connection closed at {size} of {total} bytes")
    return total


def fetch(url: str, dest: str | Path, *, retries: int = 5, timeout_s: float = 60.0, backoff_s: float = 1.0,
          expected_size: int | None = None, expected_sha256: str | None = None, magic: bytes = b"",
          show_progress: bool = True) -> Downloaded:
    """Download `url` to `dest` (resuming a `.part` left by an earlier attempt); verify and rename.

    `magic`: the bytes the file starts with (e.g. gzip's); any other body (an error page served with
    200) is refused. Raises DownloadError (one line) after `retries` failed retries (the `.part` is kept
    for the next run to resume), on a non-retryable HTTP status, on a body that is not the file, or when
    the size or sha256 is wrong (the bad `.part` is then deleted).
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    progress = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not show_progress,
                    mininterval=1.0)
    start = time.perf_counter()
    try:
        total = with_retries(lambda: _attempt(url, part, timeout_s, progress, magic), url, retries, backoff_s)
    except TransientError as err:
        kept = f"; {part.stat().st_size} bytes kept in {part} to resume" if part.is_file() else ""
        raise DownloadError(f"{url}: gave up after {retries + 1} attempts: {err}{kept}") from None
    finally:
        progress.close()
    size = part.stat().st_size
    problem = None
    if expected_size is not None and size != expected_size:
        problem = f"size {size} bytes, expected {expected_size}"
    elif total is not None and size != total:
        problem = f"size {size} bytes, server announced {total}"
    else:
        with open(part, "rb") as stream:  # a resumed part was begun by an earlier, unchecked run
            problem = _wrong_start(stream.read(len(magic)), magic)
    digest = sha256_file(part).hexdigest()
    if problem is None and expected_sha256 and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256}"
    if problem:
        _discard(part)
        raise DownloadError(f"{url}: {problem}; the partial file was deleted, run again to retry")
    os.replace(part, dest)
    origin_path(part).unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    log.info("%s: %d bytes in %.1f s (%.1f MB/s)", dest.name, size, seconds, size / 1e6 / max(seconds, 1e-9))
    return Downloaded(url=url, size=size, sha256=digest)


def fetch_from_mirrors(urls: list[str], dest: str | Path, **kwargs) -> Downloaded:
    """Try each URL in turn (e.g. SNAP, then UCSD); one line listing every mirror's failure if all fail.

    A partial file survives every failure: the next mirror, or the next run, continues it when it serves
    the same file (same URL or same announced size), else starts that file again."""
    failures = []
    for url in urls:
        try:
            return fetch(url, dest, **kwargs)
        except DownloadError as err:
            failures.append(str(err))
    raise DownloadError(f"{Path(dest).name}: every mirror failed: " + " | ".join(failures))
