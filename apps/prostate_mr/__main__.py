"""`python -m clara_stream.apps.prostate_mr [options]` = `clara-stream run organ_segmentation [options]`."""

from clara_stream.cli import app_main

app_main(__package__)
