"""Live H.264 in fragmented MP4 for a Media Source Extensions player (ClaraViz's video stream).

The fragmenter moved to :mod:`clara_stream.operators.video.fmp4` so the live video output serves
browsers with the same boxes and player; these names stay importable from here.
"""

from __future__ import annotations

from clara_stream.operators.video.fmp4 import (  # noqa: F401  (re-exported)
    FRAME_TICKS,
    NOMINAL_FPS,
    PLAYER_JS,
    TIMESCALE,
    H264Stream,
    avcc_sample,
    fragment,
    init_segment,
    nal_units,
)
