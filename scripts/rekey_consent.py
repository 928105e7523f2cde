#!/usr/bin/env python3
"""Re-key an export of the old consent table (hash key orgId) for the pk/sk table.

    aws dynamodb scan --table-name mirror-dissonance-staging-consent --output json > old.json
    scripts/rekey_consent.py old.json > new.jsonl     # one PutItem Item (DynamoDB JSON) a line

See the README, "Migrating an existing consent table".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.data_plane.migration import migrate


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: rekey_consent.py EXPORT.json  (aws dynamodb scan --output json)",
            file=sys.stderr,
        )
        return 2
    try:
        export = json.loads(Path(argv[0]).read_text())
        items = export["Items"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"cannot read {argv[0]} as a DynamoDB scan export ({type(exc).__name__}: {exc}) — "
            "export with: aws dynamodb scan --table-name TABLE --output json > FILE",
            file=sys.stderr,
        )
        return 2
    for item in migrate(items):
        print(json.dumps(item, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
