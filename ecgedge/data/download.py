"""Download PhysioNet databases: every file verified against the database's own ``SHA256SUMS.txt``.

:func:`download_database` fetches ``{base_url}/files/{slug}/{version}/SHA256SUMS.txt`` first
(PhysioNet publishes one per project version; lines ``<sha256>  <path>`` as ``sha256sum`` writes
them), then the files it lists, or those matching ``include`` globs:

* a file already in place whose sha256 matches is kept, so a second run fetches nothing; one whose
  hash does not match is deleted and fetched again, never used;
* bytes go to ``FILE.part`` beside the target; an interrupted transfer resumes with
  ``Range: bytes=N-``, and a server that answers 200 instead of 206 sends the file again from zero;
* a ``.part`` takes its final name (``os.replace``, atomic) only when its sha256 matches; a
  mismatching file is deleted and a truncated one resumed, ``attempts`` tries in all with
  exponential backoff; a file that never verifies is reported as failed and is not left under its
  name (a ``.part`` cut short by the network stays, for the next run to resume);
* every path in ``SHA256SUMS.txt`` must stay inside the destination folder: absolute paths, ``..``,
  drive letters and backslashes are refused before anything is fetched;
* ``workers`` threads transfer in parallel (the work waits on the network, so threads), every
  request has a timeout, and a tqdm bar counts bytes.

The server is ``base_url``, else ``$ECGEDGE_PHYSIONET_URL``, else https://physionet.org (tests point
it at a local server).

Which versions: PhysioNet serves a published project version at ``/files/<slug>/<version>/``.
Checked in May 2026 against PhysioNet's project pages and the download scripts of public
repositories: ``mitdb/1.0.0``, ``afdb/1.0.0``, ``ecg-arrhythmia/1.0.0`` and ``ptb-xl/1.0.3`` (the
latest PTB-XL). The 2017 Challenge (``challenge-2017``) has one published version, **1.0.0** (its
project page reads "Published: Feb. 1, 2017. Version: 1.0.0" and every download script found points
at ``files/challenge-2017/1.0.0/``); no 1.1.0 was found, so ``cinc2017`` uses 1.0.0. The sizes in the
table are rough estimates from record counts and lengths, to choose ``--include``, not to verify.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from tqdm.auto import tqdm

from ecgedge import __version__
from ecgedge.bounds import problem as bound_problem
from ecgedge.errors import ConfigError, DownloadError
from ecgedge.fsio import MARKER, FolderKind, atomic_write_text, claim_in_place, own_files
from ecgedge.hashing import file_sha256

PHYSIONET_URL = "https://physionet.org"
BASE_URL_ENV = "ECGEDGE_PHYSIONET_URL"
SUMS_FILE = "SHA256SUMS.txt"
PART_SUFFIX = ".part"
_CHUNK = 1 << 16
_USER_AGENT = f"ecgedge/{__version__} (python urllib)"


@dataclass(frozen=True)
class Database:
    """One PhysioNet database: ``name`` is ecgedge's name for it, ``slug``/``version`` PhysioNet's."""

    name: str
    slug: str
    version: str
    description: str
    approx_size: str

    def url(self, base_url: str, path: str = "") -> str:
        """URL of ``path`` (relative, POSIX) in this database on ``base_url``."""
        return f"{base_url.rstrip('/')}/files/{self.slug}/{self.version}/{urllib.parse.quote(path)}"


DATABASES: dict[str, Database] = {db.name: db for db in (
    Database("cinc2017", "challenge-2017", "1.0.0",
             "PhysioNet/CinC Challenge 2017: 8,528 single-lead AliveCor ECGs, 300 Hz, 9-61 s, labels N/A/O/~",
             "~0.2 GB in training/"),
    Database("ecg-arrhythmia", "ecg-arrhythmia", "1.0.0",
             "Chapman-Shaoxing and Ningbo: 45,152 12-lead ECGs, 500 Hz, 10 s, SNOMED-CT rhythm codes",
             "~5 GB"),
    Database("mitdb", "mitdb", "1.0.0",
             "MIT-BIH Arrhythmia Database: 48 two-lead Holter records, 360 Hz, 30 min, beat and rhythm annotations",
             "~100 MB"),
    Database("afdb", "afdb", "1.0.0",
             "MIT-BIH Atrial Fibrillation Database: 25 two-lead records, 250 Hz, 10 h, AF rhythm annotations",
             "~600 MB"),
    Database("ptb-xl", "ptb-xl", "1.0.3",
             "PTB-XL: 21,799 12-lead ECGs, 10 s at 500 Hz and 100 Hz, SCP-ECG statements",
             "~3 GB"),
)}


def database(name: str) -> Database:
    """The known database called ``name`` (:data:`DATABASES`); :class:`ConfigError` naming the known ones otherwise."""
    try:
        return DATABASES[name]
    except KeyError:
        raise ConfigError(f"unknown database {name!r}; known: {', '.join(DATABASES)}") from None


def databases_table() -> str:
    """One line per known database: name (PhysioNet slug/version, approximate size): description."""
    return "\n".join(f"{db.name} ({db.slug}/{db.version}, {db.approx_size}): {db.description}" for db in DATABASES.values())


def physionet_url(base_url: str | None = None) -> str:
    """The server to download from: ``base_url``, else ``$ECGEDGE_PHYSIONET_URL``, else https://physionet.org."""
    url = base_url or os.environ.get(BASE_URL_ENV) or PHYSIONET_URL
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL (e.g. {PHYSIONET_URL})")
    return url.rstrip("/")


