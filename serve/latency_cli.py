"""``segment demo-timing``: where a running demo's request time goes, from a browser and from the API.

Start the demo first (``segment demo``), then point this at it. Prints two
tables of medians (browser clicks, API calls); the server's own breakdown
comes from each result (``serve.stages``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:7860", help="the demo's address "
                        "(default: http://127.0.0.1:7860)")
    parser.add_argument("--photo", type=Path, default=None,
                        help="photo to segment (default: the page's first example photo)")
    parser.add_argument("--resolution", choices=("half", "full"), default="half")
    parser.add_argument("--clicks", type=int, default=10, help="timed clicks in the browser (default: 10; 0 skips)")
    parser.add_argument("--api-calls", type=int, default=10, help="timed API calls per client (default: 10; 0 skips)")
    parser.add_argument("--api-client", choices=("http", "gradio_client", "both"), default="both",
                        help="how the API is called: plain HTTP requests to Gradio's REST API, gradio_client, "
                             "or both, one after the other (default: both; each shows its own CPU time, which "
                             "a client on the server's cores takes from the model)")
    parser.add_argument("--browser", default=None,
                        help="Chromium executable (default: Playwright's own; e.g. /usr/bin/chromium)")
    parser.add_argument("--json", type=Path, default=None, help="also write every timing to this JSON file")


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError
    from serve.app import list_examples
    from serve.latency import API_CLIENTS, api_calls, api_table, as_json, browser_clicks, click_table

    photo = args.photo or next(iter(list_examples()), None)
    if photo is None or not Path(photo).is_file():
        raise UserError(f"--photo {photo}: no such file; give a street photo to time")
    if args.clicks < 0 or args.api_calls < 0:
        raise UserError("--clicks and --api-calls must be 0 or more")
    print(f"segment demo-timing: {args.url}, {Path(photo).name} at {args.resolution}", flush=True)
    try:
        clicks = browser_clicks(args.url, Path(photo), resolution=args.resolution, clicks=args.clicks,
                                browser_path=args.browser) if args.clicks else []
        clients = API_CLIENTS if args.api_client == "both" else (args.api_client,)
        per_client = [api_calls(args.url, Path(photo), resolution=args.resolution, calls=args.api_calls,
                                client=client) for client in clients] if args.api_calls else []
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    if clicks:
        print(click_table(clicks), flush=True)
    for calls in per_client:
        print(api_table(calls), flush=True)
    if args.json:
        from segment.atomic import write_bytes

        calls = [t for timings in per_client for t in timings]
        write_bytes(args.json, json.dumps(as_json(clicks, calls), indent=1).encode())
    return 0
