"""Attacks on pyctr by a hostile image or payload: each test fails if the attack escapes.

Every test also checks that its attack really ran (the container started, the
attacker's code ran and saw what it needed), so none passes because nothing
happened. The attack programs are C, built once per session from
tests/integration/attacks. No host file is ever overwritten: where an attack
aims at pyctr's own binary, pyctr runs from a copy of the interpreter, and only
that copy can be marked.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli import CHECKOUT, pyctr
from tests.integration import attacks
from tests.integration.conftest import STATE_ROOT, WRAPPER, Bundle, systemctl
from tests.integration.test_oci_lifecycle import new_id, ok
from tests.mounts import mountpoints


@pytest.fixture(scope="session")
def bins(tmp_path_factory: pytest.TempPathFactory) -> attacks.Binaries:
    return attacks.build(tmp_path_factory.mktemp("attacks"))


def succeeded(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"pyctr {' '.join(done.args[3:])}: exit {done.returncode}: {done.stderr}"
    return done.stdout


# --- 1. CVE-2019-5736: the payload runs pyctr's interpreter and writes to it ------------------

# Run by the busybox shell with the O_PATH descriptor evil.so opened on /proc/self/exe.
# Reopening it for writing fails while a process still runs that binary (ETXTBSY): that
# error alone is worth retrying, for at most ~10 s.
ATTACK_SH = """#!/bin/sh
fd=$1
echo "target=$(readlink /proc/self/fd/$fd)" > /result.tmp
i=0
while [ $i -lt 100 ]; do
    if ( exec 3>>"/proc/self/fd/$fd" && echo "# marked from inside a container" >&3 ) 2>/attack.err; then
        echo escaped >> /result.tmp
        mv /result.tmp /result
        exit 0
    fi
    grep -q 'Text file busy' /attack.err || break
    i=$((i + 1))
    sleep 0.1
