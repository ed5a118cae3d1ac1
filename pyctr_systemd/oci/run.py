"""run: create and start; in the foreground, wait, delete and return the payload's status."""

from __future__ import annotations

from pyctr_systemd import container, spec
from pyctr_systemd.host import HOST
from pyctr_systemd.oci.create import CreateOptions, create
from pyctr_systemd.oci.delete import delete
from pyctr_systemd.oci.start import start
from pyctr_systemd.state import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Host, Units


def run(
    store: Store, container_id: str, opts: CreateOptions, detach: bool, *, bus: Units | None = None,
    host: Host = HOST,
) -> int:  # fmt: skip
    if detach:
        create(store, container_id, opts, bus=bus, host=host)
        _start_or_delete(store, container_id, bus, host)
        return 0
    from pyctr_systemd import console

    config = spec.load(opts.bundle)
    own = config.process.terminal and not opts.console_socket
    with container.Forwarding() as forwarding, console.Server(own) as server:
        child, _ = create(store, container_id, opts, server.path, config, bus=bus, host=host)
        try:
            forwarding.to(child.pid)
            master = server.receive() if server.path else -1
        except BaseException:
            delete(store, container_id, force=True, bus=bus, host=host)
            raise
        _start_or_delete(store, container_id, bus, host)
        child.close()
        if master >= 0:
            console.proxy(master, forwarding.pidfd)
        status = container.wait(child, forwarding.pidfd)
    error = child.error()
    delete(store, container_id, force=True, bus=bus, host=host)
    if error is not None:
        raise error
    return container.exit_code(status)


def _start_or_delete(store: Store, container_id: str, bus: Units | None, host: Host) -> None:
    try:
        start(store, container_id)
    except BaseException:
        delete(store, container_id, force=True, bus=bus, host=host)
        raise
