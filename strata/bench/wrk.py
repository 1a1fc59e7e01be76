"""Run wrk with a Lua script that prints its results as JSON, and parse them."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "run_wrk", "wrk_available"]

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

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    """True when the wrk binary is on PATH."""
    return shutil.which("wrk") is not None


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    url: str,
    *,
    seconds: float = 5,
    connections: int = 10,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    timeout_s: int = 5,
) -> WrkResult:
    """Drive ``url`` for ``seconds`` (bounded) and return the parsed results."""
    lines = [
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()
    ]
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="strata-wrk-") as scratch:
        script = Path(scratch) / "report.lua"
        script.write_text(_LUA.format(headers="\n".join(lines)))
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                f"--timeout={timeout_s}s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    data = json.loads(line[5:])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )
