"""Which shared libraries the venv's compiled extensions need and the system does not have.

    python scripts/ldd_check.py [--site DIR] [--ignore REGEX ...]

Runs ``ldd`` over every ``*.so*`` file under the interpreter's site-packages (or ``--site``)
and prints, per missing library, the files that need it; exits 1 when something is missing.
The Dockerfile runs it at build time, so an image whose OCR (opencv's ``libGL.so.1``) or any
other extension cannot load fails to build instead of failing on first use. ``--ignore``
skips libraries loaded only on optional paths (CUDA providers on a CPU image).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import sysconfig
from collections import defaultdict
from pathlib import Path

# Loaded only on optional paths: GPU runtimes, HPC transports of NVIDIA's nvshmem/cufile,
# numba's optional TBB threading layer.
DEFAULT_IGNORE = [r"^libcu", r"^libnv", r"^libcudnn", r"^libnccl", r"^libtensorrt",
                  r"^libmigraphx", r"^libamdhip", r"^librocm", r"^libhip", r"^libMIOpen",
                  r"^libopenvino", r"^libdnnl", r"^liboshmem", r"^libpmix", r"^librdmacm",
                  r"^libucp", r"^libucs", r"^libibverbs", r"^libmlx", r"^libtbb", r"^libfabric",
                  r"^libmpi"]  # fmt: skip


def missing(site: Path) -> dict[str, list[str]]:
    """Library name -> the files under ``site`` whose ``ldd`` says it is not found."""
    out: dict[str, list[str]] = defaultdict(list)
    for f in sorted(site.rglob("*.so*")):
        if not f.is_file() or f.is_symlink():
            continue
        res = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False)
        for line in res.stdout.splitlines():
            m = re.match(r"\s*(\S+) => not found", line)
            if m:
                out[m.group(1)].append(str(f.relative_to(site)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--site", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    p.add_argument("--ignore", nargs="*", default=DEFAULT_IGNORE,
                   help="regexes of library names to skip (default: GPU runtimes)")
    args = p.parse_args(argv)
    found = missing(args.site)
    # A library another package of the venv ships is loaded by that package first (torch's
    # libtorch*.so for torchvision, the hashed libquadmath of a wheel's .libs folder).
    shipped = {f.name for f in args.site.rglob("*.so*")}
    found = {k: v for k, v in found.items() if k not in shipped}
    skipped = {k: v for k, v in found.items() if any(re.search(r, k) for r in args.ignore)}
    bad = {k: v for k, v in found.items() if k not in skipped}
    for lib, files in sorted(bad.items()):
        print(f"NOT FOUND {lib}: needed by {len(files)} file(s), e.g. {files[0]}")
    if skipped:
        print(f"skipped (optional paths): {', '.join(sorted(skipped))}")
    print(f"{len(bad)} missing librar{'y' if len(bad) == 1 else 'ies'} under {args.site}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
