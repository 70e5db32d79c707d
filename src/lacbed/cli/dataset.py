"""``lacbed dataset build|info|show``: build datasets on Dask and inspect them."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperCommand

from lacbed.cli.app import app
from lacbed.errors import SettingsError

__all__ = ["dataset_app"]

dataset_app = typer.Typer(
    help="Datasets of (projected potential, LACBED pattern) pairs: build, info, show.",
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")

SCATTERING = ("kirkland", "peng", "lobato", "doyle-turner")
ABSORPTION = ("none", "proportional", "bird-king")
SOLVERS = ("fast", "exact")


def _expand(args: list[str]) -> list[str]:
    """``--thickness 50 100 150`` → one flag per value (the helper of ``lacbed simulate``)."""
    try:
        from lacbed.cli.simulate import expand_multi_value_options
    except ImportError:  # pragma: no cover - simulate CLI always present in a full install
        return args
    return expand_multi_value_options(args, ("--thickness", "-t"))


class _BuildCommand(TyperCommand):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand(list(args)))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise SettingsError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return v


class _RichProgress:
    """Progress bar with count, rate (materials/h) and ETA, on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.task = None
        self.ok = 0
        self.failed = 0
        self.t0 = time.perf_counter()
        self.start_done = 0

    def __call__(self, done: int, total: int, key: str, status: str) -> None:
        if status == "ok":
            self.ok += 1
        elif status == "failed":
            self.failed += 1
        if not self.enabled:
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.start_done = done
            self.t0 = time.perf_counter()
            self.bar = Progress(
                TextColumn("building"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("failed {task.fields[failed]}"),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task(
                "build", total=total, completed=done, rate="", failed=0, eta="-"
            )
        dt = time.perf_counter() - self.t0
        n = done - self.start_done
        # rate and ETA over this run (rich's own estimate looks only at the last 30 s)
        rate = f"{3600 * n / dt:,.0f}/h" if dt > 0 and n else "-/h"
        eta = "-"
        if dt > 0 and n:
            left = (total - done) * dt / n
            h, rem = divmod(int(left), 3600)
            eta = f"{h}:{rem // 60:02d}:{rem % 60:02d}"
        self.bar.update(
            self.task, completed=done, total=total, rate=rate, failed=self.failed, eta=eta
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _sigterm_as_interrupt(signum, frame) -> None:  # noqa: ANN001
    """SIGTERM stops a build like Ctrl-C (finished materials are kept)."""
    raise KeyboardInterrupt


def _check_retry_folder(output: Path, retry: set[str]) -> None:
    """Refuse a working folder that holds records of materials to retry, unless it was made by
    a retry (``retry_unconverged_of`` in its dataset.json: an interrupted retry resumes). The
    folder of the build that made the released records would retry nothing: a solved material
    is final in its working folder."""
    from lacbed.dataset.store import read_records

    meta = output / "dataset.json"
    if meta.is_file() and "retry_unconverged_of" in json.loads(meta.read_text()):
        return
    held = sorted({r["key"] for r in read_records(output)} & retry)
    if held:
        raise SettingsError(
            f"--retry-unconverged: {output} already holds records of {len(held)} of the "
            f"materials to retry (e.g. {held[0]}); give a new output folder"
        )


@dataset_app.command("build", cls=_BuildCommand)
def build(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Dataset folder (created or resumed).")
    ],
    source: Annotated[
        list[str],
        typer.Option(
            "--source",
            "-s",
            help="Structure source (repeatable): oqmd | aflow | cod | cifs:PATH | examples | augmented[:N].",
        ),
    ],
    limit: Annotated[
        int | None, typer.Option("--limit", help="Use only N materials (a fixed diverse sample).")
    ] = None,
    thickness: Annotated[
        list[float] | None,
        typer.Option(
            "--thickness",
            "-t",
            help="Thicknesses (nm): --thickness 50 100 150; default 100.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Local worker processes; default: all CPUs.")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Existing Dask scheduler, e.g. tcp://host:8786."),
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Potential and pattern side (pixels).")] = 128,
    voltage: Annotated[float, typer.Option("--voltage", help="Accelerating voltage (kV).")] = 200.0,
    half_width: Annotated[
        float | None,
        typer.Option("--half-width", help="Half-width W of the pattern (1/Å); default 4/a."),
    ] = None,
    scattering: Annotated[
        str, typer.Option("--scattering", help="kirkland|peng|lobato|doyle-turner.")
    ] = "kirkland",
    absorption: Annotated[
        str, typer.Option("--absorption", help="none|proportional|bird-king.")
    ] = "bird-king",
    kappa: Annotated[
        float, typer.Option("--kappa", help="U′/U for --absorption proportional.")
    ] = 0.078,
    strong_beams: Annotated[
        int | None, typer.Option("--strong-beams", help="Number of strong beams; default adaptive.")
    ] = None,
    max_g: Annotated[
        float | None, typer.Option("--max-g", help="Beam-pool limit |g| (1/Å).")
    ] = None,
    solver: Annotated[str, typer.Option("--solver", help="fast | exact.")] = "fast",
    max_atoms: Annotated[
        int | None, typer.Option("--max-atoms", help="Fail materials with more sites per cell.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the structure augmentation.")] = 0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ignore the processed-source cache.")
    ] = False,
    release: Annotated[
        Path | None,
        typer.Option("--release", help="Skip every material already in this release folder."),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Compute again the materials recorded as failed."),
    ] = False,
    retry_unconverged: Annotated[
        bool,
        typer.Option(
            "--retry-unconverged",
            help="With --release: compute again the released materials recorded as unconverged "
            "(in a new output folder; converged ones are packed again, the newer record wins).",
        ),
    ] = False,
    second_look: Annotated[
        bool,
        typer.Option(
            "--second-look",
            help="Run the engine in full now: escalation to 2x the strong beams, solves of pilots "
            "within 2x the target and the second look (on with --retry-unconverged; off by "
            "default: the first pass alone converges more materials per CPU-hour while new ones "
            "remain).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build (or resume) a dataset: one Dask task per material, results written atomically.

    Rerunning the same command skips finished and failed materials; different engine settings
    for an existing folder are refused. Ctrl-C or SIGTERM stops within seconds and keeps every
    finished material. Thicknesses in nm, voltage in kV, half-width in 1/Å.
    """
    from lacbed.dataset.build import BuildSettings, build_dataset, compute_item, describe_sources
    from lacbed.structures import load_sources

    if workers is not None and scheduler:
        raise SettingsError("give either --workers (local cluster) or --scheduler, not both")
    if workers is not None and workers < 1:
        raise SettingsError(f"--workers must be >= 1, got {workers}")
    if limit is not None and limit < 0:
        raise SettingsError(f"--limit must be >= 0, got {limit}")
    if strong_beams is not None and strong_beams < 1:
        raise SettingsError(f"--strong-beams must be >= 1, got {strong_beams}")
    settings = BuildSettings(
        size=size,
        thicknesses_nm=tuple(thickness or (100.0,)),
        voltage_kv=voltage,
        half_width=half_width,
        scattering=_choice("--scattering", scattering, SCATTERING),
        absorption=_choice("--absorption", absorption, ABSORPTION),
        kappa=kappa,
        solver=_choice("--solver", solver, SOLVERS),
        strong_beams=strong_beams,
        max_g=max_g,
        max_atoms=max_atoms,
        seed=seed,
    )
    # Dask's INFO chatter (cluster start/stop) would drown the progress bar; the worker processes
    # inherit the setting through the environment.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    err = typer.echo
    if not quiet:
        err(f"loading structures from {', '.join(source)} ...", err=True)
    skip: set[str] = set()
    if release is not None:
        from lacbed.dataset.release import is_release, release_keys

        if not is_release(release):
            raise SettingsError(f"--release {release} is not a lacbed release (no release.json)")
        skip = release_keys(release, failed=not retry_failed, unconverged=not retry_unconverged)
        if retry_unconverged:
            _check_retry_folder(output, release_keys(release) - skip)
    elif retry_unconverged:
        raise SettingsError("--retry-unconverged needs --release (the release to retry from)")
    res = load_sources(source, use_cache=not no_cache, seed=seed)
    info = describe_sources(source)
    info["skipped_at_load"] = dict(res.skipped)
    if retry_unconverged:
        info["retry_unconverged_of"] = str(release)
    bar = _RichProgress(enabled=not quiet)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        report = build_dataset(
            output,
            res.entries,
            settings,
            limit=limit,
            workers=workers,
            scheduler=scheduler,
            progress=bar,
            info=info,
            rejected=res.rejected,
            skip_keys=skip,
            retry_failed=retry_failed,
            compute=partial(compute_item, second_look=second_look or retry_unconverged),
        )
    except KeyboardInterrupt:
        bar.close()
        err(
            f"{output}: stopped; {bar.ok} materials finished in this run are kept "
            "(rerun the same command to resume)",
            err=True,
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    if not quiet:
        n = report.n_ok + report.n_unconverged + report.n_failed
        rate = (
            f", {report.rate_per_hour:,.0f} materials/h on {report.n_workers} workers" if n else ""
        )
        err(
            f"{output}: {report.n_ok} new, {report.n_unconverged} unconverged (not solved), "
            f"{report.n_failed} failed, "
            f"{report.n_rejected} rejected structures recorded, "
            f"{report.n_skipped_done} already done, {report.n_released} released, "
            f"of {report.n_work}{rate}",
            err=True,
        )


def _info_dict(path: Path) -> dict:
    from collections import Counter

    from lacbed.dataset import open_dataset

    ds = open_dataset(path)
    f = ds.failures
    reasons = (
        Counter(
            "unconverged (not solved)" if st == "unconverged" else str(r).split(":")[0]
            for r, st in zip(f["reason"], f.get("status", [None] * len(f)), strict=True)
        )
        if len(f)
        else {}
    )
    t = ds.table
    out = {
        "path": str(path),
        "complete": int(len(t)),
        "failed": int(len(ds.failures)),
        "splits": ds.split_counts(),
        "groups": int(t["group"].nunique()) if len(t) else 0,
        "size": ds.size,
        "thicknesses_nm": ds.thicknesses_nm.tolist(),
        "settings": ds.settings.get("settings", {}),
        "sources": ds.settings.get("sources", []),
        "by_source": {str(k): int(v) for k, v in t["source"].value_counts().items()}
        if len(t)
        else {},
        "failure_reasons": dict(reasons),
        "n_slots": int(ds.potentials.shape[0]),
        "lacbed_version": ds.settings.get("lacbed_version"),
    }
    if ds.settings.get("format") == "lacbed-release":
        out.update(_release_info(ds))
    for col, name in (("time_s", "time_s_per_item"), ("cpu_s", "cpu_s_per_item")):
        if len(t) and col in t:
            ts = t[col].dropna().astype(float)
            if len(ts):
                out[name] = {
                    "mean": float(ts.mean()),
                    "median": float(ts.median()),
                    "max": float(ts.max()),
                }
    return out


def _release_info(rel) -> dict:  # noqa: ANN001 (Release)
    from collections import Counter

    status = Counter(r["status"] for r in rel.records)
    shards = sorted((rel.path / "shards").glob("shard-*.h5"))
    planned = sum(rel.plan.get("counts", {}).values())
    t = rel.table
    return {
        "release": rel.settings.get("release"),
        "physics_version": rel.settings.get("physics_version", 1),
        "converged": int(status.get("ok", 0)),
        "unconverged": int(status.get("unconverged", 0)),
        "shards": len(shards),
        "megabytes": round(sum(p.stat().st_size for p in shards) / 1e6, 2),
        "real_structures_planned": int(planned),
        "real_converged": int(((t["status"] == "ok") & t["parent"].isna()).sum()) if len(t) else 0,
        "prototypes": int(t["prototype"].nunique()) if len(t) else 0,
        "with_convergence_estimate": int(t["convergence_estimate"].notna().sum()) if len(t) else 0,
    }


@dataset_app.command("info")
def info(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    output_format: Annotated[str, typer.Option("--format", help="text | json.")] = "text",
) -> None:
    """Counts, splits, failures and settings of a dataset."""
    if output_format not in ("text", "json"):
        raise SettingsError(f"--format {output_format!r} is not one of text, json")
    d = _info_dict(path)
    if output_format == "json":
        typer.echo(json.dumps(d, indent=1))
        return
    s = d["splits"]
    lines = [
        f"dataset {d['path']}",
        f"  complete  {d['complete']}   failed {d['failed']}   parent families {d['groups']}",
        f"  splits    train {s['train']}   val {s['val']}   test {s['test']}",
        f"  size      {d['size']} px   thicknesses {', '.join(f'{x:g}' for x in d['thicknesses_nm'])} nm",
        f"  sources   {', '.join(d['sources']) or '-'}   by source {d['by_source']}",
        f"  settings  {json.dumps(d['settings'])}",
    ]
    if "release" in d:
        lines[0] = (
            f"release {d['path']} (version {d['release']}, engine physics {d['physics_version']})"
        )
        lines.insert(
            1,
            f"  progress  {d['converged']} ok ({d['real_converged']} of "
            f"{d['real_structures_planned']} real structures), {d['unconverged']} unconverged; "
            f"{d['shards']} shards, {d['megabytes']:.1f} MB; {d['prototypes']} prototypes",
        )
        lines[2] = lines[2].replace("complete ", "stored   ")
        lines[3] += f"   test-real {s['test-real']}"
    if d["failure_reasons"]:
        lines.append(f"  failures  {d['failure_reasons']}")
    for name, label in (("time_s_per_item", "wall/item"), ("cpu_s_per_item", "CPU/item ")):
        if name in d:
            ts = d[name]
            lines.append(
                f"  {label} mean {ts['mean']:.2f} s, median {ts['median']:.2f} s, "
                f"max {ts['max']:.1f} s"
            )
    typer.echo("\n".join(lines))


@dataset_app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="Dataset folder.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Montage image (.png, .pdf, .svg).")
    ],
    n: Annotated[int, typer.Option("-n", "--count", help="Number of materials.")] = 6,
    split: Annotated[
        str | None, typer.Option("--split", help="Only from train | val | test.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random sample.")] = 0,
) -> None:
    """Potential and pattern side by side for a random sample of materials."""
    from lacbed.dataset import open_dataset
    from lacbed.plotting.dataset import plot_montage

    if n < 1:
        raise SettingsError(f"-n must be >= 1, got {n}")
    if output.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SettingsError(f"--output must end in .png, .pdf or .svg, got {output.name!r}")
    ds = open_dataset(path)
    plot_montage(ds, output, n=n, split=split, seed=seed)
    typer.echo(f"wrote {output}")


@dataset_app.command("pack")
def pack(
    work: Annotated[Path, typer.Argument(help="Working dataset folder (from `dataset build`).")],
    release: Annotated[
        Path, typer.Option("--release", "-r", help="Release folder (created on first use).")
    ],
    shard_items: Annotated[
        int, typer.Option("--shard-items", help="Most materials per new shard.")
    ] = 400,
    datasheet: Annotated[
        bool, typer.Option("--datasheet/--no-datasheet", help="Regenerate REL/README.md.")
    ] = True,
    engine_check: Annotated[
        bool,
        typer.Option(
            "--engine-check/--no-engine-check",
            help="Re-simulate a few materials of each new engine revision (Z <= 0.1 %).",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Move the finished materials of a working dataset into new, write-once release shards.

    Materials already in the release are skipped; no shard is ever rewritten. A new release
    plans its prototype splits once from every real structure of the working dataset's sources
    (about 30 ms per structure) and stores the plan in splits.json.
    """
    from lacbed.dataset.release import is_release, pack_release

    if shard_items < 1:
        raise SettingsError(f"--shard-items must be >= 1, got {shard_items}")
    plan = None
    if not (release / "splits.json").is_file():
        plan = _plan_from_sources(work, quiet=quiet)
    elif not is_release(release) and not quiet:
        typer.echo(f"using the split plan in {release / 'splits.json'}", err=True)
    report = pack_release(
        work, release, plan=plan, shard_items=shard_items, check_engine=engine_check
    )
    for c in report.engine_checks:
        typer.echo(
            f"engine revision {c['revision']}: {len(c['materials'])} materials re-simulated "
            f"with {c['checked_with']}, max Z = {100 * c['max_z']:.2g} %",
            err=True,
        )
    if datasheet:
        from lacbed.dataset.datasheet import write_datasheet

        write_datasheet(release)
    mb = report.bytes_written / 1e6
    typer.echo(
        f"{release}: {report.n_ok} ok, {report.n_unconverged} unconverged, "
        f"{report.n_failed} failed materials packed into {len(report.shards)} new shard(s) "
        f"({mb:.1f} MB); {report.n_already} already released"
    )


def _plan_from_sources(work: Path, *, quiet: bool) -> dict:
    """Split plan from every real structure of the sources a working dataset was built from."""
    from lacbed.dataset.release import plan_release_splits
    from lacbed.dataset.store import DatasetError
    from lacbed.structures import load_sources
    from lacbed.structures.sources import parse_source

    meta_path = work / "dataset.json"
    if not meta_path.is_file():
        raise DatasetError(f"{work} is not a lacbed dataset (no dataset.json)")
    specs = json.loads(meta_path.read_text()).get("sources") or []
    real = [s for s in specs if parse_source(s)[0] != "augmented"]
    if any(parse_source(s)[0] == "augmented" for s in specs):
        real += [s for s in ("oqmd", "cod", "aflow") if s not in real]
    if not real:
        raise DatasetError(f"{meta_path} names no structure sources to plan the splits from")
    if not quiet:
        typer.echo(f"planning prototype splits from {', '.join(real)} ...", err=True)
    res = load_sources(real)
    return plan_release_splits(res.entries)
