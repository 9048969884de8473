"""`python -m clara_stream.apps.lung_ct [options]` = `clara-stream run organ_segmentation [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
