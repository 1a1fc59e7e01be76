"""Static files: served by Varnish from memory, or by WhiteNoise in the app servers?

    .venv/bin/python benchmarks/static_files.py [--seconds 5] [--connections 20]

Varnish cannot read a directory: "Varnish straight from STATIC_ROOT" would need a file
server beside it, a program more to run and configure. What `strata up` does instead is
WhiteNoise in the app servers (the project's own middleware, or `strata.stack.wsgi`
wrapping the application) with Varnish keeping each file for its lifetime, so a file
leaves the app servers once per accelerator. This measures what that choice costs: one
stylesheet of the demo, side by side in one run, with wrk:

- through the load balancer, a Varnish hit (`X-Cache: HIT` checked on every response);
- straight at Varnish, a hit;
- straight at one app server, WhiteNoise answering (what a miss costs, and what every
  request would cost without Varnish keeping the file).

Results go to ``benchmarks/results/static_files.json``, with the ratios.
"""

from __future__ import annotations

import argparse

from _common import RESULTS, ROOT, machine, require_program, use_repository, write_results

use_repository()

from strata.bench.wrk import run_wrk, run_wrk_checked, wrk_version  # noqa: E402
from strata.stack.probes import http_get  # noqa: E402
from tests.helpers import demo_stack  # noqa: E402

PATH = "/static/newsroom/site.css"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    require_program("wrk")
    with demo_stack(app_servers=2, workers=2) as stack:
        balancer, varnish, app = stack.load_balancer, stack.accelerators[0], stack.app_servers[0]
        first = http_get(balancer.host, balancer.port, PATH)
        assert first.status == 200, first.status
        headers = {k: first.headers.get(k, "") for k in ("cache-control", "x-strata")}
        runs = {}
        for name, host, port, checked in (
            ("varnish hit through the load balancer", balancer.host, balancer.port, True),
            ("varnish hit", varnish.host, varnish.port, True),
            ("whitenoise in one app server", app.host, app.port, False),
        ):
            url = f"http://{host}:{port}{PATH}"
            options = {"seconds": args.seconds, "connections": args.connections}
            if checked:
                result = run_wrk_checked(url, header="X-Cache", value="HIT", **options)
            else:
                result = run_wrk(url, **options)
            runs[name] = {
                "requests_per_s": round(result.rps),
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "errors": result.errors,
                **({"not_hits": dict(result.others)} if checked else {}),
            }
            print(f"{name:<40} {result.rps:>9.0f} req/s  p50 {result.p50_ms:.2f} ms")
    hit = runs["varnish hit"]["requests_per_s"]
    app_rps = runs["whitenoise in one app server"]["requests_per_s"]
    report = {
        "command": "benchmarks/static_files.py "
        f"--seconds {args.seconds} --connections {args.connections}",
        "engine": wrk_version(),
        "machine": machine(),
        "file": PATH,
        "headers_from_the_app": headers,
        "runs": runs,
        "ratio_varnish_hit_to_one_app_server": round(hit / app_rps, 1) if app_rps else None,
    }
    out = RESULTS / "static_files.json"
    write_results(out, report)
    print(f"Varnish hit / one app server: {report['ratio_varnish_hit_to_one_app_server']}x")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
