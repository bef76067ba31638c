"""The ``coldkit`` command line (typer + rich)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from coldkit.errors import ColdkitError, ConfigError, TrainingError
from coldkit.params import parameter_schema
from coldkit.plugins import DISABLE_ENV, TRACE_ENV, Kind, Registry

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


#: Set by the app callback from ``--trace-plugins`` on every invocation.
_trace_plugins = False


@app.callback()
def _global_options(
    trace_plugins: Annotated[
        bool,
        typer.Option(
            "--trace-plugins",
            help=f"log to stderr which plugin serves each name a config resolves (or set "
            f"{TRACE_ENV}=1)",
        ),
    ] = False,
) -> None:
    global _trace_plugins
    _trace_plugins = trace_plugins


def _stderr(message: str) -> None:
    error_console.print(message, highlight=False, markup=False, soft_wrap=True)


def _notify(message: str) -> None:
    _stderr(f"note: {message}")


def _discover() -> Registry:
    """The registry, tracing lookups to stderr with --trace-plugins (or COLDKIT_TRACE_PLUGINS)."""
    registry = Registry.discover(trace=_stderr if _trace_plugins else None)
    registry.notify = _notify
    return registry


def load_registry() -> Registry:
    """Discover plugins, warning (not failing) about any that could not be loaded."""
    registry = _discover()
    for problem in registry.problems:
        error_console.print(
            f"[yellow]warning:[/] plugin {escape(problem.label)}: {escape(problem.message)}",
            highlight=False, soft_wrap=True,
        )
    if registry.disabled:
        _notify(
            f"plugins disabled by {DISABLE_ENV}: "
            + ", ".join(info.describe() for info in registry.disabled)
        )
    return registry


def is_out_of_memory(error: BaseException) -> bool:
    """Whether torch ran out of memory (CUDA, MPS or the CPU allocator)."""
    text = str(error)
    return "out of memory" in text or "can't allocate memory" in text


def out_of_memory_error(error: BaseException, checkpoint: Optional[Path] = None) -> ColdkitError:
    """The message for running out of memory; ``checkpoint`` is the run's (kept if it exists)."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if checkpoint is not None and checkpoint.is_file():
        kept = f"The last checkpoint ({checkpoint}) is kept; the rerun resumes from it."
    else:
        kept = "No checkpoint was written, so the corrected config may replace the saved one."
    return TrainingError(
        f"Out of memory ({first_line}). {kept} Lower what the stage that ran out holds at once "
        "— train.batch_size (use train.accumulate to keep the effective batch), "
        "evaluate.batch_size or generate.batch_size — or the restorer's size, "
        "dataset.image_size or T (degradation.steps), then run the same command again."
    )


def fail(error: ColdkitError) -> typer.Exit:
    # The message is plain text: "[degradation]" must not be read as rich markup and vanish.
    error_console.print("error:", style="bold red", end=" ")
    error_console.print(str(error), highlight=False, soft_wrap=True, markup=False)
    return typer.Exit(code=2)


