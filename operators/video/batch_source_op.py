"""BatchSourceOp: N video sources (live URIs or files) → one FrameBatch per tick (nvstreammux style)."""

from __future__ import annotations

from typing import Any

from clara_stream.operators.video.batcher import FrameBatcher, open_source
from clara_stream.operators.video.contracts import FRAME_BATCH
from clara_stream.operators.video.live_queue import QUEUE_POLICIES
from clara_stream.operators.video.source import SUPPORTED_CODECS
from clara_stream.operators.video.stream_worker import CodecWorkers

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

FRAME_BATCH_PORT = P.suffixed(P.FRAME, "batch")


class BatchSourceOp(Operator):
    """Read several sources on their own threads and emit one batch of frames per tick.

    Ports
    -----
    frame_batch : FrameBatch, at most one (H, W, 3) uint8 RGB frame per source (sizes may differ),
        each with its source number, FrameInfo and glass-to-glass start clock

    Parameters
    ----------
    inputs : list of str
        Stream URIs (``rtsp://``, ``udp://``, ``tcp://``…) or video files, one per source (≥ 1).
    timeout_s : float
        How long a tick waits for the other sources after its first frame (a stalled source is
        left out of that batch and counted in ``missed``).
    max_batches : int
        Stop after this many batches (0 = until every source has ended).
    queue_size, queue_policy, retries, backoff_s, timeout_stream_s, transport, options
        Live sources: as VideoDecoderOp's (``timeout_stream_s`` is its ``timeout_s``; ``options``
        are further FFmpeg input options for every live source, e.g. V4L2 ``video_size``,
        ``framerate``, ``input_format``).
    loop : bool
        File sources: start again at the end.
    codecs : list of str
        Accepted codecs.
    decode_threads : int
        FFmpeg threads per source's decoder (0 = FFmpeg's choice). N sources already decode on N
        threads: one each (the default) keeps N decoders from spawning cores + 1 threads apiece.
    processes : bool
        Decode (and, with a BatchOutputOp given ``workers``, draw, KITTI and encode) each source in
        a codec worker process of its own (:mod:`stream_worker`), frames shared with this process
        zero-copy. False: on threads of this process.
    slots : int
        With ``processes``: frames in flight per source between its worker and the model (≥ 1).

    Notes
    -----
    Sources are opened in ``start()``: a bad one fails the run before any output, naming it.
    """

    outputs = (Port(FRAME_BATCH_PORT, FRAME_BATCH),)

    def __init__(self, fragment: Any, *args: Any, inputs: list[str] | tuple[str, ...] | None = None,
                 timeout_s: float = 0.04, max_batches: int = 0, queue_size: int = 8,
                 queue_policy: str = "drop_oldest", retries: int = 5, backoff_s: float = 0.25,
                 timeout_stream_s: float = 5.0, transport: str = "tcp", loop: bool = False,
                 codecs: list[str] | tuple[str, ...] = SUPPORTED_CODECS, decode_threads: int = 1,
                 processes: bool = False, slots: int = 4, options: dict[str, Any] | None = None,
                 name: str = "batcher", **kwargs: Any) -> None:
        if float(timeout_s) < 0 or int(max_batches) < 0 or int(queue_size) < 1 or int(decode_threads) < 0 \
                or int(slots) < 1:
            raise ValueError(f"BatchSourceOp: expected timeout_s >= 0, max_batches >= 0, queue_size >= 1, "
                             f"decode_threads >= 0, slots >= 1; got {timeout_s}, {max_batches}, {queue_size}, "
                             f"{decode_threads}, {slots}")
        if queue_policy not in QUEUE_POLICIES:
            raise ValueError(f"BatchSourceOp: expected queue_policy in {QUEUE_POLICIES}; got {queue_policy!r}")
        if options is not None and not isinstance(options, dict):
            raise ValueError(f"BatchSourceOp: expected options as a mapping of FFmpeg options; got {options!r}")
        if loop and not int(max_batches):
            raise ValueError("BatchSourceOp: expected max_batches > 0 when looping files; got 0")
        self.inputs_ = [str(u) for u in (inputs or [])]
        self.timeout_s, self.max_batches = float(timeout_s), int(max_batches)
        self._live = {"codecs": tuple(codecs), "queue_size": int(queue_size), "drop_policy": queue_policy,
                      "retries": int(retries), "backoff_s": float(backoff_s), "timeout_s": float(timeout_stream_s),
                      "transport": transport, "decode_threads": int(decode_threads),
                      "options": {str(k): str(v) for k, v in (options or {}).items()}}
        self._file = {"codecs": tuple(codecs), "queue_size": int(queue_size), "loop": bool(loop),
                      "decode_threads": int(decode_threads)}
        self.sources: list[Any] = []
        self.workers: CodecWorkers | None = None
        if processes:
            self.workers = CodecWorkers(slots=int(slots), owner="BatchSourceOp")
            self.workers.set_sources(self.inputs_, live=self._live, file=self._file)
        self.batcher: FrameBatcher | None = None
        self.emitted = 0
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        if not self.inputs_:
            raise ValueError("BatchSourceOp: expected inputs (--input A --input B …); got none")
        if self.workers is not None:
            self.sources = list(self.workers.start())  # idempotent: the outputs may have started them
        else:
            for k, uri in enumerate(self.inputs_):
                self.sources.append(open_source(uri, owner=f"BatchSourceOp[{k}]", live=self._live, file=self._file))
        self.batcher = FrameBatcher(self.sources, timeout_s=self.timeout_s, owner="BatchSourceOp")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        # with codec workers a source's next frame waits for the outputs' detections of an earlier
        # one: never hold the only scheduler thread for a first frame (greedy, or one thread)
        batch = self.batcher.next(first_wait_s=0.02 if self.workers is not None else None)
        if batch is not None and not batch.items:
            return  # nothing yet this tick: the scheduler runs the others and calls again
        if batch is None:
            self.stop_stream()
            return
        self.emit(op_output, batch, FRAME_BATCH_PORT)
        self.emitted += 1
        if self.max_batches and self.emitted >= self.max_batches:
            self.stop_stream()

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.release("sources")  # the last of source and outputs closes the workers
            return
        for s in self.sources:
            s.close()

    @property
    def stats(self) -> list[dict[str, Any]]:
        out = []
        for k, uri in enumerate(self.inputs_):
            src = self.sources[k] if k < len(self.sources) else None
            d = src.describe() if hasattr(src, "describe") else {"input": uri, "live": False}
            if self.batcher is not None:
                d |= {"batched": self.batcher.frames[k], "missed_ticks": self.batcher.missed[k]}
            out.append(d)
        return out
