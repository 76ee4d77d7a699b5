"""A port one live process chose is never handed to another (amclocal/ports.py), and the
choice lapses with the process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from amclocal.ports import _claim, free_ports

LOCAL = Path(__file__).resolve().parents[3] / "deploy" / "local"

_CHOOSER = """
import sys
sys.path.insert(0, sys.argv[1])
from amclocal.ports import free_ports
print(*free_ports(20), flush=True)
sys.stdin.read()
"""


def test_ports_another_live_process_chose_are_passed_over_until_it_ends() -> None:
    chooser = subprocess.Popen(
        [sys.executable, "-c", _CHOOSER, str(LOCAL)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert chooser.stdout is not None
    assert chooser.stdin is not None
    try:
        theirs = [int(port) for port in chooser.stdout.readline().split()]
        assert len(set(theirs)) == 20
        assert [_claim(port) for port in theirs] == [False] * 20
        assert not set(theirs) & set(free_ports(200))
    finally:
        chooser.stdin.close()
        chooser.wait(timeout=10)
    assert [_claim(port) for port in theirs] == [True] * 20


def test_a_process_may_choose_its_own_port_again() -> None:
    [port] = free_ports(1)
    assert _claim(port)
