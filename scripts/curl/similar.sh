#!/usr/bin/env bash
# The stored images nearest to stored image ID by Hamming distance: ./similar.sh ID [K]
# Results are ordered by distance, ties by id; the image itself is left out.
set -euo pipefail
url=${DSCH_URL:-http://localhost:8080}
id=${1:?usage: similar.sh ID [K]}
k=${2:-10}
curl -sS "$url/v1/images/$id/similar?k=$k"
echo
