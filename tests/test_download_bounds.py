"""Issue 25, policy 4 for downloads: a whole-transfer deadline, a per-file size cap, names that cannot
collide, and a destination folder the download owns. Real sockets: a local HTTP server per test.

Before: ``data download`` never finished against a server sending one byte per second (the timeout
bounded each read, not the transfer), and a ``SHA256SUMS.txt`` listing both ``X`` and ``X.part``
ended "0 failed" with the wrong bytes in ``X``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ecgedge.data.download import DATABASES, SUMS_FILE, DownloadConfig, download_database, files_from_sha256sums
from ecgedge.errors import ConfigError, DownloadError

MITDB = DATABASES["mitdb"]
H = "0" * 64


def _sums(files: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(b).hexdigest()}  {name}\n" for name, b in files.items()).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes], *, dribble_s: float = 0.0, announce: int | None = None, no_length: bool = False):
        self.files = {f"files/{MITDB.slug}/{MITDB.version}/{k}": v for k, v in {**files, SUMS_FILE: _sums(files)}.items()}
        self.dribble_s, self.announce, self.no_length = dribble_s, announce, no_length
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        data = srv.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        is_sums = self.path.endswith(SUMS_FILE)
        if is_sums or not srv.no_length:
            self.send_header("Content-Length", str(len(data) if is_sums or srv.announce is None else srv.announce))
        self.end_headers()
        if is_sums or not srv.dribble_s:
            self.wfile.write(data)
            return
        for i in range(len(data)):  # one byte at a time: each read is well inside the timeout
            if srv.stop.is_set():
                return
            try:
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(srv.dribble_s)


@pytest.fixture
def serve():
    running = []

    def start(files, **kw) -> _Server:
        srv = _Server(files, **kw)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()


def _cfg(**kw) -> DownloadConfig:
    return DownloadConfig(**{"workers": 2, "attempts": 1, "timeout_s": 5.0, "backoff_s": 0.0, **kw})


# ---- names that collide


@pytest.mark.parametrize("names, match", [
    (["100.dat", "100.dat.part"], "partial download"),
    (["sub/x.hea", "sub/x.hea.part"], "partial download"),
    (["100.dat", "100.DAT"], "case-insensitive"),
    (["RECORDS", "RECORDS/100.dat"], "as a file and as a folder"),
    (["SHA256SUMS.txt"], "the download itself writes"),
    ([".ecgedge-folder.json"], "the download itself writes"),
])
def test_colliding_names_are_refused(names, match):
    with pytest.raises(DownloadError, match=match):
        files_from_sha256sums("".join(f"{H}  {n}\n" for n in names))


def test_a_lone_part_suffix_is_just_a_name():
    assert [f.path for f in files_from_sha256sums(f"{H}  notes.part\n")] == ["notes.part"]


def test_issue_case_x_and_x_part_end_with_an_error_not_wrong_bytes(serve, tmp_path):
    srv = serve({"X": b"right bytes", "X.part": b"wrong"})
    with pytest.raises(DownloadError, match="partial download"):
        download_database("mitdb", tmp_path / "d", _cfg(), base_url=srv.url, progress=False)
    assert not (tmp_path / "d" / "X").exists()


# ---- size cap


def test_announced_size_over_the_cap_fails_the_file(serve, tmp_path):
    srv = serve({"big.dat": b"x" * 5000, "ok.hea": b"hea"}, announce=None)
    res = download_database("mitdb", tmp_path / "d", _cfg(max_file_bytes=4096), base_url=srv.url, progress=False)
    failed = {o.path: o.reason for o in res.files if o.status.value == "failed"}
    assert list(failed) == ["big.dat"] and "cap" in failed["big.dat"]
    assert (tmp_path / "d" / "ok.hea").read_bytes() == b"hea" and not list((tmp_path / "d").glob("big.dat*"))


def test_unannounced_size_over_the_cap_fails_the_file(serve, tmp_path):
    srv = serve({"big.dat": b"y" * 200_000}, no_length=True)
    res = download_database("mitdb", tmp_path / "d", _cfg(max_file_bytes=4096), base_url=srv.url, progress=False)
    (o,) = res.files
    assert o.status.value == "failed" and "cap" in o.reason and not list((tmp_path / "d").glob("big.dat*"))


# ---- deadline


def test_a_dribbling_server_meets_the_deadline(serve, tmp_path):
    """One byte every 20 ms (every read well inside the 5-s timeout): the 1-s deadline ends it."""
    srv = serve({"slow.dat": b"z" * 10_000}, dribble_s=0.02)
    with pytest.raises(DownloadError, match="deadline"):
        download_database("mitdb", tmp_path / "d", _cfg(deadline_s=1.0), base_url=srv.url, progress=False)
    assert (tmp_path / "d" / "slow.dat.part").is_file()  # kept: a rerun resumes it


@pytest.mark.parametrize("kw", [{"deadline_s": 0}, {"deadline_s": float("inf")}, {"max_file_bytes": -1},
                                {"max_file_bytes": 2**60}])
def test_limits_themselves_are_bounded(kw):
    with pytest.raises(ConfigError, match="out of range"):
        DownloadConfig(**kw)


# ---- the destination folder


def test_a_users_folder_is_refused_and_a_download_resumes(serve, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    srv = serve({"100.hea": b"hea"})
    with pytest.raises(ConfigError, match="not an ecgedge download"):
        download_database("mitdb", mine, _cfg(), base_url=srv.url, progress=False)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    dest = tmp_path / "d"
    assert download_database("mitdb", dest, _cfg(), base_url=srv.url, progress=False)
    (dest / "NOTES.md").write_text("mine")
    assert download_database("mitdb", dest, _cfg(), base_url=srv.url, progress=False)  # its own folder: resumes
    assert (dest / "NOTES.md").read_text() == "mine"
