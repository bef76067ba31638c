"""The ``coldkit`` command line (typer + rich)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from coldkit.errors import ColdkitError
from coldkit.plugins import Kind, Registry

app = typer.Typer(
    help="coldkit: cold diffusion — train models that invert image degradations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True)

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="override a config value: section.key=value (repeatable)"),
]


def load_registry() -> Registry:
    """Discover plugins, warning (not failing) about any that could not be loaded."""
    registry = Registry.discover()
    for problem in registry.problems:
        error_console.print(f"[yellow]warning:[/] plugin {problem.plugin}: {problem.message}")
    return registry


def fail(error: ColdkitError) -> typer.Exit:
    error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="TOML experiment file, or a run folder to resume")],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="run folder (default: runs/<name>)")
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Train, sample and evaluate an experiment; resume it if its run folder has a checkpoint."""
    from coldkit.run import execute, prepare_run

    try:
        experiment, paths = prepare_run(config, out, overrides or [], load_registry())
        console.print(f"run folder: [bold]{paths.root}[/]")
        execute(experiment, paths, console)
    except ColdkitError as error:
        raise fail(error) from None
    except KeyboardInterrupt:
        error_console.print(
            "[yellow]interrupted:[/] the last checkpoint is kept; run the same command again "
            "to resume."
        )
        raise typer.Exit(code=130) from None


@app.command()
def generate(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `coldkit run`")],
    count: Annotated[
        Optional[int],
        typer.Option("-n", "--num-samples", min=1, help="images to generate (default: the run's "
                     "generate.num_samples, else 64)"),
    ] = None,
    prior: Annotated[
        Optional[str], typer.Option("--prior", help="prior plugin (see list-priors)")
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="seed of the draws")] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="output folder (default: RUN_DIR/generated/PRIOR-seedS-nN)"),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", min=1, help="images sampled at once")
    ] = None,
    sampler: Annotated[
        Optional[str], typer.Option("--sampler", help="sampler from x_T to x_0 (list-samplers)")
    ] = None,
    step_noise: Annotated[
        Optional[float],
        typer.Option("--step-noise", min=0.0, help="per-step noise (sampler 'stochastic')"),
    ] = None,
    judge: Annotated[
        Optional[bool],
        typer.Option("--judge/--no-judge", help="judge the samples with a digit classifier"),
    ] = None,
    overrides: SetOption = None,
) -> None:
    """Generate images from a trained run: draw x_T from a prior, restore with a sampler."""
    from coldkit.generation_stage import generate_from_run_folder

    try:
        result = generate_from_run_folder(
            run_dir, registry=load_registry(), console=console, count=count, prior=prior,
            seed=seed, out=out, batch_size=batch_size, sampler=sampler, step_noise=step_noise,
            judge=judge, overrides=overrides or [],
        )
    except ColdkitError as error:
        raise fail(error) from None
    for label, path in result.files.items():
        console.print(f"{label}: [bold]{path}[/]", highlight=False)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="TOML experiment file")],
    overrides: SetOption = None,
) -> None:
    """Check a config without running it and print it with every default filled in."""
    from coldkit.config import load_experiment
    import tomli_w

    try:
        experiment = load_experiment(config, load_registry(), overrides or [])
    except ColdkitError as error:
        raise fail(error) from None
    console.print(tomli_w.dumps(experiment.to_dict()), highlight=False, markup=False)


@app.command("show-degradation")
def show_degradation(
    name: Annotated[str, typer.Argument(help="degradation name (see list-degradations)")],
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="TOML experiment: its dataset's images, its parameters"),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="PNG to write (default: NAME_preview.png)")
    ] = None,
    overrides: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="set a degradation parameter: key=value (repeatable)"),
    ] = None,
    images: Annotated[int, typer.Option("--images", help="number of images (rows)")] = 4,
) -> None:
    """Write a PNG grid of a degradation: one row per image, one column per level t."""
    from coldkit.preview import preview_degradation

    try:
        path = preview_degradation(
            name,
            config=config,
            out=out,
            overrides=overrides or [],
            images=images,
            registry=load_registry(),
            notify=lambda message: console.print(message, highlight=False, markup=False),
        )
    except ColdkitError as error:
        raise fail(error) from None
    console.print(f"wrote [bold]{path}[/]")


def _listing(kind: Kind, as_json: bool) -> None:
    registry = load_registry()
    records = [registry.records[kind][name] for name in registry.names(kind)]
    if as_json:
        rows = [
            {
                "name": record.name,
                "description": record.description,
                "plugin": record.plugin,
                "distribution": record.distribution,
                "version": record.version,
                "parameters": record.params_model.model_json_schema().get("properties", {}),
            }
            for record in records
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{kind}s")
    for column in ("name", "description", "package", "version"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.name, record.description, record.distribution or record.plugin, record.version or ""
        )
    console.print(table)


def _make_listing(kind: Kind) -> Callable[..., None]:
    def command(
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        _listing(kind, as_json)

    command.__doc__ = f"List the registered {kind}s."
    return command


for _kind in ("degradation", "restorer", "sampler", "dataset", "prior"):
    app.command(f"list-{_kind}s")(_make_listing(_kind))  # type: ignore[arg-type]


@app.command()
def plugins() -> None:
    """List every loaded plugin module and every plugin that failed to load."""
    registry = Registry.discover()
    table = Table(title="plugins")
    for column in ("plugin", "package", "version", "provides"):
        table.add_column(column)
    provided: dict[tuple[str, str | None, str | None], list[str]] = {}
    for kind, records in registry.records.items():
        for record in records.values():
            key = (record.plugin, record.distribution, record.version)
            provided.setdefault(key, []).append(f"{kind} {record.name}")
    for (plugin, distribution, version), items in sorted(provided.items()):
        table.add_row(plugin, distribution or "", version or "", ", ".join(items))
    console.print(table)
    for problem in registry.problems:
        console.print(f"[yellow]problem:[/] {problem.plugin}: {problem.message}")


@app.command()
def restore(
    run_dir: Annotated[Path, typer.Argument(help="run folder written by `coldkit run`")],
    images: Annotated[list[Path], typer.Argument(help="degraded PNG or JPEG files to restore")],
    level: Annotated[
        Optional[int],
        typer.Option("--t", help="degradation level of the inputs, 0..T (default: estimated)"),
    ] = None,
    estimate_t: Annotated[
        bool,
        typer.Option("--estimate-t", help="pick each image's level t where D(R(x, t), t) ≈ x"),
    ] = False,
    sampler: Annotated[
        Optional[str],
        typer.Option("--sampler", help="sampler (see list-samplers; default: the run's evaluate.sampler)"),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="output folder (default: RUN_DIR/restored)")
    ] = None,
) -> None:
    """Restore image files that are already degraded; write each result and a before/after sheet."""
    from coldkit.restore import restore_files
    from coldkit.runfolder import open_run

    def say(message: str) -> None:
        console.print(message, highlight=False, markup=False, soft_wrap=True)

    try:
        registry = load_registry()
        loaded = open_run(run_dir, registry)
        report = restore_files(
            loaded,
            images,
            registry=registry,
            t=level,
            estimate=estimate_t,
            sampler=sampler,
            out=out,
            notify=say,
        )
    except ColdkitError as error:
        raise fail(error) from None
    say(f"sampler: {report.sampler}")
    for path in report.paths:
        say(f"wrote {path}")


def main() -> None:  # pragma: no cover - console-script convenience
    app()
