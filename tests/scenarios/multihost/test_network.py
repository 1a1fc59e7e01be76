"""The hosts' network: namespaces on a bridge, partitions, and nothing left behind."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from strata.stack.errors import StackError
from strata.stack.hosts import HostNetwork, LoopbackHosts, remove_network
from tests.scenarios.multihost.helpers import require_namespaces


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def link_state(name: str) -> str:
    return "UP" if ",UP" in ip("-o", "link", "show", name) else "DOWN"


def test_hosts_are_namespaces_on_one_bridge_and_are_removed_afterwards():
    require_namespaces()
    network = HostNetwork(["a", "b"])
    try:
        network.create()
        namespaces = ip("netns", "list")
        inside = ip("-n", network.hosts["b"].netns, "-4", "-o", "addr", "show", "eth0")

        assert network.hosts["a"].netns in namespaces and network.hosts["b"].netns in namespaces
        assert network.hosts["b"].address in inside
        assert network.gateway in ip("-4", "-o", "addr", "show", network.bridge)
    finally:
        network.remove()

    assert network.hosts["a"].netns not in ip("netns", "list")
    assert network.bridge not in ip("-o", "link")


def test_a_partition_sets_the_hosts_link_down_until_it_is_healed():
    require_namespaces()
    network = HostNetwork(["a"])
    veth = network.describe()["links"][0]
    try:
        network.create()
        network.partition("a")
        cut = link_state(veth)
        network.heal("a")
        healed = link_state(veth)
    finally:
        network.remove()

    assert (cut, healed) == ("DOWN", "UP")


def test_what_a_killed_strata_up_left_is_removed_from_its_description():
    require_namespaces()
    network = HostNetwork(["a", "b"])
    network.create()
    described = network.describe()

    remove_network(described)

    assert not any(ns in ip("netns", "list") for ns in described["namespaces"])
    assert described["bridge"] not in ip("-o", "link")


def test_a_description_naming_something_else_removes_nothing():
    require_namespaces()
    other = f"not-strata-{uuid.uuid4().hex[:6]}"
    ip("netns", "add", other)
    try:
        remove_network({"namespaces": [other], "links": [], "bridge": ""})
        left = ip("netns", "list")
    finally:
        ip("netns", "del", other)

    assert other in left


def test_without_namespaces_each_host_gets_a_loopback_address_and_no_partitions():
    hosts = LoopbackHosts(["db1", "app1", "app2"])

    assert [h.address for h in hosts.hosts.values()] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert all(h.netns is None for h in hosts.hosts.values())
    with pytest.raises(StackError, match="network namespaces"):
        hosts.partition("app1")