@contextmanager
def reported(interrupted: Optional[str] = None, speaks: bool = True) -> Iterator[None]:
    """The error wrapper every command runs its work in: a :class:`ColdkitError` becomes its
    one-paragraph message on stderr and exit 2, no traceback (said only where ``speaks``: under
    torchrun, rank 0). With ``interrupted``, Ctrl-C prints it (what was kept, how to go on) and
    exits 130; without, a KeyboardInterrupt goes through."""
    try:
        yield
    except ColdkitError as error:
        raise (fail(error) if speaks else typer.Exit(code=2)) from None
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        error_console.print(f"[yellow]interrupted:[/] {interrupted}")
        raise typer.Exit(code=130) from None


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="TOML experiment file, or a run folder to resume")],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="run folder (default: runs/<name>)")
    ] = None,
    overrides: SetOption = None,
    from_step: Annotated[
        Optional[int],
        typer.Option("--from-step", help="resume from the kept checkpoint of this step (after a "
                     "run diverged: the step its message names; 0 starts over)"),
    ] = None,
) -> None:
    """Train, sample and evaluate an experiment; resume it if its run folder has a checkpoint."""
    from coldkit.runtime.distributed import start_cluster, stop_cluster
    from coldkit.run import claimed_run, execute

    cluster = start_cluster()  # one process unless started by torchrun
    # Under torchrun only rank 0 speaks; the others stop quietly with the same exit code.
    shown = console if cluster.is_main else Console(quiet=True)
    checkpoint: Optional[Path] = None  # named by an out-of-memory message
    interrupted = "the last checkpoint is kept; run the same command again to resume."
    try:
        with reported(interrupted, speaks=cluster.is_main):
            with claimed_run(
                config, out, overrides or [], load_registry(), cluster, from_step
            ) as (experiment, paths):
                checkpoint = paths.checkpoint
                shown.print(f"run folder: [bold]{paths.root}[/]")
                execute(experiment, paths, shown, cluster)
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        raise fail(out_of_memory_error(error, checkpoint)) from None
    finally:
        stop_cluster(cluster)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="TOML experiment file")],
    over: Annotated[
        list[str],
        typer.Option("--over", help="a key and its values: section.key=v1,v2,... (repeatable: "
                     "the grid is every combination)", show_default=False),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="sweep folder (default: runs/<name>_sweep)")
    ] = None,
    overrides: SetOption = None,
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, help="points run at once, each in a process "
                          "with its share of the cores")
    ] = 1,
    max_points: Annotated[
        int, typer.Option("--max-points", min=1, help="refuse a grid of more points than this")
    ] = 100,
) -> None:
    """Run an experiment over a grid of settings, one run folder per point; resumable."""
    from coldkit.sweep import check_grid_size, parse_axis, plan_sweep, run_sweep

    def notify(message: str) -> None:
        console.print(message, highlight=False, markup=False, soft_wrap=True)

    interrupted = (
        "finished points and checkpoints are kept; run the same command again to continue the "
        "sweep."
    )
    with reported(interrupted):
        axes = [parse_axis(text) for text in over]
        size = check_grid_size(axes, max_points)
        notify(f"sweep: {size} points ({size} training runs) to check, then run")
        registry = load_registry()
        planned = plan_sweep(config, axes, registry, overrides or [], out, parallel)
        run_sweep(planned, registry, console, notify)


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
    from coldkit.generation.stage import GenerateOptions, generate_from_folder

    options = GenerateOptions(
        count=count, prior=prior, seed=seed, batch_size=batch_size, sampler=sampler,
        step_noise=step_noise, judge=judge, overrides=tuple(overrides or ()),
    )
    with reported():
        result = generate_from_folder(
            run_dir, options, load_registry(), console, out,
            notify=lambda note: console.print(note, highlight=False, markup=False),
        )
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

    with reported():
        experiment = load_experiment(config, load_registry(), overrides or [])
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

    with reported():
        path = preview_degradation(
            name,
            config=config,
            out=out,
            overrides=overrides or [],
            images=images,
            registry=load_registry(),
            notify=lambda message: console.print(message, highlight=False, markup=False),
        )
    console.print(f"wrote [bold]{path}[/]")


def _listing(kind: Kind, as_json: bool) -> None:
    registry = load_registry()
    records = registry.all_records(kind)  # clashing and shadowed registrations too
    if as_json:
        rows = [
            {
                "name": record.name,
                "config_name": registry.config_name(record),
                "qualified_name": record.qualified_name,
                "description": record.description,
                "plugin": record.plugin,
                "distribution": record.distribution,
                "version": record.version,
                "parameters": parameter_schema(record.params_model),
            }
            for record in records
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{kind}s")
    for column in ("name", "description", "package", "version"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            registry.config_name(record), record.description,
            record.distribution or record.plugin, record.version or "",
        )
    console.print(table)
    for name, group in sorted(registry.clashes[kind].items()):
        console.print(
            f"note: {kind} {name!r} is registered by {len(group)} packages; a config names one "
            f"as " + " or ".join(repr(record.qualified_name) for record in group) + ".",
            highlight=False, markup=False, soft_wrap=True,
        )


def _make_listing(kind: Kind) -> Callable[..., None]:
    def command(
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        _listing(kind, as_json)

    command.__doc__ = f"List the registered {kind}s."
    return command


for _kind in ("degradation", "restorer", "sampler", "dataset", "prior"):
    app.command(f"list-{_kind}s")(_make_listing(_kind))  # type: ignore[arg-type]


def _plugin_rows(registry: Registry) -> list[dict]:
    rows = []
    for info in registry.plugins:
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "target": info.target,
                "status": info.status,
                "disabled_by": info.disabled_by,
                "hooks": list(info.hooks),
                "registered": [
                    {"kind": r.kind, "name": r.name, "config_name": registry.config_name(r)}
                    for r in registry.registered
                    if info.owns(r)
                ],
                "problems": [p.message for p in registry.problems if info.owns(p)],
            }
        )
    return sorted(
        rows,
        key=lambda row: (row["distribution"] != "coldkit", row["name"], row["distribution"] or ""),
    )