@dataclass(frozen=True)
class DownloadConfig:
    """What to fetch and how hard to try.

    Args:
        include: globs on paths relative to the database folder (``fnmatch``: ``*`` also matches
            ``/``, so ``training/*`` is the whole training tree); empty = every file.
        max_files: fetch at most this many of the selected files, in ``SHA256SUMS.txt`` order (0 = all).
        workers: parallel transfers.
        attempts: tries per file (the first included) before it counts as failed.
        timeout_s: seconds a request may wait to connect or for the next data.
        backoff_s: wait before the second try; doubled before each further one.
        deadline_s: seconds the whole download may take (default 24 h): ``timeout_s`` bounds each
            read, so a server sending one byte a second would otherwise hold it forever. When it
            passes, transfers stop; what was fetched is kept and a rerun resumes the rest.
        max_file_bytes: a file growing beyond this many bytes fails (default 8 GiB; see
            :mod:`ecgedge.bounds` for both limits and why).
    """

    include: tuple[str, ...] = ()
    max_files: int = 0
    workers: int = 4
    attempts: int = 3
    timeout_s: float = 30.0
    backoff_s: float = 1.0
    deadline_s: float = 86_400.0
    max_file_bytes: int = 8 * 2**30

    def __post_init__(self):
        object.__setattr__(self, "include", tuple(self.include))
        if any(not g for g in self.include):
            raise ConfigError("an include glob is empty")
        if self.max_files < 0:
            raise ConfigError(f"max_files must be >= 0 (0 = all), got {self.max_files}")
        if self.workers < 1 or self.attempts < 1:
            raise ConfigError(f"workers and attempts must be >= 1, got {self.workers} and {self.attempts}")
        if self.timeout_s <= 0 or self.backoff_s < 0:
            raise ConfigError(f"timeout_s must be > 0 and backoff_s >= 0, got {self.timeout_s} and {self.backoff_s}")
        for name, value in (("download deadline", self.deadline_s), ("downloaded file size", self.max_file_bytes)):
            if why := bound_problem(name, value):
                raise ConfigError(why)


@dataclass(frozen=True)
class RemoteFile:
    """One line of ``SHA256SUMS.txt``: a path relative to the database folder and its sha256 (lowercase hex)."""

    path: str
    sha256: str


_SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *]?(.+)")  # "<hash>  <path>", "<hash> *<path>" (binary mode) or "<hash> <path>"


def files_from_sha256sums(text: str) -> list[RemoteFile]:
    """Parse ``SHA256SUMS.txt``; :class:`DownloadError` for a malformed line or a path that would leave the folder."""
    files: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _SUMS_LINE.fullmatch(line)
        if m is None:
            raise DownloadError(f"{SUMS_FILE} line {n} is not '<sha256> <path>': {line[:100]!r}")
        digest, path = m.group(1).lower(), safe_relative_path(m.group(2), where=f"{SUMS_FILE} line {n}")
        if files.setdefault(path, digest) != digest:
            raise DownloadError(f"{SUMS_FILE} lists {path} twice with different sha256")
    if not files:
        raise DownloadError(f"{SUMS_FILE} lists no file")
    _refuse_collisions(list(files))
    return [RemoteFile(path, digest) for path, digest in files.items()]


