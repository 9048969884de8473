"""Codec workers: each source's decode, overlay, KITTI and encode in a process of its own.

DeepStream batches N streams into one inference while each stream's decoder and encoder run
apart from it (NVDEC/NVENC, GStreamer threads without a shared lock). On a CPU box the model
gains nothing from a batch (measured with this detector: 0.67 ms per frame at batch 1 and at
batch 4), so a batched app wins only by spending less around the model, and in one interpreter
the codec work of N streams contends for one GIL: the threaded batched app used 1.5–1.6 of 2
cores. :class:`CodecWorkers` starts one process per source (never a fork of the running engine,
see :func:`worker_context`); the app's process keeps the batcher and the model. Frames reach it through shared
memory (``BatchItem.rgb`` is a read-only view on the worker's slot: zero copy), detections go
back over a pipe (a few hundred bytes); the worker draws them on its own copy of the frame,
writes the KITTI file and encodes. Each source's outputs are opened by its worker before the
first frame is read, so an address that cannot be served fails the run before any output.

Flow control: a worker has ``slots`` frames in flight; it reads its source again only when the
app has sent back detections for one of them, so a slow model backs up into the source's own
bounded queue (live: its drop policy, counted) and never into memory.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from clara_stream.operators.video.codec_worker import drop_segment, live_result, serve

READY_TIMEOUT_S = 60.0  # a worker imports numpy/PyAV/OpenCV and opens its source and outputs
CLOSE_TIMEOUT_S = 60.0  # flushing an encoder and finalising its MP4


class CodecWorkerError(RuntimeError):
    """A codec worker ended without saying why (killed, or out of memory)."""


WORKER_MODULES = ["numpy", "cv2", "av", "clara_stream.operators.video.codec_worker",
                  "clara_stream.operators.video.batcher", "clara_stream.operators.video.stream_output"]


def worker_context() -> Any:
    """``forkserver`` with the workers' imports preloaded: one interpreter start and import for all
    workers (≈ 0.55 s CPU each otherwise), each worker a fork of that small server, never of the
    running engine. Where forkserver is missing, ``spawn``."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(WORKER_MODULES)
    return ctx