def _status(row: dict) -> str:
    if row["status"] == "disabled":
        return f"disabled by {row['disabled_by']}"
    if row["status"] == "failed":
        return "failed to load"
    return f"loaded, {len(row['problems'])} problem(s)" if row["problems"] else "loaded"


@app.command()
def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List every plugin: its package, version, hooks, what it registered, and any problem."""
    registry = _discover()
    rows = _plugin_rows(registry)
    if as_json:
        problems = [
            {"plugin": p.plugin, "distribution": p.distribution, "message": p.message}
            for p in registry.problems
        ]
        typer.echo(json.dumps({"plugins": rows, "problems": problems}, indent=2))
        return
    table = Table(title="plugins")
    for column in ("plugin", "package", "version", "hooks (register_*)", "registered", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        by_kind: dict[str, list[str]] = {}
        for item in row["registered"]:
            by_kind.setdefault(item["kind"], []).append(item["config_name"])
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in by_kind.items())
        hooks = ", ".join(hook.removeprefix("register_") for hook in row["hooks"])
        table.add_row(
            row["name"], row["distribution"] or "", row["version"] or "", hooks, registered,
            _status(row),
        )
    console.print(table)
    for problem in registry.problems:
        console.print(
            f"problem: {problem.label}: {problem.message}",
            highlight=False, markup=False, soft_wrap=True,
        )


#: Where ``coldkit compare`` writes its figure without ``--figure``: the current folder.
_DEFAULT_FIGURE = "compare.png"


def _report_format(as_json: bool, as_markdown: bool, out: Optional[Path]) -> Optional[str]:
    """The report asked for, "json" or "markdown": ``--json``, ``--markdown``, else from
    ``--out``'s suffix, else None (no report, only the table)."""
    if as_json and as_markdown:
        raise ConfigError("--json and --markdown were both given; pick one report format.")
    if as_json:
        return "json"
    if as_markdown:
        return "markdown"
    if out is not None:
        return "json" if out.suffix.lower() == ".json" else "markdown"
    return None


def _figure_target(figure: Optional[Path], no_figure: bool) -> Optional[Path]:
    """Where the figure goes: ``--figure``, else compare.png here; None with ``--no-figure``."""
    if no_figure:
        if figure is not None:
            raise ConfigError("--figure and --no-figure were both given; drop one of them.")
        return None
    return figure if figure is not None else Path(_DEFAULT_FIGURE)