done
cat /attack.err >> /result.tmp
mv /result.tmp /result
"""
# The host's dynamic loader and libraries, so that the host's python3 can start inside.
HOST_LIBS = (("/lib64", "lib64"), ("/usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"))
# PID 1 of a pid namespace ignores SIGTERM unless it handles it.
LOOP = "trap 'exit 0' TERM; sleep 1000 & wait"


@pytest.fixture
def hostile(oci_bundle: Bundle, bins: attacks.Binaries) -> Iterator[Bundle]:
    """A busybox bundle made to run the host's python3 inside and turn it against its binary:
    /evil.sh is `#!/proc/self/exe`, /etc/ld.so.preload loads /evil.so into whatever runs it."""
    root = oci_bundle.rootfs
    (root / "lib").symlink_to("usr/lib")  # /lib64/ld-linux-x86-64.so.2 points into /lib
    (root / "etc/ld.so.preload").write_text("/evil.so\n")
    shutil.copy(bins.evil_so, root / "evil.so")
    (root / "attack.sh").write_text(ATTACK_SH)
    (root / "evil.sh").write_text("#!/proc/self/exe\n")
    (root / "evil.sh").chmod(0o755)
    # Bound on the host, not through config.json: pyctr's own `run -d ROOTFS` has no mount option.
    mounted = []
    try:
        for source, inside in HOST_LIBS:
            (root / inside).mkdir(parents=True)
            subprocess.run(["mount", "--bind", "-o", "ro", source, str(root / inside)], check=True)
            mounted.append(root / inside)
        yield oci_bundle
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", str(target)], check=True)


@contextmanager
def started(way: str, python: Path, bundle: Bundle, request: pytest.FixtureRequest) -> Iterator[None]:
    """A container of the hostile bundle whose payload is /evil.sh, started by pyctr run from
    `python`, in one of four ways; it is gone on leaving."""
    cid = new_id()
    if way == "create-start":  # pyctr exits after each verb
        bundle.write("/evil.sh")
        succeeded(attacks.pyctr_with(python, "create", "--bundle", str(bundle.path), cid))
        try:
            succeeded(attacks.pyctr_with(python, "start", cid))
            yield
        finally:
            pyctr("delete", "--force", cid)
    elif way == "run-detached":  # a transient service; pyctr's service-run exits after handing over
        try:
            succeeded(
                attacks.pyctr_with(python, "run", "-d", "--name", cid, str(bundle.rootfs), "--", "/evil.sh")
            )
            yield
        finally:
            pyctr("rm", "--force", cid)
    elif way == "defined-service":  # pyctr@NAME.service runs `pyctr service-start NAME`: the copy
        request.getfixturevalue("units")
        WRAPPER.write_text(f'#!/bin/sh\nPYTHONPATH={CHECKOUT} exec {python} -m pyctr_systemd "$@"\n')
        bundle.write("/evil.sh")
        succeeded(attacks.pyctr_with(python, "define", cid, str(bundle.path)))
        try:
            systemctl("start", f"pyctr@{cid}.service")
            yield
        finally:
            systemctl("stop", f"pyctr@{cid}.service", check=False)
    else:  # exec-detached, into a running container whose PID 1 is a shell loop
        bundle.write("sh", "-c", LOOP)
        succeeded(attacks.pyctr_with(python, "run", "-d", "--bundle", str(bundle.path), cid))
        try:
            succeeded(attacks.pyctr_with(python, "exec", "-d", cid, "/evil.sh"))
            yield
        finally:
            pyctr("delete", "--force", cid)


@pytest.mark.parametrize("way", ["create-start", "run-detached", "defined-service", "exec-detached"])
def test_payload_cannot_write_the_host_binary_that_launched_it(
    way: str, hostile: Bundle, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """CVE-2019-5736: /evil.sh, `#!/proc/self/exe`, makes the kernel run pyctr's launcher binary
    (the host's python3) inside the container; /evil.so, preloaded into it, keeps an O_PATH
    handle on that binary, and /attack.sh reopens it for writing through /proc/self/fd once
    no process runs it any more, to append a line."""
    python = attacks.copy_interpreter(tmp_path)
    before = attacks.sha256(python)
    with started(way, python, hostile, request):
        result = attacks.wait_for_file(hostile.rootfs / "result", 30, "the attack's result")
    lines = result.splitlines()
    assert attacks.sha256(python) == before and "escaped" not in lines, (
        f"the container wrote to the interpreter pyctr ran from ({python}); the attack says: {result!r}"
    )
    # It ran: evil.so had a handle on the binary that ran /evil.sh (the launcher's, whatever
    # pyctr makes it), and attack.sh tried to write to it and says why it could not.
    assert len(lines) >= 2 and lines[0].startswith("target=/") and lines[-1].strip(), result


# --- 2. exec into a container that holds CAP_SYS_PTRACE ---------------------------------------

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # runc's default spec
EXECS = 30  # today the first one is enough


def test_exec_shows_no_host_root_to_a_ptracing_container(
    oci_bundle: Bundle, bins: attacks.Binaries, tmp_path: Path
) -> None:
    """A container with CAP_SYS_PTRACE runs, as its PID 1, a spy that opens
    /proc/PID/root/<a host file> for every other process it sees, while `pyctr exec`
    runs commands in it: a process of pyctr's that is already in the container's pid
    namespace but not yet in its mount namespace would lead the spy to the host's root."""
    secret = f"host only {os.urandom(8).hex()}"
    marker = tmp_path / "host-marker"
    marker.write_text(secret)
    root = oci_bundle.rootfs
    shutil.copy(bins.procspy, root / "procspy")
    caps = [*DEFAULT_CAPS, "CAP_SYS_PTRACE"]
    oci_bundle.process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    oci_bundle.write("/procspy", str(marker), "/result", "/stop", "60")
    cid, execs = new_id(), 0
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        deadline = time.monotonic() + 60  # only for a machine far slower than ours
        # The spy reports and ends at once when it reads the marker (an exec then fails:
        # the container is gone); else it stops when told to.
        while execs < EXECS and time.monotonic() < deadline and not (root / "result").exists():
            pyctr("exec", cid, "sleep", "0.05")  # lives long enough for the spy to see it
            execs += 1
        (root / "stop").touch()
        result = attacks.wait_for_file(root / "result", 10, "the spy's report")
    finally:
        pyctr("delete", "--force", cid)
    lines = result.splitlines()
    seen = int(lines[0].removeprefix("seen "))
    assert lines[1] == "read 0" and secret not in result, (
        f"after {execs} execs the container read a host file through /proc/PID/root of a pyctr "
        f"process: {result!r}"
    )
    assert execs == EXECS and seen > 0, f"the spy saw {seen} processes of {execs} execs: {result!r}"


# --- 4. masking with the image's own /dev/null -------------------------------------------------

# For each masked path that exists: a file must be the null device, a directory an empty tmpfs.
# Nothing here writes: /dev/null may lead to a /proc/sys file.
SHOW_MASKS = """for p in "$@"; do
    if [ -d "$p" ]; then echo "$p|dir $(stat -f -c %T "$p") $(ls -A "$p" | wc -l)"
    elif [ -e "$p" ]; then echo "$p|file $(stat -c '%F %t:%T' "$p")|$(head -c 40 "$p" | tr '\\n' ' ')"
    fi
done"""


@pytest.mark.parametrize("null", ["symlink-to-proc-sys", "regular-file"])
def test_masked_paths_get_the_null_device_not_the_images(oci_bundle: Bundle, null: str) -> None:
    """An image whose /dev/null is a symlink to /proc/sys/kernel/ostype (or a plain file), run
    without a /dev tmpfs: masking a file with "the rootfs's /dev/null" would bind that procfs
    file (or the image's file) over /proc/keys and the other masked paths."""
    root = oci_bundle.rootfs
    if null == "regular-file":
        (root / "dev/null").write_text("the image's own file\n")
    else:
        (root / "dev/null").symlink_to("/proc/sys/kernel/ostype")
    (root / "secret-file").write_text("hidden\n")
    (root / "secret-dir").mkdir()
    (root / "secret-dir/inside").write_text("hidden\n")
    oci_bundle.config["mounts"] = [
        m for m in oci_bundle.config["mounts"] if not m["destination"].startswith("/dev")
    ]
    masked = [*oci_bundle.linux["maskedPaths"], "/secret-file", "/secret-dir"]
    oci_bundle.linux["maskedPaths"] = masked
    oci_bundle.write("sh", "-c", SHOW_MASKS, "sh", *masked)
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode == 0, done.stderr
    # path -> [what it is, what reading it gives]
    shown = {line.split("|")[0]: line.split("|")[1:] for line in done.stdout.splitlines()}
    assert {"/secret-file", "/secret-dir"} <= shown.keys(), done.stdout  # both kinds were checked
    wanted = {"dir": ["dir tmpfs 0"], "file": ["file character special file 1:3", ""]}
    wrong = {path: what for path, what in shown.items() if what != wanted[what[0].split()[0]]}
    assert wrong == {}, f"masked paths that are not masked by the null device or an empty tmpfs: {wrong}"


# --- 5. a mount target swapped for a symlink (CVE-2021-30465) ----------------------------------

RACED_MOUNTS = 8  # tmpfs mounts of B below the flipping entry: a chance each per create
CREATES = 30  # today 1 to 6 are enough (10 runs here)


def test_mount_target_swapped_for_a_symlink_stays_in_the_rootfs(
    oci_bundle: Bundle, bins: attacks.Binaries, tmp_path: Path
) -> None:
    """Container A shares a host directory V with container B at /vol and swaps, as fast as it
    can, V/x (a directory) with V/y (a symlink to a host directory T). B mounts tmpfs at
    /vol/x/s0...: a target that pyctr checked while it was the directory but uses once it is
    the symlink would make pyctr create and mount on the host, in T. B is created and deleted
    again and again while A flips."""
    volume, target = tmp_path / "volume", tmp_path / "target"
    (volume / "x").mkdir(parents=True)
    (volume / "y").symlink_to(target)
    target.mkdir()
    bind_volume = {"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind"]}
    flipper = oci_bundle
    shutil.copy(bins.flipper, flipper.rootfs / "flipper")
    flipper.config["mounts"].append(bind_volume)
    flipper.write("/flipper", "/vol", "x", "y", "/flips", "/stop", "60")
    victim = Bundle(tmp_path / "victim")
    victim.config["mounts"] += [bind_volume] + [
        {"destination": f"/vol/x/s{i}", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}
        for i in range(RACED_MOUNTS)
    ]
    victim.write("true")
    host_mounts = mountpoints()
    attacker, creates, created, pid_file = new_id(), 0, 0, tmp_path / "victim.pid"
    lost: dict[str, int] = {}  # created B -> how many of its tmpfs mounts are not in its root
    ok("run", "-d", "--bundle", str(flipper.path), attacker)
    try:
        deadline = time.monotonic() + 60  # only for a machine far slower than ours
        while creates < CREATES and time.monotonic() < deadline and not any(target.iterdir()):
            cid = new_id()
            creates += 1
            done = pyctr("create", "--bundle", str(victim.path), "--pid-file", str(pid_file), cid)
            if done.returncode == 0:  # it may fail, when the entry flips under pyctr: no matter
                created += 1
                mountinfo = Path(f"/proc/{pid_file.read_text()}/mountinfo").read_text()
                if mountinfo.count("size=64k") != RACED_MOUNTS:
                    lost[cid] = RACED_MOUNTS - mountinfo.count("size=64k")
            pyctr("delete", "--force", cid)
        (flipper.rootfs / "stop").touch()
        flips = attacks.wait_for_file(flipper.rootfs / "flips", 10, "the flipper's count")
    finally:
        pyctr("delete", "--force", attacker)
    escaped = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert escaped == [], f"after {creates} creates of B, pyctr made {escaped} in the host's {target}"
    new_mounts = {m for m in mountpoints() - host_mounts if m.startswith(str(target))}
    assert new_mounts == set(), f"pyctr mounted on the host: {new_mounts}"
    assert lost == {}, f"B's tmpfs mounts that did not end up in its root, of {created} created: {lost}"
    assert int(flips.split()[1]) > 0, f"A never flipped: {flips!r}"
    assert creates == CREATES, f"only {creates} creates of B within a minute"


