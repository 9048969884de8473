"""`python -m clara_stream.apps.hello_stream [options]`: the same as `clara-stream run hello_stream [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
