"""The OCI runtime: runc's verbs on containers that are systemd scopes, one verb per module.

create makes the container up to the exec of its payload (the launcher then
waits on ROOT/ID/exec.fifo) and returns; start opens the fifo; the payload's
process stays a child of whoever called create (podman's conmon is a
subreaper), as runc's does. Limits, signals to all processes, freezing and
live updates go through systemd; state lives under --root (pyctr_systemd.state);
which verb acts in which status is oci.lifecycle's table. Each verb takes
systemd (effects.Units) and the host (effects.Host) as arguments, the real
ones by default.
"""
