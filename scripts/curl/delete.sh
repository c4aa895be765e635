#!/usr/bin/env bash
# Remove a stored image everywhere (database, codes, index): ./delete.sh ID
# Prints the HTTP status: 204 when it was deleted, 404 when no such image exists.
set -euo pipefail
url=${DSCH_URL:-http://localhost:8080}
id=${1:?usage: delete.sh ID}
curl -sS -o /dev/null -w '%{http_code}\n' -X DELETE "$url/v1/images/$id"
