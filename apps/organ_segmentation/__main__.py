"""`python -m clara_stream.apps.organ_segmentation [options]` = `clara-stream run organ_segmentation [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