def stop_forkserver() -> None:
    """Stop and reap the forkserver once its workers are done, so that the CPU time of the server and
    of every worker it reaped is this process's children's (``RUSAGE_CHILDREN``: what a benchmark or
    ``time`` reports); otherwise the server outlives the run and that time is lost. The next run
    starts a new server."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if server is not None and getattr(server, "_forkserver_pid", None) is not None and hasattr(server, "_stop"):
        server._stop()


class CodecWorkers:
    """One codec worker process per source, shared by the batching source and the batched outputs.

    The source operator gives the inputs (:meth:`set_sources`), the output operator the per-stream
    outputs (:meth:`set_outputs`), each from its own validated parameters; the first of the two
    ``start()`` calls :meth:`start`, the second finds it done. Each operator's ``stop()`` calls
    :meth:`release`; the workers are closed by the last one, so neither operator can close them
    under the other. :meth:`close` is idempotent.
    """

    def __init__(self, *, slots: int = 4, owner: str = "CodecWorkers"):
        if int(slots) < 1:
            raise ValueError(f"{owner}: expected slots >= 1; got {slots}")
        self.slots, self.owner = int(slots), owner
        self.inputs: list[str] = []
        self.source_opts: dict[str, Any] = {}
        self.outputs: list[dict[str, Any]] = []
        self.workers: list[CodecWorker] = []
        self.results: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._started = self._closed = False
        self._users: set[str] = set()

    def set_sources(self, inputs: list[str], *, live: dict[str, Any], file: dict[str, Any]) -> None:
        self.inputs, self.source_opts = list(inputs), {"live": dict(live), "file": dict(file)}
        self._users.add("sources")

    def set_outputs(self, outputs: list[dict[str, Any]]) -> None:
        self.outputs = [dict(o) for o in outputs]
        self._users.add("outputs")

    def release(self, user: str) -> list[dict[str, Any]]:
        """``user`` ("sources" or "outputs") is done; the last one closes the workers."""
        self._users.discard(user)
        return self.close() if not self._users else self.results

    def start(self) -> list[CodecWorker]:
        """Start every worker and wait until each has opened its source and outputs (idempotent).

        A source or output that fails raises here, named, and every started worker is stopped.
        """
        with self._lock:
            if self._started:
                return self.workers
            if len(self.outputs) != len(self.inputs):
                raise ValueError(f"{self.owner}: expected the outputs of all {len(self.inputs)} sources from "
                                 f"BatchOutputOp(workers=...) (a codec worker draws and encodes its own stream); got "
                                 f"{len(self.outputs)}")
            self._started = True
            ctx = worker_context()
            try:
                for k, uri in enumerate(self.inputs):
                    self.workers.append(CodecWorker(ctx, k, uri, self.source_opts, self.outputs[k],
                                                    slots=self.slots, owner=f"BatchSourceOp[{k}]"))
                for w in self.workers:
                    w.wait_ready()
            except BaseException:
                self._stop_all(timeout_s=10.0)  # the ready ones close their outputs; the rest are killed
                self._closed = True
                raise
            return self.workers

    def _stop_all(self, *, timeout_s: float) -> list[BaseException]:
        """Ask every worker to stop at once, then collect each (N workers: one wait, not N)."""
        for w in self.workers:
            w.ask_stop()
        errors: list[BaseException] = []
        for w in self.workers:
            try:
                w.close(timeout_s=timeout_s)
            except BaseException as exc:  # any type: every worker is stopped; the first error is the run's
                errors.append(exc)
        if self.workers:
            stop_forkserver()
        return errors

    def submit(self, source: int, index: int, det: Any) -> None:
        self.workers[source].submit(index, det)

    def close(self) -> list[dict[str, Any]]:
        """Stop every worker (each flushes and finalises its outputs); the first error is raised."""
        with self._lock:
            if self._closed:
                return self.results
            self._closed = True
            errors = self._stop_all(timeout_s=CLOSE_TIMEOUT_S)
            self.results = [w.result for w in self.workers]
            if errors:
                raise errors[0]
            return self.results


class CodecWorker:
    """The app's side of one worker: frames in (``read``), detections out (``submit``)."""

    def __init__(self, ctx: Any, index: int, uri: str, source_opts: dict[str, Any], output: dict[str, Any], *,
                 slots: int, owner: str):
        self.index, self.uri, self.owner = index, uri, owner
        self._frames, child_frames = ctx.Pipe(duplex=False)  # worker → app
        child_dets, self._dets = ctx.Pipe(duplex=False)  # app → worker
        self.process = ctx.Process(target=serve, name=f"codec-worker-{index}", daemon=True,
                                   args=(index, uri, source_opts, output, slots, owner, child_frames, child_dets))
        self.process.start()
        child_frames.close()
        child_dets.close()
        self.described: dict[str, Any] = {"input": uri}
        self.result: dict[str, Any] = {}
        self._shm: SharedMemory | None = None
        self._old: list[SharedMemory] = []  # earlier segments (a resolution change): views may still use them
        self._view: np.ndarray | None = None
        self._ended = self._closed = False
        self._error: BaseException | None = None
        self._send_lock = threading.Lock()

    def _recv(self, timeout_s: float | None) -> tuple[Any, ...] | None:
        """The next message, or None when none came within ``timeout_s``."""
        try:
            if not self._frames.poll(timeout_s):
                return None
            return self._frames.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            raise CodecWorkerError(f"{self.owner}: expected its codec worker running; got it gone (exit code "
                                   f"{self.process.exitcode}) [{self.uri}]") from None

    def wait_ready(self) -> None:
        msg = self._recv(READY_TIMEOUT_S)
        if msg is None:
            raise CodecWorkerError(f"{self.owner}: expected its codec worker ready within {READY_TIMEOUT_S:.0f} s; "
                                   f"got no answer [{self.uri}]")
        if msg[0] == "error":
            self.process.join(timeout=10)
            raise msg[1]
        self.described = msg[1]

    def _attach(self, name: str, shape: tuple[int, ...]) -> None:
        """Map the worker's slots (again after a resolution change: the old mapping stays for its views)."""
        if self._shm is not None:
            self._old.append(self._shm)
        self._shm = SharedMemory(name=name)
        self._view = np.ndarray(shape, np.uint8, buffer=self._shm.buf)
        self._view.flags.writeable = False

    def read(self, timeout_s: float | None = None) -> Any:
        """The next frame (its ``rgb`` a read-only view on a shared slot), ``None`` at the end.

        Raises ``queue.Empty`` when none came within ``timeout_s``, the source's own error as it
        is, and :class:`CodecWorkerError` when the worker is gone.
        """
        from clara_stream.operators.video.source import DecodedFrame

        while not self._ended and not self._closed:
            msg = self._recv(timeout_s)
            if msg is None:
                raise queue.Empty
            kind = msg[0]
            if kind == "frame":
                _, slot, info, decoded_at, read_at = msg
                return DecodedFrame(self._view[slot], info, decoded_at, read_at)  # type: ignore[index]
            if kind == "shm":
                self._attach(msg[1], msg[2])
            elif kind == "end":
                self._ended = True
            elif kind == "error":
                self._ended, self._error = True, msg[1]
                raise msg[1]
            elif kind == "result":
                self.result, self.described = msg[1], msg[1].get("source", self.described)
        return None

    def submit(self, index: int, det: Any) -> None:
        """Detections for the oldest frame in flight (frame ``index``): the worker draws and writes it."""
        with self._send_lock:
            try:
                self._dets.send(("det", int(index), det))
            except (BrokenPipeError, OSError):  # what it said is read by close(), not here: read() may be reading
                self.process.join(timeout=5)
                raise self._error or CodecWorkerError(
                    f"{self.owner}: expected its codec worker running; got it gone (exit code "
                    f"{self.process.exitcode}) [{self.uri}]") from None

    def _collect(self, timeout_s: float) -> None:
        """Read what the worker still says (its error, its result) until it closes its end."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if not self._frames.poll(max(0.0, deadline - time.monotonic())):
                    break
                msg = self._frames.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "result":
                self.result = msg[1]
                self.described = msg[1].get("source", self.described)
                return
            if msg[0] == "error" and self._error is None:
                self._error = msg[1]

    def ask_stop(self) -> None:
        """Tell the worker to finish (it flushes and finalises its outputs, then says its result)."""
        with self._send_lock:
            try:
                self._dets.send(("stop",))
            except (BrokenPipeError, OSError):
                pass  # gone already: close() reports it

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the worker, wait for its result, release the pipes and the mapping; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.ask_stop()
        self._collect(timeout_s)
        self.process.join(timeout=timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._release()
        error = self.result.get("error")
        if error is not None:
            raise error
        if not self.result:
            raise CodecWorkerError(f"{self.owner}: expected its codec worker to finish its outputs; got exit code "
                                   f"{self.process.exitcode} and no result [{self.uri}]")

    def _release(self) -> None:
        """Close both pipes and the mappings; unlink the segment of a worker that died before it could."""
        for conn in (self._frames, self._dets):
            conn.close()
        self._view = None
        for shm in [*self._old, *([self._shm] if self._shm is not None else [])]:
            drop_segment(shm, unlink=not self.result)  # a worker that finished has unlinked its own

    def describe(self) -> dict[str, Any]:
        """The source's account: the worker's at start, then its final one (drops, reconnects)."""
        return dict(self.described)


__all__ = ["CodecWorker", "CodecWorkerError", "CodecWorkers", "live_result", "stop_forkserver", "worker_context"]
