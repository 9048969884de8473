"""App packages: `clara-stream package APP --out DIR` writes a Holoscan/MONAI Deploy App Package layout."""

from clara_stream.packaging.writer import Package, locate_app, write_package

__all__ = ["Package", "locate_app", "write_package"]
