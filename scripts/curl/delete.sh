#!/usr/bin/env bash
# Remove a stored image everywhere (database, codes, index): ./delete.sh ID
# Deleting needs the admin token: DSCH_TOKEN, or else the admin-token file the server wrote beside its
# database (data/admin-token for `scripts/serve`; DSCH_TOKEN_FILE names another).
# Prints the HTTP status: 204 when it was deleted, 404 when no such image exists, 401/403 without a valid token.
set -euo pipefail
url=${DSCH_URL:-http://localhost:8080}
id=${1:?usage: delete.sh ID}
token=${DSCH_TOKEN:-$(cat "${DSCH_TOKEN_FILE:-data/admin-token}" 2>/dev/null || true)}
curl -sS -o /dev/null -w '%{http_code}\n' -X DELETE -H "Authorization: Bearer $token" "$url/v1/images/$id"
