"""Declarative pipelines: an app defined by a YAML file — operators by type, flows, services.

``clara-stream run|validate|graph pipeline.yaml`` accept one; :func:`load_pipeline` builds it.
"""

from clara_stream.pipeline.app import PipelineApp, is_pipeline_file, load_pipeline
from clara_stream.pipeline.registry import known_types, resolve_type
from clara_stream.pipeline.services import ServiceError
from clara_stream.pipeline.spec import PipelineSpec, parse_pipeline

__all__ = ["PipelineApp", "PipelineSpec", "ServiceError", "is_pipeline_file", "known_types", "load_pipeline",
           "parse_pipeline", "resolve_type"]
