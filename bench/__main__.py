"""`python -m bench [NAME ...] [--quick]`: run the benchmarks and print their tables.

NAME is any of personalise, smtp, e2e, scaleout, desk, dkim, import (default: all). --quick
runs small sizes, for checking that the benchmarks work rather than for figures.
"""

from __future__ import annotations

import argparse

from bench import desk, dkim_sign, e2e, importer, personalise, scaleout, smtp_throughput

BENCHMARKS = {
    "personalise": personalise.main,
    "smtp": smtp_throughput.main,
    "e2e": e2e.main,
    "scaleout": scaleout.main,
    "desk": desk.main,
    "dkim": dkim_sign.main,
    "import": importer.main,
}
QUICK = {
    "personalise": ["--subscribers", "2000", "--baseline-subscribers", "10", "--runs", "1"],
    "smtp": ["--subscribers", "300", "--runs", "1"],
    "e2e": ["--sizes", "5000,20000", "--runs", "1"],
    "scaleout": ["--deliveries", "1000", "--runs", "1"],
    "desk": ["--posts", "5", "--runs", "1"],
    "dkim": ["--messages", "100", "--runs", "1"],
    "import": ["--sizes", "5000,20000", "--runs", "1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for name in args.names or list(BENCHMARKS):
        BENCHMARKS[name](QUICK[name] if args.quick else [])


if __name__ == "__main__":
    main()
