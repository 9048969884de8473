"""``clara-stream apps`` / ``apps show NAME``: the reference-app catalogue from each app's metadata.json.

Read from the installed app folders without importing the apps (the CLI never imports an app to
describe it): ``metadata.json`` gives inputs, outputs, operators, model and resources; the model
folder's ``model.json`` (when there is one) adds the labels and held-out metrics; ``sample`` names
the ``clara-stream sample`` kind an app runs on. Replaces the core's plain ``apps`` name list.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from clara_stream.errors import UserError

apps_app = typer.Typer(help="Reference apps: inputs, outputs, model, resources (from metadata.json).")


def _folders() -> dict[str, Path]:
    spec = importlib.util.find_spec("clara_stream.apps")
    out: dict[str, Path] = {}
    for root in (spec.submodule_search_locations or []) if spec else []:
        for child in sorted(Path(root).iterdir()):
            if (child / "app.py").is_file():
                out.setdefault(child.name, child)
    return out


def describe(name: str, folder: Path) -> dict[str, Any]:
    """One catalogue entry; an app without metadata.json is listed with what is known (its name)."""
    meta_path = folder / "metadata.json"
    entry: dict[str, Any] = {"name": name, "summary": "", "inputs": [], "outputs": [], "operators": [],
                             "model": None, "resources": {}, "sample": None, "folder": str(folder)}  # fmt: skip
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text()).get("application", {})
        except json.JSONDecodeError as exc:
            raise UserError(f"apps: expected JSON in {meta_path}; got {exc}") from exc
        entry.update(summary=meta.get("summary", ""), inputs=meta.get("inputs", []), outputs=meta.get("outputs", []),
                     operators=meta.get("operators", []), model=meta.get("model"),
                     resources=meta.get("requirements", {}), sample=meta.get("sample"),
                     version=meta.get("version", ""))  # fmt: skip
    cards = sorted((folder / "model").glob("model.json")) + sorted((folder / "model").glob("*/*.json"))
    if isinstance(entry["model"], dict) and cards:
        model, metrics = dict(entry["model"]), {}
        for card_path in cards:  # model/model.json, or one card per model (model/segmentation/model.json, ...)
            card = json.loads(card_path.read_text())
            if "labels" in card and card_path.name == "model.json":
                model["labels"], model["spacing_mm"] = card["labels"], card.get("spacing_mm")
            metrics.update({k: v for k, v in card.get("metrics", {}).items() if "heldout" in k})
        entry["model"] = {**model, "metrics": metrics}
    return entry


def catalogue() -> list[dict[str, Any]]:
    """Every installed reference app, by name."""
    return [describe(n, f) for n, f in _folders().items()]


def _model_text(model: Any) -> str:
    if not model:
        return "-"
    if not isinstance(model, dict):
        return str(model)
    labels = model.get("labels") or []
    if isinstance(labels, str):  # a labels file
        return labels
    names = list(labels.values()) if isinstance(labels, dict) else list(labels)
    return ", ".join(str(n) for n in names) or "model"


def _resources_text(res: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in res.items()]
    return ", ".join(parts) or "-"


@apps_app.callback(invoke_without_command=True)
def apps_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False
              ) -> None:  # fmt: skip
    """List the reference apps with their inputs, outputs, model and resources."""
    from clara_stream.cli.core import console

    if ctx.invoked_subcommand is not None:
        return
    entries = catalogue()
    if as_json:
        console.print_json(json.dumps(entries))
        return
    table = Table(title="clara-stream apps")
    for col in ("app", "inputs", "outputs", "model", "resources", "sample"):
        table.add_column(col)
    for e in entries:
        table.add_row(e["name"], escape("; ".join(e["inputs"])) or "-", escape(", ".join(e["outputs"])) or "-",
                      escape(_model_text(e["model"])), escape(_resources_text(e["resources"])),
                      e["sample"] or "-")  # fmt: skip
    console.print(table)


@apps_app.command("show")
def apps_show(name: str, as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False
              ) -> None:  # fmt: skip
    """Everything the catalogue knows about one app."""
    from clara_stream.cli.core import console

    folders = _folders()
    if name not in folders:
        raise UserError(f"apps show: expected an app in {sorted(folders)}; got {name!r}")
    e = describe(name, folders[name])
    if as_json:
        console.print_json(json.dumps(e))
        return
    console.print(f"[bold]{escape(e['name'])}[/bold] {escape(e.get('version', ''))}: {escape(e['summary'])}")
    for key in ("inputs", "outputs", "operators"):
        console.print(f"{key}: {escape(', '.join(e[key])) or '-'}")
    console.print(f"model: {escape(json.dumps(e['model'])) if e['model'] else '-'}")
    console.print(f"resources: {escape(_resources_text(e['resources']))}")
    console.print(f"sample: {e['sample'] or '-'}   folder: {escape(e['folder'])}")


def register(app: typer.Typer) -> None:
    """Add the ``apps`` group, in place of the core's plain ``apps`` name list."""
    app.registered_commands[:] = [c for c in app.registered_commands if c.name != "apps"]
    app.add_typer(apps_app, name="apps")