def _refuse_collisions(paths: list[str]) -> None:
    """Names that would land on one another's bytes: ``X`` and ``X.part`` (a file and another's
    partial download), names of the download's own files, two names equal on a case-insensitive
    disk, and a file that is also another's folder."""
    listed = set(paths)
    own = {SUMS_FILE, SUMS_FILE + PART_SUFFIX, MARKER}
    folded: dict[str, str] = {}
    folders = {str(PurePosixPath(p).parent) for p in paths} | {str(q) for p in paths for q in PurePosixPath(p).parents}
    for p in paths:
        if p in own:
            raise DownloadError(f"{SUMS_FILE} lists {p!r}, a name the download itself writes; refused")
        if p.endswith(PART_SUFFIX) and p[: -len(PART_SUFFIX)] in listed:
            raise DownloadError(f"{SUMS_FILE} lists both {p[: -len(PART_SUFFIX)]!r} and {p!r}: the second is the "
                                "first's partial download; refused")
        if (other := folded.setdefault(p.casefold(), p)) != p:
            raise DownloadError(f"{SUMS_FILE} lists {other!r} and {p!r}, one file on a case-insensitive disk; refused")
        if p in folders:
            raise DownloadError(f"{SUMS_FILE} lists {p!r} as a file and as a folder of other files; refused")


def safe_relative_path(path: str, where: str = "path") -> str:
    """``path`` as a normalised relative POSIX path that stays inside its folder; :class:`DownloadError` otherwise."""
    p = PurePosixPath(path)
    if ("\\" in path or "\0" in path or p.is_absolute() or re.match(r"[A-Za-z]:", path)
            or ".." in p.parts or p.name in ("", ".") or path.endswith("/")):
        raise DownloadError(f"{where}: refusing {path!r}: a file must stay inside the destination folder "
                            "(no absolute path, '..', drive letter or backslash)")
    return p.as_posix()


def select_files(files: Sequence[RemoteFile], include: Sequence[str] = (), max_files: int = 0) -> list[RemoteFile]:
    """The files matching any ``include`` glob (all when empty), at most ``max_files`` (0 = all)."""
    chosen = [f for f in files if not include or any(fnmatch.fnmatchcase(f.path, g) for g in include)]
    if not chosen:
        raise DownloadError(f"no file of {SUMS_FILE} matches {' or '.join(map(repr, include))} "
                            f"({len(files)} files listed, e.g. {files[0].path!r})")
    return chosen[:max_files] if max_files else chosen


class FileStatus(str, Enum):
    fetched = "fetched"
    present = "present"  # already in place with the right sha256
    failed = "failed"


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one file: ``received`` bytes over the network this run, ``reason`` of a failure."""

    path: str
    status: FileStatus
    received: int = 0
    attempts: int = 0
    reason: str = ""


@dataclass(frozen=True)
class DownloadResult:
    """Every selected file with its outcome, in ``SHA256SUMS.txt`` order; truthy when none failed."""

    database: Database
    base_url: str
    dest: Path
    files: tuple[FileOutcome, ...]
    seconds: float

    def _with(self, status: FileStatus) -> list[FileOutcome]:
        return [f for f in self.files if f.status is status]

    @property
    def fetched(self) -> list[FileOutcome]:
        return self._with(FileStatus.fetched)

    @property
    def present(self) -> list[FileOutcome]:
        return self._with(FileStatus.present)

    @property
    def failed(self) -> list[FileOutcome]:
        return self._with(FileStatus.failed)

    @property
    def received(self) -> int:
        """Bytes received over the network, partial and rejected transfers included."""
        return sum(f.received for f in self.files)

    def __bool__(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        db = self.database
        lines = [f"{db.name} ({db.slug} {db.version}) from {self.base_url} -> {self.dest}",
                 f"{len(self.fetched)} fetched ({_size(self.received)} in {self.seconds:.1f} s), "
                 f"{len(self.present)} already present, {len(self.failed)} failed"]
        lines += [f"  failed: {f.path}: {f.reason}" for f in self.failed]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """:class:`DownloadError` when any file failed (the CLI's exit status)."""
        if self.failed:
            raise DownloadError(f"{len(self.failed)} of {len(self.files)} file(s) could not be fetched and verified; "
                                "run the same command again to retry them")


def download_database(db: Database | str, dest: str | Path, config: DownloadConfig = DownloadConfig(), *,
                      base_url: str | None = None, progress: bool = True) -> DownloadResult:
    """Download a PhysioNet database into ``dest``, verifying every file against its ``SHA256SUMS.txt``.

    Args:
        db: a name from :data:`DATABASES` (e.g. ``"mitdb"``) or a :class:`Database`.
        dest: folder for the database's files (created); ``SHA256SUMS.txt`` is kept there too.
        config: selection, parallelism, attempts and timeouts (:class:`DownloadConfig`).
        base_url: server; default ``$ECGEDGE_PHYSIONET_URL``, else https://physionet.org.
        progress: show a tqdm bar in bytes.

    Returns a :class:`DownloadResult`; files that failed are in it (``raise_if_failed`` turns them
    into an error). Raises :class:`DownloadError` when ``SHA256SUMS.txt`` cannot be fetched or is
    malformed or unsafe, :class:`ConfigError` for an unknown name or a ``dest`` that is not a folder.
    """
    db = database(db) if isinstance(db, str) else db
    base = physionet_url(base_url)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} exists and is not a folder")
    t0 = time.perf_counter()
    text = _fetch_sums(db, base, config)
    files = select_files(files_from_sha256sums(text), config.include, config.max_files)
    listed = {SUMS_FILE, *(f.path for f in files)}
    claim_in_place(dest, FolderKind.download, replace=True, legacy=lambda folder: _database_files(folder, listed))
    own_files(dest, *listed)
    atomic_write_text(dest / SUMS_FILE, text)
    with tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=db.name, disable=not progress) as bar:
        try:
            outcomes = _Fetcher(db, base, dest, config, bar).fetch_all(files)
        except _DeadlinePassed:
            raise DownloadError(f"{db.name}: the download deadline of {config.deadline_s:g} s passed; files fetched so "
                                f"far are kept (verified), partial ones resume: run again to go on") from None
    return DownloadResult(db, base, dest, outcomes, time.perf_counter() - t0)


