"""pyctr_systemd.init.bpf: profiles compiled by libseccomp, as the launcher will load them."""

from __future__ import annotations

import os

import pytest

from pyctr_systemd.init import bpf
from pyctr_systemd.seccomp_profile import SyscallFilter, SyscallRule

pytest.importorskip("seccomp")  # python3-seccomp: tools/install-deps installs it
pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86 and its compat architectures")


def compiled(*rules: SyscallRule, flags: tuple[str, ...] = ()) -> tuple[bytes, int]:
    arches = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")
    return bpf.compile(SyscallFilter("SCMP_ACT_ALLOW", None, arches, flags, rules))


def test_a_rule_for_a_call_of_the_compat_architecture_is_kept() -> None:
    # socketcall exists on i386 only: libseccomp gives it a negative number on x86_64,
    # and must still place it in the filter's i386 part.
    empty, _ = compiled()
    program, _ = compiled(SyscallRule(("socketcall",), "SCMP_ACT_ERRNO", 1))
    assert len(program) > len(empty)


def test_a_name_libseccomp_does_not_know_is_skipped() -> None:
    empty, _ = compiled()
    assert compiled(SyscallRule(("no_such_call",), "SCMP_ACT_ERRNO", 1))[0] == empty


def test_flags_become_seccomps() -> None:
    _, flags = compiled(
        flags=("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
    )
    assert flags == 1 | 2 | 4
