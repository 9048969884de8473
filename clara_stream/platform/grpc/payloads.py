"""Payload files over gRPC streams: uploads land whole or not at all; downloads carry a checksum.

An upload is a stream of ``PayloadChunk`` (``path`` relative, ``data``, and on each file's last
chunk its ``sha256``), closed by one chunk holding only ``end``. It is written into a hidden
folder and renamed into place only after that end chunk, the stream's own end and every file's
checksum; a stream cut short, a bad path or a mismatch removes the folder, so nothing is
registered. The end chunk is what says "whole": grpcio's server can see a cancelled stream's end
as a plain end (its receive-message callback marks the stream closed before the cancellation
arrives), so a client cut off between two files used to register the files it had sent. Work per
request is bounded (bytes and files).
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from clara_stream.platform.status import InvalidRequestError

MAX_BYTES = 4 << 30
MAX_FILES = 100_000
CHUNK = 1 << 20


def safe_relative(path: str, field: str = "path") -> PurePosixPath:
    """A relative path with no ``..``; raises InvalidRequestError naming the field."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("..", "") for part in p.parts) or "\\" in path:
        raise InvalidRequestError(f"{field}: expected a relative path inside the payload; got {path!r}")
    return p


def receive(chunks: Iterable[object], root: Path, *, max_bytes: int = MAX_BYTES) -> tuple[str, list[str], int]:
    """Write an upload stream under ``root/<id>``; return ``(id, files, bytes)``.

    Raises
    ------
    InvalidRequestError
        A bad path, a file without or with a wrong sha256, a chunk after a file's checksum,
        too many bytes or files, an empty upload, a stream without its end chunk or with
        chunks after it (the partial folder is removed first).
    """
    pid = uuid.uuid4().hex
    tmp = root / f".upload-{pid}"
    tmp.mkdir(parents=True)
    total, files, done, ended = 0, {}, set(), False
    try:
        for chunk in chunks:
            if ended:
                raise InvalidRequestError("end: expected nothing after the chunk marked end; got more chunks")
            if chunk.end:  # type: ignore[attr-defined]
                carried = [f for f in ("path", "data", "sha256") if getattr(chunk, f)]
                if carried:
                    raise InvalidRequestError(f"end: expected the end chunk to carry no path, data or sha256; "
                                              f"got {', '.join(carried)}")
                ended = True
                continue
            if not chunk.data and not chunk.sha256:  # type: ignore[attr-defined]
                raise InvalidRequestError(f"data: expected every chunk to carry data, a file's sha256 or end; "
                                          f"got an empty chunk for {chunk.path!r}")  # bounds the chunks by the bytes
            rel = str(safe_relative(chunk.path))  # type: ignore[attr-defined]
            if rel in done:
                raise InvalidRequestError(f"path: expected each file sent once; got more data for {rel!r} "
                                          f"after its sha256")
            if rel not in files:
                if len(files) >= MAX_FILES:
                    raise InvalidRequestError(f"path: expected at most {MAX_FILES} files; got more")
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                files[rel] = ((tmp / rel).open("wb"), hashlib.sha256())
            fh, digest = files[rel]
            data = chunk.data  # type: ignore[attr-defined]
            total += len(data)
            if total > max_bytes:
                raise InvalidRequestError(f"data: expected at most {max_bytes} bytes per upload; got more")
            fh.write(data)
            digest.update(data)
            if chunk.sha256:  # type: ignore[attr-defined]
                fh.close()
                if digest.hexdigest() != chunk.sha256.lower():  # type: ignore[attr-defined]
                    raise InvalidRequestError(f"sha256: expected {digest.hexdigest()} for {rel!r} as received; "
                                              f"got {chunk.sha256!r}")  # type: ignore[attr-defined]
                done.add(rel)
        missing = sorted(set(files) - done)
        if missing or not files:
            raise InvalidRequestError(f"sha256: expected a checksum closing every file; got none for "
                                      f"{missing or 'an empty upload'}")
        if not ended:
            raise InvalidRequestError(f"end: expected the upload to close with a chunk marked end; the stream "
                                      f"stopped after {len(files)} file(s) without it (cut short?)")
        (root / pid).parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(root / pid)
        return pid, sorted(files), total
    finally:
        for fh, _ in files.values():
            fh.close()
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it was renamed into place


def send(file: Path) -> Iterator[tuple[bytes, str]]:
    """``(data, sha256)`` pieces of a file; the checksum rides on the last piece only."""
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        data = fh.read(CHUNK)
        while True:
            nxt = fh.read(CHUNK)
            digest.update(data)
            yield data, "" if nxt else digest.hexdigest()
            if not nxt:
                return
            data = nxt


def confined(root: Path, rel: str) -> Path:
    """``root/rel`` if it stays inside ``root`` (symlinks resolved) and is a file."""
    path = (root / safe_relative(rel)).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise InvalidRequestError(f"path: expected a file inside {root.name}; got {rel!r}")
    return path
