"""``coldkit export``: turn a run folder into a model folder others can load.

A run folder is a working directory (a ``torch.save`` checkpoint with the optimizer, logs,
pictures). :func:`export_run` writes what travels: the EMA weights as ``model.safetensors``, the
manifest ``coldkit_model.json`` (the resolved config, the restorer context, the plugins with their
versions, the sha256 of every tensor file, the run's numbers), ``config.toml``, the fitted priors
as safetensors, the run's table, figure and generation report, and a model card ``README.md``.
The folder's layout and how it is read are in :mod:`coldkit.runs.exported`::

    from coldkit.export import export_run
    export_run("runs/mnist_blur", "models/mnist_blur")
    # coldkit restore models/mnist_blur blurry.png   /   coldkit.api.open("models/mnist_blur")
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

import coldkit
from coldkit.config import Experiment, write_toml
from coldkit.errors import ConfigError, PluginError
from coldkit.generation.priors import load_prior, save_prior_tensors
from coldkit.plugins import PluginRecord, Registry
from coldkit.params import dataset_references
from coldkit.runs import exported
from coldkit.runs.opened import open_run
from coldkit.runs.folder import (
    GENERATED_GRID,
    GENERATION_JSON,
    GENERATION_MARKDOWN,
    PRIORS_FOLDER,
    RunPaths,
    read_metadata,
    trained_for,
)
from coldkit.runs.opened import LoadedRun
from coldkit.runtime.files import check_writable_name, is_regular_file, write_error
from coldkit.runtime.log import Notify, quiet

#: Run-folder files copied as they are (when the run has them): the numbers and the pictures.
COPIED_FILES = (
    "metrics.json", "table.md", "figure.png", "loss_curve.png",
    GENERATION_JSON, GENERATION_MARKDOWN, GENERATED_GRID,
)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_run` wrote."""

    folder: Path
    files: list[str]
    hub_url: str | None = None


def export_run(
    run_dir: Path | str,
    out_dir: Path | str,
    *,
    registry: Registry | None = None,
    push_to_hub: str | None = None,
    notify: Notify | None = None,
) -> ExportReport:
    """Export a trained run folder to ``out_dir`` (which must not exist or be empty).

    The folder is written into a fresh temporary folder of its own next to ``out_dir`` and
    renamed when complete, so an interrupted export leaves no half folder under ``out_dir`` and
    touches no other folder. A run folder where a file the export reads is a symbolic link is
    refused (:func:`refuse_links`). ``push_to_hub`` (``OWNER/NAME``) uploads the
    folder to the Hugging Face Hub afterwards with ``huggingface_hub`` (the ``hub`` extra).
    """
    notify = notify or quiet
    registry = registry if registry is not None else Registry.discover()
    run_dir, out_dir = Path(run_dir), check_writable_name(out_dir, "OUT_DIR")
    hub = exported.import_hub() if push_to_hub else None  # refuse before writing anything
    if exported.is_exported(run_dir):
        raise ConfigError(
            f"{run_dir} is already an exported model. Copy the folder, or export its run folder."
        )
    _check_target(out_dir)
    refuse_links(run_dir)
    loaded = open_run(run_dir, registry, device="cpu")
    staging = _staging_folder(out_dir)
    try:
        files = _write_folder(loaded, registry, staging, out_dir.name)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)  # ours alone: never a half-written folder
        if isinstance(exc, (OSError, RuntimeError, SafetensorError)):  # e.g. a full disk
            raise write_error(out_dir, exc) from None
        raise
    notify(f"exported {run_dir} (step {loaded.step}) to {out_dir}")
    url = None
    if hub is not None:
        api = hub.HfApi()
        api.create_repo(repo_id=push_to_hub, exist_ok=True)
        commit = api.upload_folder(folder_path=str(out_dir), repo_id=push_to_hub)
        url = str(getattr(commit, "repo_url", None) or f"https://huggingface.co/{push_to_hub}")
        notify(f"pushed to {url}")
    return ExportReport(out_dir, files, url)


