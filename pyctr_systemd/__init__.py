"""pyctr-systemd: a container runtime in which every container is a systemd unit."""

__version__ = "0.1.0"
