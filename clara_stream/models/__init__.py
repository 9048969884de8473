"""Model repository: versioned models in a Triton model-repository layout with a catalog.

Apps resolve models by name and version (:meth:`ModelRepository.resolve`, ``models://name/version``).
"""

from clara_stream.models.repository import ModelEntry, ModelRepository, ModelVersion, default_root, resolve_model

__all__ = ["ModelEntry", "ModelRepository", "ModelVersion", "default_root", "resolve_model"]
