"""``segment zoo``: the paper's models with our parameter and MAdds counts beside the paper's
(options and printing; the rows and tables are ``segment.zoo``)."""

from __future__ import annotations

import argparse
import json

from segment.presets import list_presets
from segment.zoo import block_rows, format_blocks, format_table, zoo_row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    parser.add_argument("--blocks", action="store_true",
                        help="print each backbone block's stride, dilation rate and residual at OS 16 and 32 instead")


def run(args: argparse.Namespace) -> int:
    if args.blocks:
        rows = block_rows()
        print(json.dumps(rows, indent=2) if args.json else format_blocks(rows))
        return 0
    rows = [zoo_row(p) for p in list_presets()]
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
