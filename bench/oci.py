#!/usr/bin/python3
"""OCI runtimes side by side: create+start+delete, and run, of /bin/true on one bundle.

pyctr, runc (--systemd-cgroup and cgroupfs) and crun, alternating in a new
random order each round, so drift hits all alike. Prints medians, deciles and
ratios to runc --systemd-cgroup; asserts nothing.

    sudo /usr/bin/python3 bench/oci.py [-n ROUNDS] [--baseline CHECKOUT]

Where PID 1 is not systemd it re-runs itself inside the project's sandbox.
crun 1.8 refuses a hybrid cgroup layout ("cgroups in hybrid mode not
supported"), so on a hybrid system the measuring process unmounts the cgroup2
mount from a private mount namespace of its own: every contender then sees the
legacy v1 layout, which pyctr, runc and systemd handle alike (systemd itself,
PID 1, keeps its own view).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, CHECKOUT)

from bench.start import entry_script, runc_bundle  # noqa: E402
from pyctr_systemd import cgroups, rootfs  # noqa: E402
from tests.sandbox.boot import Sandbox  # noqa: E402

PYTHON = "/usr/bin/python3"
UNIFIED = "/sys/fs/cgroup/unified"


def runtimes(workdir: str, baseline: str) -> dict[str, list[str]]:
    found = {
        "pyctr": [entry_script(workdir), "--root", f"{workdir}/pyctr-state"],
        "runc --systemd-cgroup": ["runc", "--systemd-cgroup", "--root", f"{workdir}/runc-state"],
        "runc (cgroupfs)": ["runc", "--root", f"{workdir}/runc-state"],
    }
    if shutil.which("crun"):
        found["crun --systemd-cgroup"] = ["crun", "--systemd-cgroup", "--root", f"{workdir}/crun-state"]
        found["crun (cgroupfs)"] = ["crun", "--root", f"{workdir}/crun-state"]
    if baseline:  # another checkout of pyctr (see bench/start.py)
        script = entry_script(workdir, baseline, "pyctr-baseline")
        found["pyctr (baseline)"] = [script, "--root", f"{workdir}/pyctr-state"]
    return found


def lifecycle(runtime: list[str], path: str, cid: str) -> list[list[str]]:
    return [
        [*runtime, "create", "--bundle", path, cid],
        [*runtime, "start", cid],
        [*runtime, "delete", "--force", cid],
    ]


def works(commands: list[list[str]]) -> bool:
    # No pipes: a created container keeps its runtime's stdout and stderr open.
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return all(subprocess.run(c, **quiet).returncode == 0 for c in commands)  # type: ignore[call-overload]


def measure(rounds: int, baseline: str) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        path = runc_bundle(rootfs.default(), workdir)  # /bin/true on the default rootfs
        scenarios: dict[str, list[list[str]]] = {}
        for name, runtime in runtimes(workdir, baseline).items():
            cid = f"bench-{len(scenarios)}"
            for label, commands in (
                ("create+start+delete", lifecycle(runtime, path, cid)),
                ("run", [[*runtime, "run", "--bundle", path, cid]]),
            ):
                if works(commands):
                    scenarios[f"{label}: {name}"] = commands
                else:
                    print(f"skipped {label}: {name} (it fails here)")
        times: dict[str, list[float]] = {name: [] for name in scenarios}
        for _ in range(rounds):
            for name, commands in random.sample(list(scenarios.items()), len(scenarios)):
                start = time.perf_counter()
                for command in commands:
                    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    report(rounds, times)


def report(rounds: int, times: dict[str, list[float]]) -> None:
    print(f"{rounds} rounds, ms{'median':>42}  {'p10':>6}  {'p90':>6}  ratio to runc --systemd-cgroup")
    for name, samples in times.items():
        label = name.split(":")[0]
        base = times.get(f"{label}: runc --systemd-cgroup")
        median = statistics.median(samples)
        deciles = statistics.quantiles(samples, n=10)
        ratio = f"{median / statistics.median(base):5.2f}x" if base else "    -"
        print(
            f"{name:>48}  {median * 1000:6.1f}  {deciles[0] * 1000:6.1f}  {deciles[-1] * 1000:6.1f}  {ratio}"
        )
    for label in ("create+start+delete", "run"):
        pyctr, crun = times.get(f"{label}: pyctr"), times.get(f"{label}: crun --systemd-cgroup")
        if pyctr and crun:
            to_crun = statistics.median(pyctr) / statistics.median(crun)
            print(f"{label}: pyctr / crun --systemd-cgroup = {to_crun:.2f}x")


def legacy_view() -> None:
    """Hide cgroup2 on a hybrid system, in a mount namespace of this process only."""
    if not cgroups.is_unified() and os.path.ismount(UNIFIED):
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        subprocess.run(["umount", UNIFIED], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=20)
    parser.add_argument("--baseline", default="", help="Another checkout of pyctr to time alongside.")
    parser.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    baseline = os.path.abspath(args.baseline) if args.baseline else ""
    if not shutil.which("runc"):
        print("bench: runc is not installed (apt-get install runc crun)", file=sys.stderr)
        return 1
    me = [PYTHON, os.path.abspath(__file__), "-n", str(args.rounds), "--baseline", baseline]
    if not os.path.isdir("/run/systemd/system"):
        with Sandbox() as sandbox:
            return sandbox.run(me).returncode
    if not args.in_namespace:
        return subprocess.run(["unshare", "--mount", *me, "--in-namespace"]).returncode
    legacy_view()
    measure(args.rounds, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
