"""The codec worker process of :mod:`stream_worker`: one source's decode, overlay, KITTI and encode.

:func:`serve` opens the source and the stream's outputs, says ``ready`` (or its error), then a
reader thread moves frames into the shared slots and this thread takes detections back, in frame
order, draws them on the worker's own copy of the frame, writes its KITTI file and encodes it.
Messages to the app: ``ready``, ``shm`` (the slots' segment), ``frame``, ``end``, ``error``,
``result``; from the app: ``det`` and ``stop``.
"""

from __future__ import annotations

import pickle
import queue
import signal
import threading
from collections import deque
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np


def portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError with its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # any pickling failure: keep the words (the worker's errors already name the stream)
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def serve(index: int, uri: str, source_opts: dict[str, Any], output: dict[str, Any], slots: int, owner: str,
          frames: Any, dets: Any) -> None:
    """The worker process: open the source and the outputs, then move frames out and detections in."""
    from clara_stream.operators.video.batcher import open_source
    from clara_stream.operators.video.stream_output import open_stream_outputs

    for sig in (signal.SIGINT, signal.SIGTERM):  # sent to the whole group (Ctrl-C, systemd): the app stops us in
        signal.signal(sig, signal.SIG_IGN)  # order, and its exit alone (EOF on our pipe) finishes our files
    say_lock = threading.Lock()

    def say(*msg: Any) -> None:
        with say_lock:
            frames.send(msg)

    try:
        import cv2

        if output.get("opencv_threads"):
            cv2.setNumThreads(int(output["opencv_threads"]))
        src = open_source(uri, owner=owner, live=source_opts["live"], file=source_opts["file"])
    except BaseException as exc:
        say("error", portable(exc))
        return
    try:
        kitti, sinks = open_stream_outputs(**output["stream"])
    except BaseException as exc:
        src.close()
        say("error", portable(exc))
        return
    say("ready", describe(src, uri))
    _Worker(src, kitti, sinks, slots, owner, uri, say).run(dets)


