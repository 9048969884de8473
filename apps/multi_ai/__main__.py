"""`python -m clara_stream.apps.multi_ai [options]`: the same as `clara-stream run multi_ai [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