def _database_files(folder: Path, listed: set[str]) -> list[str] | None:
    """A folder written before folder markers is a download when it holds nothing but the database's
    own files (those ``SHA256SUMS.txt`` lists, their ``.part`` files, the list itself); ``None`` else."""
    allowed = listed | {p + PART_SUFFIX for p in listed}
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(set(present) & listed) if all(p in allowed for p in present) else None


# ---- transfers


class _Retry(Exception):
    """A transfer went wrong in a way another try may fix (truncated, odd range answer)."""


class _Stopped(Exception):
    """The run is being abandoned (Ctrl-C or an error elsewhere): stop between chunks."""


class _DeadlinePassed(Exception):
    """The whole download's deadline passed: every transfer stops (their .part files stay)."""


class _TooLarge(Exception):
    """A file grew beyond the size cap: it fails, its .part is removed."""


def _retryable(code: int) -> bool:
    return code >= 500 or code in (408, 429)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _request(url: str, offset: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _backoff(config: DownloadConfig, attempt: int) -> None:
    """Wait before try ``attempt`` (2, 3, ...): backoff_s, then doubling."""
    time.sleep(config.backoff_s * 2 ** (attempt - 2))


# A SHA256SUMS.txt names one file per ~80-byte line: 64 MiB is 800,000 files, beyond any PhysioNet database.
_SUMS_MAX_BYTES = 64 * 2**20


def _read_bounded(resp, url: str, deadline: float) -> bytes:
    """The body of ``resp``, refused past :data:`_SUMS_MAX_BYTES` or ``deadline`` (time.monotonic)."""
    out = bytearray()
    while block := resp.read1(_CHUNK):
        out += block
        if len(out) > _SUMS_MAX_BYTES:
            raise DownloadError(f"{url}: more than {_SUMS_MAX_BYTES} bytes; not a {SUMS_FILE}")
        if time.monotonic() > deadline:
            raise DownloadError(f"{url}: the download deadline passed while reading {SUMS_FILE}")
    return bytes(out)


def _fetch_sums(db: Database, base: str, config: DownloadConfig) -> str:
    url = db.url(base, SUMS_FILE)
    for attempt in range(1, config.attempts + 1):
        if attempt > 1:
            _backoff(config, attempt)
        try:
            with urllib.request.urlopen(_request(url), timeout=config.timeout_s) as resp:
                return _read_bounded(resp, url, time.monotonic() + config.deadline_s).decode("utf-8")
        except urllib.error.HTTPError as exc:
            exc.close()
            if not _retryable(exc.code) or attempt == config.attempts:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} (is {db.slug} {db.version} published there?)") from None
        except UnicodeDecodeError:
            raise DownloadError(f"{url} is not UTF-8 text") from None
        except (OSError, http.client.HTTPException) as exc:
            if attempt == config.attempts:
                raise DownloadError(f"{url}: {_reason(exc)}") from None
    raise AssertionError("unreachable")