# --- 6. the session keyring --------------------------------------------------------------------

KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 250, 0, -3  # x86_64


def own_session_keyring() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    serial = libc.syscall(KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    assert serial > 0, os.strerror(ctypes.get_errno())
    return int(serial)


@pytest.fixture
def probe_bundle(oci_bundle: Bundle, bins: attacks.Binaries) -> Bundle:
    """A bundle with /probe, and no seccomp profile: a default one denies keyctl."""
    shutil.copy(bins.probe, oci_bundle.rootfs / "probe")
    oci_bundle.linux.pop("seccomp", None)
    return oci_bundle


def test_each_container_gets_a_session_keyring_of_its_own(probe_bundle: Bundle) -> None:
    """Keys are not namespaced: a container that shares its caller's session keyring can
    read, link and add keys of the host's session, and of every other container."""
    probe_bundle.write("/probe", "keyring")
    found = {}
    for _ in range(2):
        cid = new_id()
        serial, description = ok("run", "--bundle", str(probe_bundle.path), cid).strip().split(" ", 1)
        found[cid] = (int(serial), description)
    serials = {serial for serial, _ in found.values()}
    mine = own_session_keyring()
    assert len(serials) == 2 and mine not in serials, (
        f"containers share a session keyring (the caller's is {mine}): {found}"
    )
    wrong = {cid: d for cid, (_, d) in found.items() if not d.endswith(f"_ses.{cid}")}
    assert wrong == {}, f"session keyrings not named _ses.ID: {wrong}"


def test_no_new_keyring_keeps_the_callers(probe_bundle: Bundle) -> None:
    """runc's --no-new-keyring: the container stays in its caller's session keyring."""
    probe_bundle.write("sh", "-c", "/probe keyring > /keyring.tmp && mv /keyring.tmp /keyring")
    cid = new_id()
    ok("create", "--no-new-keyring", "--bundle", str(probe_bundle.path), cid)
    try:
        ok("start", cid)
        out = attacks.wait_for_file(probe_bundle.rootfs / "keyring", 10, "the probe's keyring")
    finally:
        pyctr("delete", "--force", cid)
    assert int(out.split()[0]) == own_session_keyring(), out


# --- 7. seccomp ----------------------------------------------------------------------------------

UNSHARE_USER = "/probe syscall 272 0x10000000"  # unshare(CLONE_NEWUSER)
KEYRING = "/probe syscall 250 0 -3 0"  # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING)
GETPPID_DENIED = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}],
}


