"""`python -m clara_stream.apps.video_detection [options]`: the same as `clara-stream run video_detection [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
