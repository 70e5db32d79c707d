"""Counts of the offline structure sources (the table of docs/dataset.md, "Structure sources").

For each source: entries read, distinct cubic structures kept, skips by reason; for ``augmented``
also real and derived structures and the point-group mix; the overlap between the three real
sources. Needs the source packages (docs/dataset.md says how to install them); a missing source
is recorded as such.

Usage (from the repository root)::

    nice -n 10 python benchmarks/structure_counts.py [--no-cache]
        [--out benchmarks/results/structure_counts.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-cache", action="store_true", help="do not use the structure cache")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "structure_counts.json"))
    args = ap.parse_args(argv)
    import lacbed
    from lacbed.crystal.model import point_group_of
    from lacbed.structures.sources import SourceError, dedupe, load_source

    out: dict = {
        "lacbed_version": lacbed.__version__,
        "machine": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": {},
    }
    real = []
    for name in ("oqmd", "cod", "aflow", "examples", "augmented"):
        t0 = time.process_time()
        try:
            res = load_source(name, use_cache=not args.no_cache)
        except SourceError as exc:
            out["sources"][name] = {"missing": str(exc)}
            print(name, "missing:", exc, flush=True)
            continue
        row = {
            "entries_read": res.n_read,
            "distinct_cubic": len(res.entries),
            "skipped": dict(res.skipped),
            "cpu_s": round(time.process_time() - t0, 1),
        }
        if name in ("oqmd", "cod", "aflow"):
            real.extend(res.entries)
        if name == "augmented":
            derived = sum(1 for e in res.entries if e.parent)
            row["real"] = len(res.entries) - derived
            row["derived"] = derived
            row["point_groups"] = dict(
                Counter(point_group_of(e.space_group_number) for e in res.entries).most_common()
            )
            row["space_groups"] = len({e.space_group_number for e in res.entries})
            row["elements"] = len({s for e in res.entries for s in e.crystal.symbols})
        out["sources"][name] = row
        print(name, json.dumps(row), flush=True)
    if real:
        kept, n_dup = dedupe(real)
        out["union_of_real_sources"] = {"distinct": len(kept), "shared_between_sources": n_dup}
        print("union", out["union_of_real_sources"], flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
