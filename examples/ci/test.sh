#!/bin/sh
# SPDX-License-Identifier: MIT
# The example project's test suite: it talks to its API over HTTPS and checks the answers.
# API_URL says where the API is (default https://localhost:8443).
set -e
api=${API_URL:-https://localhost:8443}
items=$(curl -sSf "$api/v1/items")
pear=$(curl -sSf "$api/v1/items/2")
python3 - "$items" "$pear" <<'PY'
import json, sys
items, pear = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert [i["name"] for i in items["items"]] == ["apple", "pear"], items
assert pear["stock"] == 12, pear
print("ok: %d items, pear stock %d" % (len(items["items"]), pear["stock"]))
PY
