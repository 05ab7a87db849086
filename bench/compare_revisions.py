#!/usr/bin/env python3
"""Run one benchmark of bench/ on an earlier revision and on the working tree, alternately,
and print every median side by side: "before and after, in the same run".

    python bench/compare_revisions.py --baseline 857fa1b [--rounds 2] [--out build/bench/compare]
        -- bench_online_mapper.py --sizes 320x240 640x480 --frames 20

The baseline is checked out once as a git worktree under build/revisions/<commit> (no
copy of the virtual environment: the same .venv runs both, with PYTHONPATH pointing at
each tree, so only the project's code differs). Rounds alternate the order (baseline,
current, current, baseline, ...) so slow drifts of the machine's load hit both alike.
Each run writes its JSON (the benchmark's ``--out``); the comparison takes, for every
numeric leaf named ``median`` that both revisions report, the median over the rounds, and
shows whether text leaves named ``*sha256`` (digests of results) are equal.
--script-from-current runs the working tree's script against both packages (for a
script the baseline lacks that uses only APIs both have). Prints a table and writes
OUT/compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from alster_mapping.core.atomic_file import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


def worktree(commit: str) -> Path:
    """A detached worktree of ``commit`` under build/revisions (made once)."""
    sha = subprocess.run(["git", "rev-parse", commit], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    path = ROOT / "build" / "revisions" / sha[:12]
    if not (path / "bench").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path), sha], cwd=ROOT, check=True)
    # Benchmarks find the shared data beside the checkout (../shared): give the worktree the same.
    shared, link = ROOT.parent / "shared", path.parent / "shared"
    if shared.is_dir() and not link.exists():
        link.symlink_to(shared, target_is_directory=True)
    return path


def run(tree: Path, script: Path, args: list[str], out: Path) -> dict:
    """``script`` with ``tree``'s package first on the path, in ``tree``; its JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    command = [sys.executable, str(script), *args, "--out", str(out)]
    print(f"$ (cd {tree} && {' '.join(command[1:])})", flush=True)
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def leaves(report, keep) -> dict[str, object]:
    """The leaves of a JSON report for which ``keep(key, value)`` holds, by path ("a/0/b")."""
    found = {}
    items = report.items() if isinstance(report, dict) else enumerate(report) if isinstance(report, list) else ()
    for key, value in items:
        if keep(str(key), value):
            found[str(key)] = value
        else:
            found.update({f"{key}/{path}": leaf for path, leaf in leaves(value, keep).items()})
    return found


def medians(report) -> dict[str, float]:
    """Every numeric ``median`` of a report, by the path of its parent ("sizes/0/runs/default/ms/total")."""
    found = leaves(report, lambda key, value: key == "median" and isinstance(value, (int, float)))
    return {path.removesuffix("median").rstrip("/"): float(value) for path, value in found.items()}


def digests(report) -> dict[str, str]:
    """Every text leaf whose key ends in ``sha256``, by its path."""
    return leaves(report, lambda key, value: isinstance(value, str) and key.endswith("sha256"))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison (arguments as on the command line); returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: compare_revisions.py --baseline REV [--rounds N] [--out DIR] -- SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "compare")
    parser.add_argument("--script-from-current", action="store_true", help="run the working tree's script on both")
    args = parser.parse_args(argv[:split])
    args.out = args.out.resolve()  # each run works in its own tree
    script, script_args = argv[split + 1], argv[split + 2 :]
    trees = {"baseline": worktree(args.baseline), "current": ROOT}
    args.out.mkdir(parents=True, exist_ok=True)

    values: dict[str, dict[str, list[float]]] = {"baseline": {}, "current": {}}
    hashes: dict[str, dict[str, set[str]]] = {"baseline": {}, "current": {}}
    for round_index in range(args.rounds):
        order = ["baseline", "current"] if round_index % 2 == 0 else ["current", "baseline"]
        for name in order:
            path = (ROOT if args.script_from_current else trees[name]) / "bench" / script
            report = run(trees[name], path, script_args, args.out / f"{Path(script).stem}_{name}_{round_index}.json")
            for key, value in medians(report).items():
                values[name].setdefault(key, []).append(value)
            for key, value in digests(report).items():
                hashes[name].setdefault(key, set()).add(value)

    rows = []
    for key in values["current"]:
        if key in values["baseline"]:
            before, after = statistics.median(values["baseline"][key]), statistics.median(values["current"][key])
            rows.append({"metric": key, "baseline": before, "current": after, "change": after / before - 1 if before else None})
    same = {key: hashes["baseline"][key] == value for key, value in hashes["current"].items() if key in hashes["baseline"]}
    summary = {
        "digests_equal": same,
        "script": script,
        "args": script_args,
        "baseline": args.baseline,
        "rounds": args.rounds,
        "comparison": rows,
    }
    write_text_atomic(args.out / "compare.json", json.dumps(summary, indent=2))
    print(f"{'median of':<60} {'baseline':>10} {'current':>10} {'change':>8}")
    for row in rows:
        change = f"{100 * row['change']:+7.1f}%" if row["change"] is not None else "-"
        print(f"{row['metric']:<60} {row['baseline']:>10.2f} {row['current']:>10.2f} {change:>8}")
    for key, equal in same.items():
        print(f"{key}: {'equal' if equal else 'DIFFERENT'} ({', '.join(sorted(hashes['current'][key]))[:16]}...)")
    print(f"wrote {args.out / 'compare.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
