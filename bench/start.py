#!/usr/bin/python3
"""Container start+exit time: pyctr run vs runc --systemd-cgroup run vs the floor.

Each round runs every contender once, in a new random order: drift in the
machine hits all alike, and no contender always follows the same one (a cgroup
migration right after another's is cheaper: the kernel's RCU sync is still
warm). Prints medians, deciles and ratios to runc; asserts nothing.

    sudo /usr/bin/python3 bench/start.py [-n ROUNDS] [--baseline CHECKOUT]

--baseline adds the entry script of another checkout of pyctr (an earlier
commit, say: git worktree add ../base COMMIT), so a change's cost is
measured in the same run as everything else. Where PID 1 is not systemd it
re-runs itself inside the project's sandbox.
"""

from __future__ import annotations

import argparse
import json
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

from pyctr_systemd import rootfs  # noqa: E402
from tests.sandbox.boot import Sandbox  # noqa: E402

PYTHON = "/usr/bin/python3"


def runc_bundle(root: str, workdir: str) -> str:
    """A bundle of runc's own defaults (`runc spec`) running /bin/true on `root`."""
    bundle = os.path.join(workdir, "bundle")
    os.mkdir(bundle)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["root"] = {"path": root, "readonly": True}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def entry_script(workdir: str, checkout: str = CHECKOUT, name: str = "pyctr") -> str:
    """The command as the package installs it (tools/pyctr: -I -S, no runpy), on a checkout."""
    path = os.path.join(workdir, name)
    with open(os.path.join(checkout, "tools", "pyctr")) as f:
        script = f.read()
    with open(path, "w") as f:
        f.write(script.replace("import sys\n", f"import sys\n\nsys.path.insert(0, {checkout!r})\n", 1))
    os.chmod(path, 0o755)
    return path


def contenders(root: str, bundle: str, pyctr: str, baseline: str) -> dict[str, list[str]]:
    found = {
        # The default rootfs, as a user gets it: with its throwaway write layer.
        "pyctr run (python3 -m)": [PYTHON, "-m", "pyctr_systemd", "run", "--", "/bin/true"],
        "pyctr run (entry script)": [pyctr, "run", "--", "/bin/true"],
        # What the default seccomp profile costs (libseccomp compiles it each time).
        "pyctr run, seccomp=unconfined": [
            pyctr,
            "run",
            "--security-opt",
            "seccomp=unconfined",
            "--",
            "/bin/true",
        ],
        "runc --systemd-cgroup run": ["runc", "--systemd-cgroup", "run", "--bundle", bundle, "bench"],
        "runc run (cgroupfs)": ["runc", "run", "--bundle", bundle, "bench"],
        "systemd-run --scope": ["systemd-run", "--quiet", "--scope", "--slice=pyctr.slice", "/bin/true"],
        "floor: unshare+chroot": [
            "unshare",
            "-fmuipn",
            f"--mount-proc={root}/proc",
            "chroot",
            root,
            "/bin/true",
        ],
        "python3 -c pass": [PYTHON, "-c", "pass"],
    }
    if baseline:
        found["pyctr run (baseline script)"] = [baseline, "run", "--", "/bin/true"]
    return found


def measure(rounds: int, baseline: str) -> None:
    root = rootfs.default()
    with tempfile.TemporaryDirectory() as workdir:
        before = entry_script(workdir, baseline, "pyctr-baseline") if baseline else ""
        runs = contenders(root, runc_bundle(root, workdir), entry_script(workdir), before)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, argv in random.sample(list(runs.items()), len(runs)):
                start = time.perf_counter()
                subprocess.run(argv, check=True, cwd=CHECKOUT, stdin=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["runc --systemd-cgroup run"])
    print(f"{rounds} rounds, ms{'median':>24}  {'p10':>6}  {'p90':>6}  median vs runc --systemd-cgroup")
    for name, samples in times.items():
        deciles = statistics.quantiles(samples, n=10)
        median = statistics.median(samples)
        print(
            f"{name:>30}  {median * 1000:6.1f}  {deciles[0] * 1000:6.1f}  {deciles[-1] * 1000:6.1f}  "
            f"{median / base:5.2f}x"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=30)
    parser.add_argument("--baseline", default="", help="Another checkout of pyctr to time alongside.")
    args = parser.parse_args()
    baseline = os.path.abspath(args.baseline) if args.baseline else ""
    if not os.path.isdir("/run/systemd/system"):
        if not shutil.which("runc"):
            print("bench: runc is not installed (apt-get install runc)", file=sys.stderr)
            return 1
        with Sandbox() as sandbox:
            argv = [PYTHON, os.path.abspath(__file__), "-n", str(args.rounds), "--baseline", baseline]
            return sandbox.run(argv).returncode
    measure(args.rounds, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
