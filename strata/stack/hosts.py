"""Several hosts on one machine: Linux network namespaces joined by a bridge.

Each host of a multi-host stack is a network namespace with one address on a private
bridge; the machine itself has the bridge's first address, so ``strata up``, the tests
and a browser reach every host, and no traffic goes anywhere else. A partition is the
host's link set down (``tc netem`` is missing on these machines; latency would need a
proxy). Everything made here is removed by :meth:`HostNetwork.remove`, which is safe to
call after a partial ``create``.

Without root or ``ip netns``, :class:`LoopbackHosts` gives each host its own loopback
address (127.0.0.2, 127.0.0.3, ...): the same topology, every program on its own
address, but no partitions.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass

from .errors import StackError

__all__ = [
    "Host",
    "HostNetwork",
    "LoopbackHosts",
    "namespaces_available",
    "enter_namespace",
    "make_hosts",
    "remove_network",
]

log = logging.getLogger("strata.stack")

_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class Host:
    """One host of the topology: its name, its address, and its namespace (or None)."""

    name: str
    address: str
    netns: str | None = None


def namespaces_available() -> tuple[bool, str]:
    """Whether this process can make network namespaces, and why not."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if shutil.which("ip") is None:
        return False, "the ip command (iproute2) is not installed"
    probe = f"strata-probe-{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return False, f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return True, ""


def enter_namespace(netns: str) -> None:
    """Move the calling process into network namespace ``netns`` (a ``preexec_fn``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({netns}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise StackError("network", f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no interface of this machine uses."""
    used = [
        ipaddress.IPv4Interface(word).network
        for line in _ip("-4", "-o", "addr", "show").stdout.splitlines()
        for before, word in zip(line.split(), line.split()[1:], strict=False)
        if before == "inet"
    ]
    for _ in range(200):
        subnet = ipaddress.IPv4Network(f"10.213.{secrets.randbelow(250) + 1}.0/24")
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise StackError("network", "no free /24 in 10.213.0.0/16 for the hosts' bridge")


class HostNetwork:
    """Namespaces on a bridge: ``create`` makes them, ``remove`` deletes everything."""

    def __init__(self, names: list[str], subnet: str | None = None):
        self.tag = secrets.token_hex(2)
        self.subnet = ipaddress.IPv4Network(subnet) if subnet else _free_subnet()
        addresses = list(self.subnet.hosts())
        self.gateway = str(addresses[0])
        self.bridge = f"sb-{self.tag}"
        self._namespaces = {name: f"strata-{self.tag}-{name}" for name in names}
        self.hosts = {
            name: Host(name, str(addresses[10 + i]), self._namespaces[name])
            for i, name in enumerate(names)
        }
        self._veths = {name: f"sv-{self.tag}-{i}" for i, name in enumerate(names)}
        self.created = False

    @property
    def cidr(self) -> str:
        """The hosts' subnet, for allow-lists (PostgreSQL's pg_hba, Varnish's purge ACL)."""
        return str(self.subnet)

    def create(self) -> None:
        """Make the bridge, one namespace per host, and link each to the bridge."""
        self.created = True
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for name, host in self.hosts.items():
                veth, netns = self._veths[name], self._namespaces[name]
                _ip("netns", "add", netns)
                _ip("-n", netns, "link", "set", "lo", "up")
                _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
                _ip("link", "set", f"{veth}p", "netns", netns)
                _ip("-n", netns, "link", "set", f"{veth}p", "name", "eth0")
                _ip(
                    "-n", netns, "addr", "add",
                    f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0",
                )  # fmt: skip
                _ip("-n", netns, "link", "set", "eth0", "up")
                _ip("link", "set", veth, "master", self.bridge)
                _ip("link", "set", veth, "up")
        except BaseException:
            self.remove()
            raise

    def partition(self, name: str) -> None:
        """Cut ``name`` off the network (its link down): packets to and from it are lost."""
        _ip("link", "set", self._veths[name], "down")

    def heal(self, name: str) -> None:
        """Put ``name`` back on the network."""
        _ip("link", "set", self._veths[name], "up")

    def describe(self) -> dict:
        """What exists, for ``state.json`` (``strata down`` removes it if ``up`` was killed)."""
        return {
            "bridge": self.bridge,
            "namespaces": list(self._namespaces.values()),
            "links": list(self._veths.values()),
            "subnet": self.cidr,
        }

    def remove(self) -> None:
        """Delete the namespaces, their links and the bridge (whatever exists of them)."""
        if self.created:
            remove_network(self.describe())
            self.created = False


def remove_network(described: dict) -> None:
    """Delete what :meth:`HostNetwork.describe` lists (names missing already are skipped)."""
    for netns in described.get("namespaces", []):
        if str(netns).startswith("strata-"):
            _ip("netns", "del", netns, check=False)
    for link in [*described.get("links", []), described.get("bridge", "")]:
        if str(link).startswith(("sv-", "sb-")):
            _ip("link", "del", link, check=False)


class LoopbackHosts:
    """The fallback without namespaces: one loopback address per host, no partitions."""

    def __init__(self, names: list[str], first: int = 2):
        self.hosts = {name: Host(name, f"127.0.0.{first + i}") for i, name in enumerate(names)}
        self.gateway = "127.0.0.1"
        self.cidr = "127.0.0.0/8"
        self.created = False

    def create(self) -> None:
        """Nothing to make: Linux routes all of 127.0.0.0/8 to the loopback interface."""
        self.created = True

    def partition(self, name: str) -> None:
        """Not possible on loopback addresses."""
        raise StackError("network", "partitions need network namespaces (run as root)")

    heal = partition

    def describe(self) -> dict:
        """The addresses in use (nothing to remove)."""
        return {"loopback": [h.address for h in self.hosts.values()]}

    def remove(self) -> None:
        """Nothing to remove."""
        self.created = False


def make_hosts(names: list[str], namespaces: bool | None = None) -> HostNetwork | LoopbackHosts:
    """Namespaces when this process can make them (or ``namespaces=True``), else loopback."""
    if namespaces is None:
        namespaces, reason = namespaces_available()
        if not namespaces:
            log.warning("strata: %s; the hosts share loopback addresses instead", reason)
    if namespaces:
        return HostNetwork(names)
    return LoopbackHosts(names)
