#!/usr/bin/env bash
# Index one image: ./index.sh photo.jpg ['{"label":"shoe"}']
# The body is sent raw (curl -T); the JSON answer has the new id, its hash code and the model version.
# Status 201 means stored now, 200 means the same bytes were already stored (the existing id comes back).
set -euo pipefail
url=${DSCH_URL:-http://localhost:8080}
file=${1:?usage: index.sh IMAGE [META_JSON]}
meta=${2:-}
if [ -n "$meta" ]; then
  # With metadata, send a multipart form: the image in field "image", the JSON object in field "meta".
  curl -sS -F "image=@$file" -F "meta=$meta" "$url/v1/images"
else
  curl -sS -T "$file" -X POST "$url/v1/images"
fi
echo
