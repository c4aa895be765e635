#!/usr/bin/env bash
# The stored images nearest to an image that is not stored: ./search.sh query.png [K]
# The query image is encoded with the active model and never written to the database.
set -euo pipefail
url=${DSCH_URL:-http://localhost:8080}
file=${1:?usage: search.sh IMAGE [K]}
k=${2:-10}
curl -sS -T "$file" -X POST "$url/v1/search?k=$k"
echo
