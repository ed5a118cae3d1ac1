"""The container's first process: the security boundary between a container and the host.

pyctr forks it, and it at once replaces itself with a sealed copy of the
interpreter (seal), so no process in reach of the container ever runs, or can
be made to run, the host's python3 file. It then makes or joins the
container's namespaces, builds the root through file descriptors (rootfs),
takes the container's identity (identity) and execs the payload, paced by its
parent through one handshake (sync). What it is to make is a LaunchSpec
(launch); main holds the order of the steps. Its seccomp filter comes compiled
from pyctr's side of the handshake (bpf, libseccomp's binding).

Stdlib only: this is the start path of every container (tests/unit/test_start_path.py).
"""
