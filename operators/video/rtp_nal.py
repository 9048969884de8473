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
continuation arrive right after the rule ended a fragmented NAL of the same timestamp at a short
continuation (it misjudged this sender's fragment size), the early rule is switched off for the
stream and the certain one alone is used. A continuation with no NAL open otherwise lost its
start packet (UDP): it is dropped and counted (``orphans``), and the decoder conceals the slice as
it would any loss. That includes one right after a small single-packet NAL (SPS, PPS, SEI) the
rule handed out: the next NAL's FU-A start lost looks just like that, and one lost packet must not
cost the stream its low delay. A NAL growing past ``max_nal`` bytes (a sender that never starts a
new one: memory would grow without bound) is dropped with the rest of its fragments and counted
(``oversized``).
"""

from __future__ import annotations

from typing import Any

START_CODES = (b"\x00\x00\x00\x01", b"\x00\x00\x01")
_NONE = object()  # no timestamp
MIN_FRAGMENT = 1000  # bytes: FU-A fragments fill RTP payloads of 1200-1460 bytes (MTU 1500), never this little
MAX_NAL = 8 << 20  # bytes: well above a live stream's slices; bounds memory when a sender never ends a NAL


class NalAssembler:
    """Join depacketised RTP payloads (bytes, pts) into whole NAL units (bytes, pts), in order."""

    def __init__(self, max_nal: int = MAX_NAL) -> None:
        if int(max_nal) < 1:
            raise ValueError(f"NalAssembler: expected max_nal >= 1; got {max_nal}")
        self.max_nal = int(max_nal)
        self._buf = bytearray()
        self._pts: Any = None
        self.max_start = 0  # longest FU-A start seen (a start packet that a continuation followed)
        self.max_cont = 0  # longest continuation seen (the sender's fragment payload)
        self._opened = 0  # length of the start packet of the NAL open now
        self.early = True
        self.misjudged = 0  # continuations right after the early rule ended their fragmented NAL (it was wrong)
        self.orphans = 0  # continuations whose start packet never came (lost)
        self.oversized = 0  # NAL units dropped for growing past max_nal
        self._early_pts: Any = _NONE  # the timestamp of the last fragmented NAL the early rule closed
        self._dropping: Any = _NONE  # the timestamp of the oversized NAL whose fragments are being dropped

    def push(self, data: bytes, pts: Any) -> list[tuple[bytes, Any]]:
        """Take one depacketised payload; return the NAL units now known to be whole."""
        out: list[tuple[bytes, Any]] = []
        starts = data.startswith(START_CODES)
        if self._buf and (starts or pts != self._pts):
            out.append(self._take(early=False))
        if starts:
            self._dropping = _NONE
            self._buf += data
            self._pts, self._opened = pts, len(data)
            whole = self.early and len(data) < (self.max_start or MIN_FRAGMENT)
        elif self._buf:
            self._buf += data
            self.max_start = max(self.max_start, self._opened)  # the NAL's start was an FU-A start
            whole = self.early and len(data) < self.max_cont
            self.max_cont = max(self.max_cont, len(data))
        elif pts == self._dropping:  # the rest of an oversized NAL: dropped with it
            return out
        elif pts == self._early_pts:  # the rest of a NAL the rule ended at a short fragment: not this sender's way
            self.misjudged += 1
            self.early = False
            return out
        else:  # its start packet was lost
            self.orphans += 1
            return out
        if len(self._buf) > self.max_nal:
            self.oversized += 1
            self._dropping, self._early_pts = pts, _NONE
            self._buf.clear()
            return out
        if whole:
            fragmented = not starts  # ended at a short continuation (a lone short start proves nothing)
            out.append(self._take(early=fragmented))
        return out

    def flush(self) -> list[tuple[bytes, Any]]:
        """The NAL unit still open (at the stream's end or a reconnection)."""
        return [self._take(early=False)] if self._buf else []

    def _take(self, *, early: bool) -> tuple[bytes, Any]:
        """Hand out the open NAL; ``early``: a fragmented one the rule ended (a continuation then is its own)."""
        nal = (bytes(self._buf), self._pts)
        self._early_pts = self._pts if early else _NONE
        self._buf.clear()
        return nal