class _Worker:
    """A reader thread (source → slot → app) and this thread (detections → drawn, KITTI, encoded)."""

    def __init__(self, src: Any, kitti: Path, sinks: list[Any], slots: int, owner: str, uri: str, say: Any):
        self.src, self.kitti, self.sinks, self.slots, self.owner, self.uri, self.say = (
            src, kitti, sinks, slots, owner, uri, say)
        self.free: queue.Queue[int | None] = queue.Queue()
        self.pending: deque[tuple[int, Any]] = deque()  # (slot, frame) sent, waiting for detections
        self.shm: SharedMemory | None = None
        self.retired: list[SharedMemory] = []  # segments of an earlier frame size (already unlinked)
        self.error: BaseException | None = None
        self.kitti_files = 0
        self.stopping = threading.Event()

    def read(self) -> None:
        """At most ``slots`` frames ahead of the detections: a slow model backs up into the source."""
        view = None
        try:
            while not self.stopping.is_set():
                try:
                    f = self.src.read(timeout_s=0.1)
                except (queue.Empty, TimeoutError):
                    continue  # a live source's silence is its own to judge (its timeout raises)
                if f is None:
                    break
                if view is None or f.rgb.shape != view.shape[1:]:
                    view = self._slots(f.rgb.shape, first=view is None)
                    if view is None:
                        return  # stopped while the app still held the old slots
                slot = self.free.get()
                if slot is None:
                    return
                view[slot] = f.rgb
                self.pending.append((slot, f))
                self.say("frame", slot, f.info, f.decoded_at, f.read_at)
            if not self.stopping.is_set():
                self.say("end")
        except BaseException as exc:  # the app raises it from read(), after the frames before it
            self.say("error", portable(named(exc, self.owner, self.uri)))

    def _slots(self, shape: tuple[int, ...], *, first: bool) -> np.ndarray | None:
        """Slots for frames of ``shape``: a new segment at the first frame and at a resolution change
        (a live source that reconnects at another size), once the app has given back every slot."""
        if not first:
            for _ in range(self.slots):  # every frame in flight has come back
                if self.free.get() is None:
                    return None
            old = self.shm
            old.unlink()  # type: ignore[union-attr]  # the app keeps its mapping for its views; the name goes
            self.retired.append(old)  # type: ignore[arg-type]
        size = self.slots * int(np.prod(shape))
        self.shm = SharedMemory(create=True, size=size)
        view = np.ndarray((self.slots, *shape), np.uint8, buffer=self.shm.buf)
        for s in range(self.slots):
            self.free.put(s)
        self.say("shm", self.shm.name, view.shape)
        return view

    def run(self, dets: Any) -> None:
        from clara_stream.operators.video.stream_output import render_frame

        thread = threading.Thread(target=self.read, name=f"{self.owner}-read", daemon=True)
        thread.start()
        try:
            while (msg := dets.recv())[0] != "stop":
                if self.error is not None:
                    continue  # failed: keep draining so the app never blocks on a full pipe
                try:
                    slot, f = self.pending.popleft()
                    if f.info.index != msg[1]:
                        raise ValueError(f"{self.owner}: expected detections for frame {f.info.index}; got them "
                                         f"for frame {msg[1]} [{self.uri}]")
                    render_frame(f.rgb, f.info, f.read_at, msg[2], self.kitti, self.sinks)
                    self.kitti_files += 1
                    self.free.put(slot)
                except BaseException as exc:  # raised by the app's next read and again by close()
                    self.error = portable(named(exc, self.owner, self.uri))
                    self.say("error", self.error)
        except (EOFError, OSError):
            pass  # the app is gone: finish the file all the same
        finally:
            self.finish(thread)

    def finish(self, thread: threading.Thread) -> None:
        """Stop reading, finalise every sink, say the result; the segment is unlinked whatever fails."""
        try:
            self.stopping.set()
            self.free.put(None)
            thread.join(timeout=10)
            self.src.close()
            error = self.error
            for sink in self.sinks:
                try:
                    sink.close()
                except BaseException as exc:  # any type: every sink finalised; the first error is the worker's
                    error = error or portable(named(exc, self.owner, self.uri))
            main = self.sinks[0]
            result = {"output": str(main.path), "frames": main.written, "kitti_files": self.kitti_files,
                      "timeline": list(main.timeline), "source": describe(self.src, self.uri), "error": error,
                      "live": [live_result(s) for s in self.sinks[1:]]}
            try:
                self.say("result", result)
            except (BrokenPipeError, OSError):
                pass
        finally:
            for shm in self.retired:  # unlinked at the change of size
                drop_segment(shm, unlink=False)
            if self.shm is not None:
                drop_segment(self.shm, unlink=True)


def drop_segment(shm: SharedMemory, *, unlink: bool) -> None:
    """Unmap a segment (and remove its name); a view still alive keeps the mapping until it goes."""
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
    try:
        shm.close()
    except BufferError:  # a frame or batch still refers to it: the mapping goes with that
        pass


def named(exc: BaseException, owner: str, uri: str | None = None) -> BaseException:
    """The worker's own errors as they are (they name the stream and the cause); any other type
    (``cv2.error``, an IndexError from a bad box) wrapped in a RuntimeError naming the stream."""
    if isinstance(exc, (OSError, RuntimeError, ValueError)):
        return exc
    where = f" [{uri}]" if uri else ""
    err = RuntimeError(f"{owner}: expected the frame drawn, its KITTI file and its sinks written; got {exc!r}{where}")
    err.__cause__ = exc
    return err


def describe(src: Any, uri: str) -> dict[str, Any]:
    """A live source's own account (status, drops, reconnects); a file's name."""
    return src.describe() if hasattr(src, "describe") else {"input": uri, "live": False}


def live_result(sink: Any) -> dict[str, Any]:
    """What the app's summary says of a live output of its own."""
    out = {"output": str(sink.path), "frames": sink.written}
    if hasattr(sink, "viewers"):
        out |= {"viewers": sink.viewers, "dropped": sink.dropped}
    return out