@app.command()
def compare(
    run_dirs: Annotated[
        list[str],
        typer.Argument(help="run folders, or patterns such as 'runs/*'", show_default=False),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="print the comparison as a Markdown table")
    ] = False,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="write the report to FILE (format: --json/--markdown, else "
                     "from the suffix: .json is JSON, anything else Markdown)"),
    ] = None,
    figure: Annotated[
        Optional[Path],
        typer.Option("--figure", help="PNG of every run restoring the same held-out images "
                     "(default: compare.png)"),
    ] = None,
    no_figure: Annotated[
        bool, typer.Option("--no-figure", help="no figure (no model is loaded)")
    ] = False,
    images: Annotated[
        Optional[int],
        typer.Option("--images", min=1, help="held-out images (rows) in the figure (default: the "
                     "first run's evaluate.figure_rows)"),
    ] = None,
) -> None:
    """Compare run folders: their Table-1 rows side by side, and one figure for the same images."""
    from coldkit.evaluation.compare import (
        comparison_notes,
        expand_run_paths,
        render_report,
        rich_table,
        summarize_runs,
        write_comparison_figure,
        write_report,
    )

    with reported():
        kind = _report_format(as_json, as_markdown, out)
        target = _figure_target(figure, no_figure)
        summaries = summarize_runs(expand_run_paths(run_dirs))
    report_on_stdout = kind is not None and out is None
    messages = error_console if report_on_stdout else console

    def notify(message: str) -> None:
        messages.print(message, highlight=False, markup=False, soft_wrap=True)

    if not report_on_stdout:
        console.print(rich_table(summaries))
        for note in comparison_notes(summaries):
            notify(f"note: {note}")
    drawn = None
    with reported():
        if target is not None:
            drawn = write_comparison_figure(
                summaries, target, registry=load_registry(), images=images
            )
        if out is not None and kind is not None:
            notify(f"wrote {write_report(summaries, kind, out, drawn)}")
    if report_on_stdout and kind is not None:
        typer.echo(render_report(summaries, kind, drawn), nl=False)
    if drawn is not None:
        for note in drawn.notes:
            notify(f"figure: {note}")
        if drawn.path is not None:
            notify(f"wrote {drawn.path}: {drawn.images} held-out images; columns "
                f"{', '.join(drawn.labels)}")


@app.command()
def restore(
    run_dir: Annotated[
        Path, typer.Argument(help="run folder, exported model folder or hf://OWNER/NAME")
    ],
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
    from coldkit.generation.restore import restore_files
    from coldkit.runs.opened import open_run

    def notify(message: str) -> None:
        console.print(message, highlight=False, markup=False, soft_wrap=True)

    with reported():
        registry = load_registry()
        loaded = open_run(run_dir, registry, notify=notify)
        report = restore_files(
            loaded,
            images,
            registry=registry,
            t=level,
            estimate=estimate_t,
            sampler=sampler,
            out=out,
            notify=notify,
        )
    notify(f"sampler: {report.sampler}")
    for path in report.paths:
        notify(f"wrote {path}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="run folder written by `coldkit run`")],
    out_dir: Annotated[Path, typer.Argument(help="new folder for the exported model")],
    push_to_hub: Annotated[
        Optional[str],
        typer.Option("--push-to-hub", help="also upload to this Hugging Face Hub repo OWNER/NAME"),
    ] = None,
) -> None:
    """Export a trained run as a model folder others can load: safetensors weights, a manifest and
    a model card (docs/export.md)."""
    from coldkit.export import export_run

    with reported():
        report = export_run(
            run_dir, out_dir, registry=load_registry(), push_to_hub=push_to_hub,
            notify=lambda message: console.print(message, highlight=False, markup=False),
        )
    for name in report.files:
        console.print(f"wrote {report.folder / name}", highlight=False, markup=False)


@app.command()
def fid(
    a: Annotated[str, typer.Argument(help="a folder of images, a run folder, a samples.pt, or "
                                         "dataset:NAME[:SPLIT]")],
    b: Annotated[str, typer.Argument(help="the other set, in any of the same forms")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print fid, kid, kid_std, count_a, count_b as JSON")
    ] = False,
    image_size: Annotated[
        Optional[int], typer.Option("--image-size", min=4, help="resize both sets to this side first")
    ] = None,
    max_images: Annotated[
        Optional[int], typer.Option("--max-images", min=2, help="use at most this many of each set")
    ] = None,
    weights: Annotated[
        Optional[str], typer.Option("--weights", help="your own FID network file (docs/metrics.md)")
    ] = None,
) -> None:
    """FID and KID between two image sets with the standard Inception network (docs/metrics.md)."""
    from coldkit.evaluation.fid_pair import fid_between

    with reported():
        result = fid_between(
            a, b, load_registry, image_size=image_size, max_images=max_images, weights=weights,
            console=None if as_json else console,
            notify=None if as_json else (lambda message: console.print(message, highlight=False)),
        )
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(
        f"FID {result['fid']:.3f}, KID {result['kid']:.5f} ± {result['kid_std']:.5f}  "
        f"(A: {result['count_a']} images, {result['a']}; B: {result['count_b']} images, "
        f"{result['b']})", highlight=False, markup=False,
    )


def main() -> None:  # pragma: no cover - console-script convenience
    app()
