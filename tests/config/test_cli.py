"""`strata config` on the command line: files and a summary, or one clear error."""

from __future__ import annotations

import stat

from click.testing import CliRunner

from strata.cli.main import cli
from tests.config.helpers import EXAMPLE, ONE_HOST


def run(*args: str):
    """``strata config ARGS`` in-process; the click Result."""
    return CliRunner().invoke(cli, ["config", *args])


def test_the_example_renders_with_a_summary_and_private_secrets(tmp_path):
    out = tmp_path / "production"
    result = run(str(EXAMPLE), "--out", str(out), "--no-check")
    assert result.exit_code == 0, result.output
    assert "newsroom: 14 hosts" in result.output
    assert f"Wrote 50 files to {out}/" in result.output  # purgers, exporters, monitoring
    assert "secrets.env (mode 0600)" in result.output
    assert stat.S_IMODE((out / "secrets.env").stat().st_mode) == 0o600
    assert "haproxy -c" not in result.output  # --no-check


def test_a_second_render_keeps_the_secrets_and_says_so(tmp_path):
    out = tmp_path / "out"
    assert run(str(EXAMPLE), "--out", str(out), "--no-check").exit_code == 0
    result = run(str(EXAMPLE), "--out", str(out), "--no-check")
    assert result.exit_code == 0
    assert f"Kept the secrets in {out}/secrets.env" in result.output


def test_a_bad_inventory_is_one_clear_error_without_a_traceback(tmp_path):
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(ONE_HOST.replace("port = 20101", 'port = 20101\nkind = "apache"'))
    result = run(str(inventory), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "Error: 1 problem in the inventory:"
    assert lines[1].startswith(f"{inventory}:23: app_server[1].kind: 'apache' (a string) is wrong")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_inventory_is_a_clear_error(tmp_path):
    result = run(str(tmp_path / "nowhere.toml"))
    assert result.exit_code == 1
    assert "nowhere.toml: cannot read: No such file or directory" in result.output
    assert "Traceback" not in result.output


def test_an_out_directory_of_someone_elses_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(ONE_HOST)
    result = run(str(inventory), "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "was not written by strata config" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.toml", "keep.txt"]
