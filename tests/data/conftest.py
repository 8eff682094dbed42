"""Fixtures of the data tests: raw Amazon-format files written on the fly, a local HTTP server."""
from __future__ import annotations

import gzip
import http.server
import json
import re
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def write_reviews(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt") as stream:
        for row in rows:
            stream.write(json.dumps(row) + "\n")
    return path


def write_meta(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt") as stream:
        for row in rows:
            stream.write(repr(row) + "\n")  # python literals, as the real meta files
    return path


def random_reviews(seed: int, n: int = 4000, n_users: int = 600, n_items: int = 200) -> list[dict]:
    """Skewed random reviews (so that k-core removes a good share), with some duplicate pairs."""
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.5, n) % n_users
    items = rng.zipf(1.3, n) % n_items
    return [
        {"reviewerID": f"U{u:05d}", "asin": f"B{i:09d}", "reviewerName": "x", "helpful": [0, 0],
         "reviewText": "fine", "overall": float(1 + (u + i) % 5), "summary": "ok",
         "unixReviewTime": 1300000000 + k, "reviewTime": "01 1, 2011"}
        for k, (u, i) in enumerate(zip(users.tolist(), items.tolist()))
    ]


def meta_for(reviews: list[dict], drop: int = 1) -> list[dict]:
    """A meta line per reviewed asin except the first `drop` ones (missing meta must be tolerated)."""
    asins = sorted({r["asin"] for r in reviews})[drop:]
    return [
        {"asin": a, "title": f"Title {a}", "brand": "Acme", "description": f"About {a}",
         "categories": [["Baby", "Toys"], ["Sale"]], "imUrl": f"images/{a}.jpg", "price": 9.5}
        for a in asins
    ]


@pytest.fixture
def rawfiles():
    """The raw-file writers above (tests cannot import conftest under --import-mode=importlib)."""
    return SimpleNamespace(write_reviews=write_reviews, write_meta=write_meta, random_reviews=random_reviews,
                           meta_for=meta_for)


@pytest.fixture
def raw_dir(tmp_path):
    """A raw folder in the layout of the download stage for category `Synthetic`."""
    folder = tmp_path / "raw"
    folder.mkdir()
    reviews = random_reviews(0)
    write_reviews(folder / "reviews_Synthetic_5.json.gz", reviews)
    write_meta(folder / "meta_Synthetic.json.gz", meta_for(reviews))
    return folder


class _State:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.types: dict[str, str] = {}
        # path -> actions for its next requests: 500, drop, stall (send half, then hang), slow, norange
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        state: _State = self.server.state
        with state.lock:
            state.requests.append((self.path, self.headers.get("Range")))
            plan = state.faults.get(self.path)
            action = plan.pop(0) if plan else None
        if action == "slow":
            time.sleep(2.0)
        if action == "500":
            self.send_error(500, "Internal Server Error")
            return
        if self.path not in state.files:
            self.send_error(404, "Not Found")
            return
        data = state.files[self.path]
        start = 0
        match = None if action == "norange" else re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", state.types.get(self.path, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if action == "drop":  # announce the whole body, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == "stall":  # announce the whole body, send half, then go silent past the client's timeout
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(1.5)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def http_server():
    """A threaded HTTP server on 127.0.0.1 (random port) serving `server.state.files` with planted faults."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = _State()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