def _check_target(out_dir: Path) -> None:
    """Refuse an OUT_DIR that is not a new (or empty) folder of its own."""
    if out_dir.name in ("", ".", "..") or out_dir.is_symlink():
        raise ConfigError(
            f"OUT_DIR {str(out_dir)!r} does not name a new folder (it is the current folder, a "
            "parent or a symbolic link). Pass the path of a new folder, e.g. models/NAME."
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"{out_dir} already exists and is not empty. Choose another OUT_DIR.")


def refuse_links(run_dir: Path) -> None:
    """Refuse a run folder where a file the export reads is a symbolic link or not a regular
    file: its content could come from anywhere on the machine and would be shared."""
    paths = RunPaths(run_dir)
    folders = [paths.checkpoint.parent, run_dir / PRIORS_FOLDER]
    files = [paths.config, paths.metadata, paths.checkpoint,
             *(run_dir / name for name in COPIED_FILES)]
    if (run_dir / PRIORS_FOLDER).is_dir() and not (run_dir / PRIORS_FOLDER).is_symlink():
        files += sorted((run_dir / PRIORS_FOLDER).glob("*.pt"))
    odd = [path for path in folders if path.is_symlink()]
    odd += [path for path in files if os.path.lexists(path) and not is_regular_file(path)]
    if odd:
        raise ConfigError(
            f"{run_dir} holds {', '.join(str(path) for path in odd)}, a symbolic link or special "
            "file where the export reads a file: its content could come from outside the run "
            "folder and would be shared, so nothing was exported. Replace it with the file "
            "itself, or remove it."
        )


def _staging_folder(out_dir: Path) -> Path:
    """A fresh folder of our own next to ``out_dir`` (never one that exists already), renamed to
    ``out_dir`` when the export is complete."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".coldkit-export-", dir=out_dir.parent))
        staging.chmod(0o755)  # mkdtemp makes 0700; a folder to share is readable by others
        return staging
    except OSError as exc:
        raise write_error(out_dir, exc) from None


def _write_folder(
    loaded: LoadedRun, registry: Registry, folder: Path, title: str
) -> list[str]:
    """Every file of the exported folder; returns their names."""
    tensors = {exported.WEIGHTS_FILE: _save_weights(loaded, folder / exported.WEIGHTS_FILE)}
    for prior in sorted((loaded.root / PRIORS_FOLDER).glob("*.pt")):
        target = Path(PRIORS_FOLDER) / f"{prior.stem}.safetensors"
        save_prior_tensors(load_prior(prior, registry), folder / target)
        tensors[target.as_posix()] = exported.sha256_of(folder / target)
    copied = [name for name in COPIED_FILES if (loaded.root / name).is_file()]
    for name in copied:
        shutil.copyfile(loaded.root / name, folder / name)
    config = loaded.experiment.to_dict()
    write_toml(folder / "config.toml", config)
    manifest = _manifest(loaded, config, tensors)
    (folder / exported.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    card = model_card(loaded, manifest, copied, title)
    (folder / exported.MODEL_CARD_FILE).write_text(card)
    return [*tensors, *copied, "config.toml", exported.MANIFEST_FILE, exported.MODEL_CARD_FILE]


def _save_weights(loaded: LoadedRun, path: Path) -> str:
    """The restorer's weights as safetensors (contiguous CPU copies); returns the sha256."""
    state = {
        key: value.detach().cpu().contiguous().clone()
        for key, value in loaded.restorer.state_dict().items()
    }
    recorded = json.dumps(trained_for(loaded.experiment, loaded.context))
    save_file(state, str(path), metadata={
        "format": exported.MODEL_FORMAT, exported.TRAINED_FOR_KEY: recorded,
    })
    path.chmod(0o644)  # a file to share: readable by others, as the rest of the folder
    return exported.sha256_of(path)