@pytest.fixture
def probe_root(marked_rootfs: tuple[str, str], bins: attacks.Binaries) -> str:
    root, _ = marked_rootfs
    shutil.copy(bins.probe, Path(root, "probe"))
    return root


def probes(root: str, *options: str, script: str) -> list[str]:
    """The lines `pyctr run [OPTIONS] ROOT -- sh -c SCRIPT` prints."""
    done = pyctr("run", *options, root, "--", "/bin/sh", "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_run_has_a_default_seccomp_profile(probe_root: str) -> None:
    """Without a filter a root payload can make a user namespace (every capability inside it,
    and the kernel's attack surface that comes with them) and reach the host's keyrings."""
    out = probes(probe_root, script=f"/probe status; {UNSHARE_USER}; {KEYRING}")
    assert out == ["Seccomp:\t2", "errno 1", "errno 1"]


def test_seccomp_unconfined_has_no_filter(probe_root: str) -> None:
    """--security-opt seccomp=unconfined: no filter at all, as docker's option says."""
    out = probes(probe_root, "--security-opt", "seccomp=unconfined", script=f"/probe status; {UNSHARE_USER}")
    assert out == ["Seccomp:\t0", "ok 0"]


def test_seccomp_profile_file(probe_root: str, tmp_path: Path) -> None:
    """--security-opt seccomp=FILE: an OCI-form profile, enforced rule by rule."""
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(GETPPID_DENIED))
    out = probes(
        probe_root, "--security-opt", f"seccomp={profile}", script="/probe syscall 110; /probe syscall 102"
    )
    assert out == ["errno 122", "ok 0"]  # getppid denied, getuid not


