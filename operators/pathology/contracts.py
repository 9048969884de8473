"""Port contracts of the pathology pipeline (one place, so every edge agrees)."""

from __future__ import annotations

from clara_stream.operators.pathology.slide import TileRow

from clara_stream.contracts import Contract, Kind

#: One row of tiles: the padded band read from the slide (``band``) and its tile boxes.
TILE_ROW = Contract(kind=Kind.OBJECT, domain="pathology/tile-row", pytype=TileRow,
                    description="TileRow: one row of tiles, padded band of RGB uint8 pixels")  # fmt: skip
#: The same row after filtering: ``tiles`` holds each tile's overlaid core.
FILTERED_ROW = Contract(kind=Kind.OBJECT, domain="pathology/filtered-row", pytype=TileRow,
                        description="TileRow with filtered RGB uint8 tile cores in 'tiles'")  # fmt: skip
PATHS = Contract(kind=Kind.OBJECT, domain="files/written", pytype=list, description="list of written file paths")
REPORT = Contract(kind=Kind.OBJECT, domain="render/published", pytype=dict,
                  description="{folder, dataset_id, registered, error}")  # fmt: skip
