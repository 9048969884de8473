"""``python -m clara_stream.platform [options]``: the same as ``clara-stream dicom serve``."""

import typer

from clara_stream.cli.dicom import serve

if __name__ == "__main__":
    typer.run(serve)
