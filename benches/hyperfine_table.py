#!/usr/bin/env python3
"""Turns one hyperfine --export-json file into a Markdown table for BENCHMARKS.md.

The first command is kdeploy's; every row shows its median, min and max, and the ratio kdeploy / this
command, so "0.25" means kdeploy took a quarter of that command's time.

    hyperfine_table.py results.json > table.md
"""
import json
import statistics
import sys


def main(path):
    results = json.load(open(path))["results"]
    medians = [statistics.median(r["times"]) for r in results]
    seconds = min(medians) >= 1.0
    unit, scale, digits = ("s", 1.0, 2) if seconds else ("ms", 1000.0, 1)
    reference = medians[0]
    print(f"| Command | Median [{unit}] | Min [{unit}] | Max [{unit}] | kdeploy ÷ this |")
    print("|:---|---:|---:|---:|---:|")
    for result, median in zip(results, medians):
        cells = [f"{value * scale:.{digits}f}" for value in (median, min(result["times"]), max(result["times"]))]
        ratio = "1.00 (kdeploy)" if result is results[0] else f"{reference / median:.2f}"
        print(f"| `{result['command']}` | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
