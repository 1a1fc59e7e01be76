"""Run wrk with a Lua script that prints its results as JSON, and parse them.

:func:`run_wrk` measures every response alike. :func:`run_wrk_checked` also checks one
response header on every response (wrk's ``response()`` callback) and counts the
responses whose header has another value separately, by value: a benchmark of a cache
tier then knows how many requests that tier really answered.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WrkResult", "run_wrk", "run_wrk_checked", "wrk_available", "wrk_version"]

_LUA = """
{headers}
done = function(s, lat, req)
  io.write(string.format("JSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d}}\\n",
    s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write, s.errors.status,
    s.errors.timeout, lat:percentile(50), lat:percentile(90), lat:percentile(99), lat.max))
end
"""


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int  # socket errors plus non-2xx/3xx responses
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    answered: int | None = None
    """With a header check: responses (status below 400) whose header had the value."""
    others: dict[str | None, int] = field(default_factory=dict)
    """With a header check: other values of the header (None: absent), and how often."""
    interrupted: bool = False
    """Ctrl-C stopped wrk early; the figures cover the time it ran."""

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    """True when the wrk binary is on PATH."""
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    """``wrk 4.1.0`` (or just ``wrk`` when it does not say)."""
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    words = (out.stdout + out.stderr).split()
    if len(words) >= 2 and words[0] == "wrk":
        return "wrk " + words[1].split("/")[-1].split("-")[0]
    return "wrk"


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header_lines(headers: dict[str, str] | None) -> str:
    """Lua lines that give every request ``headers``."""
    return "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()
    )


def _argv(url: str, script: Path, seconds: int, connections: int, threads: int, timeout_s: int):
    """wrk's command line (its durations are whole seconds, at least one)."""
    return [
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        url,
    ]


def _whole_seconds(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))


def _result(data: dict, **extra) -> WrkResult:
    """A :class:`WrkResult` from the JSON line the Lua reporters print."""
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=sum(data[k] for k in ("connect", "read", "write", "status", "timeout")),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        **extra,
    )


def run_wrk(
    url: str,
    *,
    seconds: float = 5,
    connections: int = 10,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    timeout_s: int = 5,
) -> WrkResult:
    """Drive ``url`` for ``seconds`` (bounded, rounded up to whole seconds) and return the
    parsed results."""
    seconds = _whole_seconds(seconds)
    with tempfile.TemporaryDirectory(prefix="strata-wrk-") as scratch:
        script = Path(scratch) / "report.lua"
        script.write_text(_LUA.format(headers=_header_lines(headers)))
        out = subprocess.run(
            _argv(url, script, seconds, connections, threads, timeout_s),
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    return _result(json.loads(line[5:]))


# Every thread counts in its own Lua state; done() (in the main state) adds them up
# through the thread objects that setup() kept.
_CHECKED_LUA = """
{headers}
local proof_name = {proof_name}
local proof_value = {proof_value}
answered = 0
others = {{}}

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  if status > 399 then
    return  -- wrk counts it in errors.status
  end
  local value = headers[proof_name]
  if value == nil then
    for name, v in pairs(headers) do
      if string.lower(name) == proof_name then
        value = v
        break
      end
    end
  end
  if value ~= nil then
    value = string.match(value, "^%s*(.-)%s*$")
  end
  if value == proof_value then
    answered = answered + 1
  else
    -- Keys survive the copy between Lua states only as plain strings: "=value" or "!".
    local key = value and ("=" .. value) or "!"
    others[key] = (others[key] or 0) + 1
  end
end

local function json_string(s)
  local escaped = string.gsub(s, '[%c"\\\\]', function(c)
    return string.format("\\\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

done = function(s, lat, req)
  local total, merged = 0, {{}}
  for _, thread in ipairs(threads) do
    total = total + (thread:get("answered") or 0)
    for value, count in pairs(thread:get("others") or {{}}) do
      merged[value] = (merged[value] or 0) + count
    end
  end
  local parts = {{}}
  for value, count in pairs(merged) do
    table.insert(parts, json_string(value) .. ":" .. string.format("%d", count))
  end
  io.write(string.format("JSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d,\\"answered\\":%d,\\"others\\":{{%s}}}}\\n",
    s.requests, s.duration, s.errors.connect, s.errors.read, s.errors.write, s.errors.status,
    s.errors.timeout, lat:percentile(50), lat:percentile(90), lat:percentile(99), lat.max,
    total, table.concat(parts, ",")))
end
"""


def run_wrk_checked(
    url: str,
    *,
    header: str,
    value: str,
    seconds: float = 5,
    connections: int = 10,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    timeout_s: int = 10,
    tick: Callable[[float], None] | None = None,
) -> WrkResult:
    """Drive ``url`` like :func:`run_wrk`, checking that every response has ``header: value``.

    wrk's durations are whole seconds: ``seconds`` is rounded up (at least 1). ``tick`` is
    called about five times a second with the seconds elapsed. Ctrl-C (KeyboardInterrupt)
    stops wrk the way its own Ctrl-C does, and the result covers the time it ran
    (``interrupted`` is set); wrk runs in a session of its own, so only this function
    decides when it stops.
    """
    seconds = _whole_seconds(seconds)
    with tempfile.TemporaryDirectory(prefix="strata-wrk-") as scratch:
        script = Path(scratch) / "checked.lua"
        script.write_text(
            _CHECKED_LUA.format(
                headers=_header_lines(headers),
                proof_name=_lua_string(header.lower()),
                proof_value=_lua_string(value),
            )
        )
        argv = _argv(url, script, seconds, connections, threads, timeout_s)
        stdout, stderr, code, interrupted = _run_until_done(argv, seconds + timeout_s + 30, tick)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("JSON ")), None)
    if line is None or (code != 0 and not interrupted):
        raise RuntimeError(f"wrk failed: {stderr.strip() or stdout.strip() or f'status {code}'}")
    data = json.loads(line[5:])
    return _result(
        data,
        answered=data["answered"],
        others={(k[1:] if k.startswith("=") else None): v for k, v in data["others"].items()},
        interrupted=interrupted,
    )


def _run_until_done(
    argv: list[str], limit_s: float, tick: Callable[[float], None] | None
) -> tuple[str, str, int, bool]:
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    interrupted = False
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
                if elapsed > limit_s:
                    process.kill()
                    process.communicate()
                    raise RuntimeError(f"wrk did not finish within {limit_s:.0f} s") from None
                if tick is not None:
                    tick(elapsed)
    except KeyboardInterrupt:
        interrupted = True
        # wrk's own SIGINT handler stops its threads and still reports (and calls done()).
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=15)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
            stdout, stderr = process.communicate()
    return stdout, stderr, process.returncode, interrupted