def _manifest(loaded: LoadedRun, config: dict[str, Any], tensors: dict[str, str]) -> dict:
    metadata = read_metadata(RunPaths(loaded.root))
    return {
        "format": exported.MODEL_FORMAT,
        "format_version": exported.MODEL_FORMAT_VERSION,
        "coldkit_version": coldkit.__version__,
        "torch_version": torch.__version__,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # The run folder's name only: a shared folder carries no path of the exporter's machine.
        "exported_from": loaded.root.resolve().name,
        "step": loaded.step,
        "restorer_context": loaded.context.model_shape(),
        "plugins": plugins_used(registry_records(loaded.experiment)),
        "data_plugins": list(plugins_used(data_records(loaded.experiment, metadata)).values()),
        "files": tensors,
        "config": config,
        "training_source": metadata.get("training_source"),
        "metrics": _read_json(loaded.root / "metrics.json"),
    }


def registry_records(experiment: Experiment) -> dict[str, PluginRecord]:
    """Kind -> the plugin record of every component the model needs to be rebuilt and used."""
    records = {
        "dataset": experiment.dataset.record,
        "degradation": experiment.degradation.record,
        "restorer": experiment.restorer.record,
        "sampler": experiment.sampler,
    }
    if experiment.prior is not None:
        records["prior"] = experiment.prior.record
    return records


def data_records(experiment: Experiment, metadata: dict[str, Any]) -> dict[str, PluginRecord]:
    """Qualified name -> the record of every dataset the components read through their build
    context: the dataset references in their parameters and what ``run.json`` lists under
    ``plugin_data`` (a plugin may read a dataset it names in code). A name no longer registered
    here is left out (the export then lists what it can resolve)."""
    registry = experiment.registry if experiment.registry is not None else Registry.discover()
    resolved = [experiment.dataset, experiment.degradation, experiment.restorer,
                experiment.evaluate_dataset, experiment.prior]
    names = [reference.name for plugin in resolved if plugin is not None
             for _, reference in dataset_references(plugin.params, plugin.record.kind)]
    names += [str(source.get("dataset")) for source in metadata.get("plugin_data") or []
              if isinstance(source, dict)]
    records: dict[str, PluginRecord] = {}
    for name in names:
        try:
            record = registry.get("dataset", name)
        except PluginError:
            continue
        records.setdefault(record.qualified_name, record)
    return records


