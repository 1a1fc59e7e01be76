"""An inventory with a mistake is refused with file:line, the key, what is wrong and what is expected."""

from __future__ import annotations

import pytest

from strata.config import InventoryError, parse_inventory
from tests.config.helpers import ONE_HOST, example, example_text


def problems(text: str) -> list[str]:
    """The lines of the error for ``text`` (it must be refused)."""
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, source="inv.toml")
    return str(caught.value).splitlines()


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line number of the ``occurrence``-th line containing ``needle``."""
    found = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return found[occurrence - 1]


def test_the_example_inventory_is_valid_and_keeps_every_host():
    inventory = example()
    assert len(inventory.load_balancers) == 2
    assert len(inventory.accelerators) == 3
    assert len(inventory.app_servers) == 4
    assert [c.role for c in inventory.caches] == ["primary", "replica"]
    assert len(inventory.sentinel.hosts) == 3
    assert len(inventory.database.replicas) == 1
    assert inventory.pooler.kind == "pgbouncer"
    assert inventory.traffic.balance == "uri-consistent"


def test_defaults_fill_in_what_a_one_host_inventory_leaves_out():
    inventory = parse_inventory(ONE_HOST)
    assert inventory.traffic.balance == "roundrobin"
    assert inventory.traffic.app_pool == "haproxy"
    assert inventory.traffic.proxy_protocol is False
    assert inventory.site.wsgi_app == "newsroom_site.wsgi:application"
    assert inventory.site.allowed_hosts == inventory.site.server_names
    assert inventory.site.tls is None
    assert [a.kind for a in inventory.app_servers] == ["uwsgi"] * 3
    assert inventory.accelerators[0].purge_url == "http://127.0.0.1:20080"


def test_a_bad_role_names_the_line_and_the_roles_there_are():
    text = example_text().replace('role = "replica"', 'role = "leader"')
    [message] = problems(text)
    assert message == (
        f"inv.toml:{line_of(text, 'leader')}: cache[2].role: "
        '\'leader\' (a string) is wrong; expected "primary" or "replica"'
    )


def test_a_bad_app_server_kind_is_refused():
    text = example_text().replace('kind = "gunicorn"', 'kind = "mod_wsgi"')
    [message] = problems(text)
    assert f"inv.toml:{line_of(text, 'mod_wsgi')}: app_server[4].kind: 'mod_wsgi'" in message
    assert 'expected "gunicorn" or "uwsgi"' in message


def test_two_services_on_one_host_and_port_are_refused():
    text = ONE_HOST.replace("port = 20102", "port = 20101")
    [message] = problems(text)
    second = line_of(text, "port = 20101", occurrence=2)
    assert message == (
        f"inv.toml:{second}: app_server[2].port: 127.0.0.1:20101 is already taken by app1"
    )


def test_a_port_taken_by_another_role_names_that_role():
    text = ONE_HOST.replace("port = 20379", "port = 20080")
    [message] = problems(text)
    assert message.endswith("cache[1].port: 127.0.0.1:20080 is already taken by varnish1")


def test_an_inventory_without_a_database_says_what_is_missing():
    text = ONE_HOST.split("[database]")[0]
    [message] = problems(text)
    assert message == (
        "inv.toml: missing [database]: expected the PostgreSQL primary (host, port, name)"
    )


def test_an_unknown_key_is_refused_with_a_suggestion():
    text = ONE_HOST.replace("port = 20101", "port = 20101\nworker = 4")
    [message] = problems(text)
    assert message.startswith(f"inv.toml:{line_of(text, 'worker = 4')}: app_server[1].worker:")
    assert "unknown key; did you mean 'workers'?" in message


def test_an_unknown_table_is_refused():
    [message] = problems(ONE_HOST + "\n[balancer]\nmode = 1\n")
    assert "balancer: unknown key; did you mean 'load_balancer'?" in message


def test_a_value_of_the_wrong_type_says_what_was_expected():
    text = ONE_HOST.replace("port = 20101", 'port = 20101\nworkers = "four"')
    [message] = problems(text)
    assert message == (
        f"inv.toml:{line_of(text, 'four')}: app_server[1].workers: 'four' (a string) is wrong; "
        "expected a whole number from 1 to 256"
    )


def test_a_boolean_is_not_a_number():
    [message] = problems(ONE_HOST.replace("port = 20103", "port = true"))
    assert "app_server[3].port: true (a boolean) is wrong; expected a port from 1 to 65535" in (
        message
    )


def test_every_problem_is_reported_at_once_in_file_order():
    text = (
        ONE_HOST.replace("port = 20101", 'port = 20101\nkind = "apache"')
        .replace("port = 20379", 'port = 20379\nrole = "boss"')
        .replace('host = "web"\nport = 20000', 'host = "www"\nport = 20000')
    )
    messages = problems(text)
    assert len(messages) == 3
    assert "load_balancer[1].host: 'www' is not in [hosts] (known: web)" in messages[0]
    assert "app_server[1].kind" in messages[1]
    assert "cache[1].role" in messages[2]


def test_text_that_is_not_toml_names_the_line():
    [message] = problems('[site]\nsettings_module = "x.settings"\nproject_dir = /srv\n')
    assert message.startswith("inv.toml:3: not valid TOML: ")


def test_a_host_name_must_be_an_address():
    [message] = problems(ONE_HOST.replace('web = "127.0.0.1"', 'web = "web.internal"'))
    assert "hosts.web: 'web.internal' is not an IPv4 address" in message


def test_a_host_that_plays_no_role_is_refused():
    [message] = problems(
        ONE_HOST.replace('web = "127.0.0.1"', 'web = "127.0.0.1"\nspare = "127.0.0.2"')
    )
    assert "hosts.spare: not used by any role" in message


def test_memcached_nodes_have_no_roles():
    text = ONE_HOST.replace("port = 20379", 'port = 20379\nkind = "memcached"\nrole = "replica"')
    [message] = problems(text)
    assert "cache[1].role: Memcached nodes have no roles" in message


def test_redis_needs_exactly_one_primary():
    text = ONE_HOST.replace(
        '[hosts]\nweb = "127.0.0.1"', '[hosts]\nweb = "127.0.0.1"\nc2 = "127.0.0.2"'
    )
    text += '\n[[cache]]\nhost = "c2"\nrole = "primary"\n'
    [message] = problems(text)
    assert "2 Redis primaries; expected exactly one" in message


def test_fewer_than_three_sentinels_cannot_fail_over_safely():
    text = example_text().replace(
        'hosts = ["cache1", "cache2", "lb1"]', 'hosts = ["cache1", "cache2"]'
    )
    [message] = problems(text)
    assert "sentinel.hosts: 2 Sentinels; expected at least 3" in message


def test_redirect_to_https_needs_tls():
    text = ONE_HOST.replace(
        'project_dir = "/srv/newsroom/demo"', 'project_dir = "/srv/x"\nredirect_https = true'
    )
    [message] = problems(text)
    assert "site.redirect_https: needs tls" in message


def test_two_database_servers_on_one_host_are_refused():
    text = example_text().replace(
        '[[database.replica]]\nhost = "db2"', '[[database.replica]]\nhost = "db1"\nport = 5433'
    )
    text = text.replace('db2 = "10.0.5.2"\n', "")
    [message] = problems(text)
    assert message.endswith(
        "database.replica[1].host: db1 already runs the database primary; "
        "expected one PostgreSQL server per host"
    )


def test_wildcard_server_names_are_refused():
    text = ONE_HOST.replace(
        'server_names = ["127.0.0.1", "localhost"]', 'server_names = ["*.example.com"]'
    )
    [message] = problems(text)
    assert "site.server_names" in message and "expected a list of host names" in message


def test_the_tls_port_is_free_for_others_when_tls_is_off():
    inventory = parse_inventory(ONE_HOST.replace("port = 20379", "port = 20443"))
    assert inventory.caches[0].port == 20443


def test_an_empty_list_of_a_required_role_is_refused():
    balancer = (
        '[[load_balancer]]\nhost = "web"\nport = 20000\npool_port = 20090\ntls_port = 20443\n'
    )
    assert balancer in ONE_HOST
    text = "load_balancer = []\n" + ONE_HOST.replace(balancer, "")
    assert problems(text) == ["inv.toml: missing [[load_balancer]]: at least one is needed"]