def test_seccomp_profile_with_an_argument_rule(probe_root: str, tmp_path: Path) -> None:
    """A rule on a system call's argument denies that call with that argument only."""
    rule = {
        "names": ["personality"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": 33,
        "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
    }
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}))
    out = probes(
        probe_root,
        "--security-opt",
        f"seccomp={profile}",
        script="/probe syscall 135 8; /probe syscall 135 0",
    )
    assert out == ["errno 33", "ok 0"]


def test_bundle_seccomp_applies_to_the_process_and_to_exec(probe_bundle: Bundle) -> None:
    """config.json's linux.seccomp binds the container's process and whatever `exec` adds:
    a filter that exec did not apply would be a way around it."""
    probe_bundle.linux["seccomp"] = GETPPID_DENIED
    probe_bundle.write("sh", "-c", f"/probe syscall 110 > /own.tmp && mv /own.tmp /own; {LOOP}")
    cid = new_id()
    ok("run", "-d", "--bundle", str(probe_bundle.path), cid)
    try:
        own = attacks.wait_for_file(probe_bundle.rootfs / "own", 10, "the container's probe")
        execd = pyctr("exec", cid, "/probe", "syscall", "110")
    finally:
        pyctr("delete", "--force", cid)
    assert (own, execd.stdout) == ("errno 122\n", "errno 122\n"), (
        f"getppid in the container: {own!r}, in exec: {execd.stdout!r} {execd.stderr}"
    )


def test_a_notify_profile_is_refused_leaving_nothing(probe_bundle: Bundle) -> None:
    """SCMP_ACT_NOTIFY needs a listener pyctr does not have: refused at create, not ignored."""
    probe_bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
    }
    probe_bundle.write("true")
    cid = new_id()
    done = pyctr("create", "--bundle", str(probe_bundle.path), cid)
    if done.returncode == 0:
        pyctr("delete", "--force", cid)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 125 and len(lines) == 1 and "SCMP_ACT_NOTIFY" in lines[0], (
        f"exit {done.returncode}: {done.stderr!r}"
    )
    assert not (STATE_ROOT / cid).exists()


def test_spec_writes_a_default_seccomp_profile(tmp_path: Path) -> None:
    """A bundle made by `pyctr spec` is filtered unless its author says otherwise: deny by default."""
    ok("spec", "--bundle", str(tmp_path))
    linux = json.loads((tmp_path / "config.json").read_text())["linux"]
    assert linux.get("seccomp", {}).get("defaultAction") == "SCMP_ACT_ERRNO", linux.get("seccomp")


def test_a_defined_container_honours_its_seccomp_option(units: None, probe_root: str) -> None:
    """A definition runs what `pyctr run` would: the default filter, or none if unconfined."""
    found: dict[str, str] = {}
    cases: list[tuple[str, list[str]]] = [
        ("sc-default", []),
        ("sc-unconfined", ["--security-opt", "seccomp=unconfined"]),
    ]
    for name, options in cases:
        report = f"/probe status > /{name}.tmp && mv /{name}.tmp /{name}"
        ok("define", name, *options, probe_root, "--", "/bin/sh", "-c", f"{report}; {LOOP}")
        systemctl("start", f"pyctr@{name}.service")
        try:
            found[name] = attacks.wait_for_file(Path(probe_root, name), 10, f"{name}'s probe").strip()
        finally:
            systemctl("stop", f"pyctr@{name}.service")
    assert found == {"sc-default": "Seccomp:\t2", "sc-unconfined": "Seccomp:\t0"}
