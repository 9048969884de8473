"""`python -m clara_stream.apps.volume_crop [options]`: the same as `clara-stream run volume_crop [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
