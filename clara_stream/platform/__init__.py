"""Platform services: DICOM adapter, REST config, job scheduler, results service and console.

The pieces are plain library classes over one SQLite database (WAL), assembled by
:class:`clara_stream.platform.service.PlatformService` and started by ``clara-stream dicom serve``.
"""
