"""Saved render settings (``config_render.json``) and display hints of registered datasets.

A mixin of :class:`clara_stream.render.datasets.DatasetRegistry`: it needs ``get`` and ``state_dir``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clara_stream.render import hints
from clara_stream.render.durable import write_durably
from clara_stream.render.state import ViewState

SETTINGS_FILE = "config_render.json"
SETTINGS_FORMAT = "clara_stream.render.v1/ViewState"


class SettingsMixin:
    """Per-dataset view settings: in a writable seed folder, else under ``state_dir/settings``."""

    state_dir: Path

    def settings_path(self, dataset_id: str) -> Path:
        """The seed folder's own config_render.json when writable, else one under state_dir."""
        rec = self.get(dataset_id)
        if rec.format == "seed" and os.access(rec.path, os.W_OK):
            return Path(rec.path) / SETTINGS_FILE
        return self.state_dir / "settings" / rec.id / SETTINGS_FILE

    def save_settings(self, dataset_id: str, state: ViewState) -> Path:
        path = self.settings_path(dataset_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {}
        if path.is_file():  # keep keys other tools wrote (e.g. the seed's own render settings)
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError:
                doc = {}
        doc.update(format=SETTINGS_FORMAT, view=state.validate().to_dict())
        write_durably(path, json.dumps(doc, indent=2))
        return path

    def load_settings(self, dataset_id: str) -> ViewState | None:
        """Saved view state, or None (a config_render.json without our ``view`` key is ignored)."""
        for path in (
            self.settings_path(dataset_id),
            self.state_dir / "settings" / dataset_id / SETTINGS_FILE,
        ):
            if path.is_file():
                try:
                    doc = json.loads(path.read_text())
                except json.JSONDecodeError as exc:
                    raise ValueError(f"datasets: expected JSON in {path}; got {exc}") from exc
                if isinstance(doc, dict) and isinstance(doc.get("view"), dict):
                    return ViewState.from_dict(doc["view"]).validate()
        return None

    def render_hints(self, dataset_id: str) -> dict[str, Any]:
        """Initial display hints a writer left in the seed layout (see :func:`hints.render_hints`)."""
        rec = self.get(dataset_id)
        return hints.render_hints(rec.labels, Path(rec.path) / SETTINGS_FILE if rec.format == "seed" else None)
