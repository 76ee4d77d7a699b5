"""Free TCP ports for local servers, never handed to two live processes at once.

A port is free when the kernel hands it out, but it stays free only until someone binds it;
a stack's services bind theirs seconds later, once started. Two processes choosing ports in
that window (two test workers each starting a stack, a soak beside the suite) could be handed
the same one, and one stack's health check then reached the other's service. So every choice
is also claimed, machine-wide: the choosing process holds an exclusive `flock` on a file named
for the port, and a port whose file another process holds locked is passed over. The kernel
drops a process's locks when it ends, so a claim never outlives its process.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path

_CLAIMS = Path(tempfile.gettempdir()) / "amclocal-ports"
# Claims this process holds, oldest first: port -> the open file its lock is on. The oldest
# are let go past this many; their servers have long bound them (or are gone).
_HELD: OrderedDict[int, int] = OrderedDict()
_MOST_HELD = 256


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int, avoid: Collection[int] = ()) -> list[int]:
    """`count` distinct ports free now, none of them in `avoid` or chosen by another live
    process. The sockets stay bound until all are chosen: one at a time, the kernel may hand
    the same port out twice, and two processes of one stack then race for it."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            if port not in avoid and _claim(port):
                ports.append(port)
        return ports
    finally:
        for sock in socks:
            sock.close()


def _claim(port: int) -> bool:
    """Claim `port` for this process; False when another live process holds it."""
    if port in _HELD:
        _HELD.move_to_end(port)
        return True
    _CLAIMS.mkdir(exist_ok=True)
    fd = os.open(_CLAIMS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _HELD[port] = fd
    while len(_HELD) > _MOST_HELD:
        _, oldest = _HELD.popitem(last=False)
        os.close(oldest)
    return True