def plugins_used(records: dict[str, PluginRecord]) -> dict[str, dict]:
    """Kind -> name, plugin module, package and version, as the manifest records them."""
    return {
        kind: {
            "name": record.name,
            "plugin": record.plugin,
            "distribution": record.distribution,
            "version": record.version,
        }
        for kind, record in records.items()
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------- model card
def model_card(
    loaded: LoadedRun, manifest: dict[str, Any], copied: list[str], folder: str = "MODEL_DIR"
) -> str:
    """The ``README.md`` of an exported model: what it is, the data, training, its numbers,
    the plugins it needs and how to load it (every number read from the run's own files)."""
    sections = [
        _card_header(loaded, manifest),
        _card_training(loaded, manifest),
        _card_results(loaded, copied),
        _card_plugins(manifest),
        _card_loading(loaded, manifest, folder),
    ]
    return "\n\n".join(section.strip() for section in sections if section) + "\n"


def _card_header(loaded: LoadedRun, manifest: dict[str, Any]) -> str:
    config = loaded.experiment.config
    context = manifest["restorer_context"]
    degradation = manifest["config"]["degradation"]
    settings = ", ".join(f"{k} = {v}" for k, v in degradation.items() if k != "name")
    return f"""
---
library_name: coldkit
tags: [cold-diffusion, image-restoration, {degradation["name"]}]
---

# {config.name}: a cold-diffusion restorer for `{degradation["name"]}`

A restorer `R(x_t, t) ≈ x0` that inverts the degradation `D(x0, t)` (Bansal et al. 2022, *Cold
Diffusion*), trained with [coldkit](https://pypi.org/project/coldkit/)
{manifest["coldkit_version"]}.

* degradation: `{degradation["name"]}` ({settings}); levels t = 0 … {context["steps"]}
* restorer: `{config.restorer.name}`, {_parameters(loaded)} parameters, EMA weights
* input: {context["channels"]} channel(s), {context["image_size"]}×{context["image_size"]} pixels,
  values in [0, 1]
"""


def _parameters(loaded: LoadedRun) -> str:
    return f"{sum(p.numel() for p in loaded.restorer.parameters()):,}"


def _card_training(loaded: LoadedRun, manifest: dict[str, Any]) -> str:
    config = loaded.experiment.config
    train = config.train
    metrics = manifest.get("metrics") or {}
    minutes = metrics.get("train_seconds")
    took = f" in {minutes / 60:.1f} minutes" if isinstance(minutes, (int, float)) else ""
    files = (
        f"D(x0, t) rounded to {train.quantize_inputs} bits (straight-through) for "
        f"{train.quantize_share:.0%} of the samples, as image files hold it"
        if train.quantize_inputs else "float D(x0, t) (not quantised to file precision)"
    )
    return f"""
## Training

* data: {manifest.get("training_source") or f"dataset `{config.dataset.name}`"}
* {manifest["step"]:,} optimizer steps{took}; batch {train.batch_size}, lr {train.lr}
  ({train.lr_schedule}), loss {train.loss}, EMA decay {train.ema_decay}, seed {config.seed}
* inputs: {files}
"""


def _card_results(loaded: LoadedRun, copied: list[str]) -> str:
    root, parts = loaded.root, ["## Results"]
    if "table.md" in copied:
        table = (root / "table.md").read_text().strip()
        parts.append(table.replace("# ", "### ", 1))
        bits = loaded.experiment.config.evaluate.quantize_inputs
        if bits:
            parts.append(f"Scored on D(x0, T) rounded to {bits} bits, as image files hold it.")
    else:
        parts.append("The run was exported before its evaluation: no Table 1 yet.")
    if "figure.png" in copied:
        parts.append(
            "Figure 3 (held-out images; columns: degraded, direct, sampled, original):\n\n"
            "![Figure 3: degraded, direct, sampled, original](figure.png)"
        )
    generation = _read_json(root / GENERATION_JSON) if GENERATION_JSON in copied else None
    if isinstance(generation, dict):
        prior = dict(generation.get("prior") or {}).get("name", "?")
        parts.append(
            f"### Generation\n\n{generation.get('num_samples')} samples from the fitted prior "
            f"`{prior}` (tensors in `priors/`), restored with `{generation.get('sampler')}`."
        )
    if GENERATION_MARKDOWN in copied:
        report = (root / GENERATION_MARKDOWN).read_text().strip()
        parts.append(report.replace("# ", "### ", 1))
    if GENERATED_GRID in copied:
        parts.append(f"![generated samples]({GENERATED_GRID})")
    return "\n\n".join(parts)


def _card_plugins(manifest: dict[str, Any]) -> str:
    entries = [*manifest["plugins"].items(),
               *(("data", entry) for entry in manifest.get("data_plugins", []))]
    rows = [
        f"| {kind} | `{entry['name']}` | {entry.get('distribution') or entry['plugin']} | "
        f"{entry.get('version') or '?'} |"
        for kind, entry in entries
    ]
    packages = sorted({entry.get("distribution") or entry["plugin"] for _, entry in entries})
    return "\n".join(
        [
            "## Plugins it needs",
            "",
            "| kind | name | package | version |",
            "|---|---|---|---|",
            *rows,
            "",
            f"Install: `pip install {' '.join(packages)}`. A missing plugin is refused with a "
            "message naming its package.",
        ]
    )


def _card_loading(loaded: LoadedRun, manifest: dict[str, Any], folder: str) -> str:
    steps = manifest["restorer_context"]["steps"]
    return f"""
## How to load

```bash
coldkit restore {folder} blurry.png --t {steps}      # or --estimate-t
coldkit generate {folder}                           # needs a [generate] prior
```

```python
import coldkit
run = coldkit.api.open("{folder}")                 # or "hf://OWNER/NAME" (coldkit[hub])
x0_hat = run.restore(x_t, t={steps})
```

Without coldkit, the weights are a plain safetensors file:
`safetensors.torch.load_file("model.safetensors")` gives the
`{loaded.experiment.config.restorer.name}` restorer's state dict; `coldkit_model.json` holds the
config and input shape to build it, and the sha256 of each tensor file (checked on every load).
"""


__all__ = [
    "ExportReport", "data_records", "export_run", "model_card", "plugins_used", "refuse_links",
    "registry_records",
]