def _sha256_of_prefix(path: Path):
    """A running sha256 that has read all of ``path`` (the part already downloaded)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h


def _range_start(content_range: str | None) -> int | None:
    m = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (content_range or "").strip())
    return int(m.group(1)) if m else None


class _Fetcher:
    """Fetches and verifies the files of one database; one instance shared by the worker threads."""

    def __init__(self, db: Database, base: str, dest: Path, config: DownloadConfig, bar):
        self.db, self.base, self.dest, self.config, self.bar = db, base, dest, config, bar
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.deadline = time.monotonic() + config.deadline_s

    def fetch_all(self, files: Sequence[RemoteFile]) -> tuple[FileOutcome, ...]:
        done: dict[str, FileOutcome] = {}
        with ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="ecgedge-download") as pool:
            futures = [pool.submit(self.fetch, f) for f in files]
            try:
                for fut in as_completed(futures):
                    outcome = fut.result()
                    done[outcome.path] = outcome
                    with self._lock:
                        self.bar.set_postfix_str(f"{len(done)}/{len(files)} files", refresh=False)
            except BaseException:
                # Ctrl-C (or a bug): running transfers stop at their next chunk and keep their .part.
                self._stop.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return tuple(done[f.path] for f in files)

    def fetch(self, remote: RemoteFile) -> FileOutcome:
        final = self.dest / remote.path
        if final.is_file():
            if file_sha256(final) == remote.sha256:
                return FileOutcome(remote.path, FileStatus.present)
            final.unlink()  # a wrong file is never used, nor left under the right name
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + PART_SUFFIX)
        url = self.db.url(self.base, remote.path)
        received = 0

        def on_bytes(n: int) -> None:
            nonlocal received
            received += n
            with self._lock:
                self.bar.update(n)

        reason = ""
        for attempt in range(1, self.config.attempts + 1):
            if attempt > 1:
                _backoff(self.config, attempt)
            if time.monotonic() > self.deadline:
                raise _DeadlinePassed()
            try:
                digest = self._transfer(url, part, on_bytes)
            except urllib.error.HTTPError as exc:
                exc.close()
                reason = _reason(exc)
                if not _retryable(exc.code):
                    return FileOutcome(remote.path, FileStatus.failed, received, attempt, reason)
                continue
            except (OSError, http.client.HTTPException, _Retry) as exc:
                reason = _reason(exc)  # the .part stays: the next try resumes it
                continue
            except _TooLarge as exc:
                part.unlink(missing_ok=True)
                return FileOutcome(remote.path, FileStatus.failed, received, attempt, str(exc))
            if digest == remote.sha256:
                os.replace(part, final)
                return FileOutcome(remote.path, FileStatus.fetched, received, attempt)
            part.unlink()
            reason = f"sha256 mismatch: received {digest[:12]}, {SUMS_FILE} lists {remote.sha256[:12]}"
        return FileOutcome(remote.path, FileStatus.failed, received, self.config.attempts, reason)

    def _transfer(self, url: str, part: Path, on_bytes: Callable[[int], None]) -> str:
        """Fetch ``url`` into ``part``, resuming what ``part`` holds; returns the sha256 of the whole file."""
        offset = part.stat().st_size if part.is_file() else 0
        try:
            resp = urllib.request.urlopen(_request(url, offset), timeout=self.config.timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            # Range not satisfiable: the .part is at least as long as the file, so not a prefix of it.
            exc.close()
            part.unlink()
            return self._transfer(url, part, on_bytes)
        with resp:
            if offset and resp.status == 206:
                if _range_start(resp.headers.get("Content-Range")) != offset:
                    part.unlink()
                    raise _Retry(f"asked for bytes {offset}- and got {resp.headers.get('Content-Range')!r}")
                h, mode = _sha256_of_prefix(part), "ab"
            elif resp.status == 200:  # the whole file (no .part, or the server ignored Range)
                h, mode, offset = hashlib.sha256(), "wb", 0
            else:
                raise _Retry(f"unexpected HTTP {resp.status}")
            length = resp.headers.get("Content-Length")
            expected = offset + int(length) if length and length.isdigit() else None
            cap = self.config.max_file_bytes
            if expected is not None and expected > cap:
                raise _TooLarge(f"the server announces {expected} bytes, more than the {cap}-byte cap per file")
            size = offset
            with open(part, mode) as f:
                # read1: at most one read of the socket per block, so the deadline is looked at after
                # each one, however slowly the server sends (read(n) waits for all n bytes)
                while block := resp.read1(_CHUNK):
                    if self._stop.is_set():
                        raise _Stopped()
                    if time.monotonic() > self.deadline:
                        raise _DeadlinePassed()
                    if size + len(block) > cap:
                        raise _TooLarge(f"more than the {cap}-byte cap per file received; refused")
                    f.write(block)
                    h.update(block)
                    size += len(block)
                    on_bytes(len(block))
        if expected is not None and size < expected:
            raise _Retry(f"connection closed after {size} of {expected} bytes")
        return h.hexdigest()
