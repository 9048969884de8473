"""`python -m clara_stream.apps.series_selection [options]`: same as `clara-stream run series_selection [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
