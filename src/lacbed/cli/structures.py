"""``lacbed structures list|export``: inspect and export the cubic structure sources."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from lacbed.cli.app import app

__all__ = ["structures_app"]

structures_app = typer.Typer(
    help="Cubic structure sources: oqmd, aflow, cod, cifs:PATH, examples, augmented[:N].",
    no_args_is_help=True,
)
app.add_typer(structures_app, name="structures")

SOURCE_HELP = (
    "Structure source: oqmd | aflow | cod | cifs:PATH | examples | augmented[:N] "
    "(oqmd, aflow and cod also take :PATH)."
)
#: Bins of the number of sites in the conventional cell.
ATOM_BINS = (1, 2, 5, 9, 17, 33, 65, 129, 257, 513)


def _atom_bin(n: int) -> str:
    for lo, hi in zip(ATOM_BINS, ATOM_BINS[1:], strict=False):
        if lo <= n < hi:
            return str(lo) if hi - 1 == lo else f"{lo}-{hi - 1}"
    return f">={ATOM_BINS[-1]}"


def _a_bin(a: float) -> str:
    lo = int(a // 2) * 2
    return f"{lo}-{lo + 2} Å" if a < 20 else ">=20 Å"


def _load(source: list[str], seed: int, no_cache: bool):
    from lacbed.structures import load_sources

    return load_sources(source, use_cache=not no_cache, seed=seed)


@structures_app.command("list")
def list_structures(
    source: Annotated[list[str], typer.Argument(help=SOURCE_HELP, show_default=False)],
    output_format: Annotated[str, typer.Option("--format", help="text | json.")] = "text",
    seed: Annotated[int, typer.Option("--seed", help="Augmentation seed.")] = 0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ignore the processed-source cache.")
    ] = False,
) -> None:
    """Count the distinct cubic structures of one or more sources by space group and size."""
    from lacbed.errors import SettingsError

    if output_format not in ("text", "json"):
        raise SettingsError(f"--format {output_format!r} is not one of text, json")
    res = _load(source, seed, no_cache)
    entries = res.entries
    by_source = Counter(e.source for e in entries)
    by_sg = Counter((e.space_group_number, e.crystal.space_group) for e in entries)
    by_atoms = Counter(_atom_bin(e.n_atoms) for e in entries)
    by_a = Counter(_a_bin(e.a) for e in entries)
    summary = {
        "sources": source,
        "distinct": len(entries),
        "read": res.n_read,
        "by_source": dict(by_source),
        "skipped": dict(res.skipped),
        "by_space_group": {f"{n} {sym}": c for (n, sym), c in sorted(by_sg.items())},
        "by_atoms_per_cell": {k: by_atoms[k] for k in sorted(by_atoms, key=_bin_order)},
        "by_lattice_parameter": {k: by_a[k] for k in sorted(by_a, key=_bin_order)},
        "elements": len({s for e in entries for s in e.crystal.symbols}),
    }
    if output_format == "json":
        typer.echo(json.dumps(summary, indent=1))
        return
    from rich.columns import Columns
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{len(entries)}[/bold] distinct cubic structures from {', '.join(source)} "
        f"({res.n_read} entries read, {summary['elements']} elements)"
    )
    head = Table(title="by source")
    head.add_column("source")
    head.add_column("count", justify="right")
    for k, v in sorted(by_source.items()):
        head.add_row(k, str(v))
    skip = Table(title="skipped")
    skip.add_column("reason")
    skip.add_column("count", justify="right")
    for k, v in sorted(res.skipped.items(), key=lambda kv: -kv[1]):
        skip.add_row(k, str(v))
    atoms = Table(title="atoms per cell")
    atoms.add_column("sites")
    atoms.add_column("count", justify="right")
    for k, v in summary["by_atoms_per_cell"].items():
        atoms.add_row(k, str(v))
    cell = Table(title="lattice parameter")
    cell.add_column("a")
    cell.add_column("count", justify="right")
    for k, v in summary["by_lattice_parameter"].items():
        cell.add_row(k, str(v))
    console.print(Columns([head, skip, atoms, cell]))
    sg = Table(title="by space group")
    for _ in range(3):
        sg.add_column("#")
        sg.add_column("symbol")
        sg.add_column("count", justify="right")
    rows = [(str(n), sym, str(c)) for (n, sym), c in sorted(by_sg.items())]
    third = (len(rows) + 2) // 3
    for i in range(third):
        cells: list[str] = []
        for j in range(3):
            k = i + j * third
            cells += list(rows[k]) if k < len(rows) else ["", "", ""]
        sg.add_row(*cells)
    console.print(sg)


def _bin_order(label: str) -> float:
    m = re.match(r"^(>=)?(\d+)", label)
    return float(m.group(2)) + (0.5 if m.group(1) else 0.0) if m else 1e9


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", key).strip("_")[:150]


@structures_app.command("export")
def export_structures(
    source: Annotated[list[str], typer.Argument(help=SOURCE_HELP, show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output folder (one CIF per entry).")
    ],
    limit: Annotated[int | None, typer.Option("--limit", help="Export at most N entries.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Augmentation seed.")] = 0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ignore the processed-source cache.")
    ] = False,
) -> None:
    """Write one CIF per structure (conventional cubic cell) into a folder, plus an index.csv."""
    import csv

    from lacbed.crystal import write_cif
    from lacbed.errors import SettingsError

    if limit is not None and limit < 0:
        raise SettingsError(f"--limit must be >= 0, got {limit}")
    if output.exists() and not output.is_dir():
        raise SettingsError(f"--output {output} exists and is not a folder")
    entries = _load(source, seed, no_cache).entries
    if limit is not None:
        entries = entries[:limit]
    output.mkdir(parents=True, exist_ok=True)
    from lacbed._io import atomic_path

    names: set[str] = set()
    rows = []
    for e in entries:
        name = _safe_name(e.key)
        while name in names:
            name += "_"
        names.add(name)
        write_cif(e.crystal, output / f"{name}.cif")
        rows.append(
            [
                f"{name}.cif",
                e.key,
                e.formula,
                e.space_group_number,
                f"{e.a:.5f}",
                e.n_atoms,
                e.source,
                e.source_id,
                e.parent,
                e.derivation,
            ]
        )
    with atomic_path(output / "index.csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "file",
                "key",
                "formula",
                "space_group_number",
                "a",
                "n_atoms",
                "source",
                "source_id",
                "parent",
                "derivation",
            ]
        )
        w.writerows(rows)
    typer.echo(f"wrote {len(rows)} CIFs to {output}")
