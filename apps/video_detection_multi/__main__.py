"""`python -m clara_stream.apps.video_detection_multi [options]`: as `clara-stream run video_detection_multi`."""

from clara_stream.cli import app_main

app_main(__package__)
