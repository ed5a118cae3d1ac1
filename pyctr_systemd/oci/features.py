"""features: what this runtime supports, in the shape of runc's (runtime-spec features.md)."""

from __future__ import annotations

from pyctr_systemd import hooks, mounts, seccomp_profile, spec
from pyctr_systemd.oci.create import apparmor_enabled

# libseccomp 2.5.4's binding sets these (init.identity); it has no way to ask for the others.
SUPPORTED_SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
)


def features() -> dict[str, object]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": list(hooks.KINDS),
        "mountOptions": sorted(
            [*mounts.FLAG_NAMES, *mounts.PROPAGATION, "bind", "rbind"],
        ),
        "linux": {
            "namespaces": [n for n in spec.NAMESPACES if n not in spec.UNSUPPORTED_NAMESPACES],
            "capabilities": sorted(spec.CAPABILITY_NUMBERS),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False},
            "seccomp": _seccomp_features(),
            "apparmor": {"enabled": apparmor_enabled()},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "org.systemd.property.*": "a resource or accounting property of the container's unit"
        },
    }


def _seccomp_features() -> dict[str, object]:
    return {
        "enabled": True,
        "actions": sorted(seccomp_profile.ACTIONS),
        "operators": sorted(seccomp_profile.OPERATORS),
        "archs": sorted(seccomp_profile.ARCHITECTURES),
        "knownFlags": sorted(seccomp_profile.FLAGS),
        "supportedFlags": sorted(f for f in seccomp_profile.FLAGS if f in SUPPORTED_SECCOMP_FLAGS),
    }
