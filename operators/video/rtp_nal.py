"""Whole H.264 NAL units from FFmpeg's RTP depacketiser, without the frame of delay its parser adds.

FFmpeg's RTP H.264 depacketiser (RTSP, SDP inputs) hands out one packet per RTP packet: a single
NAL unit or an aggregate (STAP-A) with start codes, or one FU-A fragment of a large NAL — the first
with a start code, the others bare continuation bytes. It leaves joining them to the H.264 parser,
which ends a frame only when the next frame's first packet arrives: a frame interval (33 ms at
30 fps) per RTSP hop, measured. The RTP marker bit, which ends an access unit, is not passed on.

:class:`NalAssembler` joins the packets into whole NAL units itself, so the decoder (with
``flags2=+chunks``) can finish a picture as soon as its last slice is in. A NAL unit is known to
be whole when the next one starts or the timestamp changes (always right, a packet later), or
sooner by the rule FU-A senders follow: every fragment but a NAL's last is filled to the
payload size. So a continuation shorter than the longest seen ends its NAL, and a start packet
shorter than the longest FU-A start seen (one a continuation followed; before any, shorter than
``MIN_FRAGMENT``, below any RTP payload size in use) is a whole NAL of its own. Should a
continuation arrive right after the rule closed a NAL of the same timestamp (it misjudged this
sender), the early rule is switched off for the stream and the certain one alone is used. A
continuation with no NAL open otherwise lost its start packet (UDP): it is dropped and counted
(``orphans``), and the decoder conceals the slice as it would any loss.
"""

from __future__ import annotations

from typing import Any

START_CODES = (b"\x00\x00\x00\x01", b"\x00\x00\x01")
_NONE = object()  # no timestamp
MIN_FRAGMENT = 1000  # bytes: FU-A fragments fill RTP payloads of 1200-1460 bytes (MTU 1500), never this little


class NalAssembler:
    """Join depacketised RTP payloads (bytes, pts) into whole NAL units (bytes, pts), in order."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pts: Any = None
        self.max_start = 0  # longest FU-A start seen (a start packet that a continuation followed)
        self.max_cont = 0  # longest continuation seen (the sender's fragment payload)
        self._opened = 0  # length of the start packet of the NAL open now
        self.early = True
        self.misjudged = 0  # continuations right after the early rule closed their NAL (it was wrong)
        self.orphans = 0  # continuations whose start packet never came (lost)
        self._early_pts: Any = _NONE  # the timestamp of the last NAL the early rule closed

    def push(self, data: bytes, pts: Any) -> list[tuple[bytes, Any]]:
        """Take one depacketised payload; return the NAL units now known to be whole."""
        out: list[tuple[bytes, Any]] = []
        starts = data.startswith(START_CODES)
        if self._buf and (starts or pts != self._pts):
            out.append(self._take(early=False))
        if starts:
            self._buf += data
            self._pts, self._opened = pts, len(data)
            whole = self.early and len(data) < (self.max_start or MIN_FRAGMENT)
        elif self._buf:
            self._buf += data
            self.max_start = max(self.max_start, self._opened)  # the NAL's start was an FU-A start
            whole = self.early and len(data) < self.max_cont
            self.max_cont = max(self.max_cont, len(data))
        elif pts == self._early_pts:  # the rest of a NAL the rule handed out as whole: not this sender's way
            self.misjudged += 1
            self.early = False
            return out
        else:  # its start packet was lost
            self.orphans += 1
            return out
        if whole:
            out.append(self._take(early=True))
        return out

    def flush(self) -> list[tuple[bytes, Any]]:
        """The NAL unit still open (at the stream's end or a reconnection)."""
        return [self._take(early=False)] if self._buf else []

    def _take(self, *, early: bool) -> tuple[bytes, Any]:
        nal = (bytes(self._buf), self._pts)
        self._early_pts = self._pts if early else _NONE
        self._buf.clear()
        return nal
