#!/usr/bin/env bash
# A service that learns, end to end: starts dsch on a fresh database, imports 10,000 Fashion-MNIST
# images through the HTTP API with their class as metadata, measures precision@10 of `similar` per
# class under the cold-start LSH model, triggers a retrain, follows the job to the end, and measures
# again under the learned model.
#
# Needs Debian's dataset-fashion-mnist (installed if missing) and python3 (standard library only) to
# read the JSON answers. Environment: PORT (default 8090), IMAGES (10000), QUERIES_PER_CLASS (100),
# RETRAIN_BODY (default '{}' = the configured DSCH settings).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-8090}
images=${IMAGES:-10000}
queries=${QUERIES_PER_CLASS:-100}
body=${RETRAIN_BODY:-'{}'}
data=/usr/share/datasets/fashion-mnist
scripts/bootstrap
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
  run_as_root=(); [ "$(id -u)" -eq 0 ] || run_as_root=(sudo)
  "${run_as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >&2
fi
swift build -c release --product dsch >&2

work=$(mktemp -d)
token=demo-$RANDOM$RANDOM
export DSCH_ADMIN_TOKEN=$token DSCH_RETRAIN_AUTOMATIC=false
.build/release/dsch serve --host 127.0.0.1 --port "$port" --database "$work/dsch.sqlite" 2> "$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.2; done

echo "== importing $images images through POST /v1/images"
.build/release/dsch import --url "http://127.0.0.1:$port" --limit "$images" \
  --labels "$data/train-labels-idx1-ubyte.gz" "$data/train-images-idx3-ubyte.gz"

precision() {
  python3 - "$port" "$images" "$queries" <<'PY'
import json, sys, urllib.request
port, images, per_class = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
base = f"http://127.0.0.1:{port}"
labels = {}
for image_id in range(1, images + 1):
    with urllib.request.urlopen(f"{base}/v1/images/{image_id}") as response:
        labels[image_id] = json.load(response)["meta"]["label"]
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
totals, version = [], None
for label in range(10):
    chosen = [i for i, value in sorted(labels.items()) if value == label][:per_class]
    hits = 0
    for image_id in chosen:
        with urllib.request.urlopen(f"{base}/v1/images/{image_id}/similar?k=10") as response:
            answer = json.load(response)
        version = answer["model_version"]
        hits += sum(1 for result in answer["results"] if result["meta"]["label"] == label)
    totals.append(hits / (10 * len(chosen)))
    print(f"  {label} {names[label]:<12} precision@10 = {totals[-1]:.3f}")
print(f"  mean over classes   precision@10 = {sum(totals) / len(totals):.3f}   (model version {version}, {per_class} queries per class)")
PY
}

echo "== precision@10 of GET /v1/images/{id}/similar before the retrain"
precision

echo "== POST /v1/admin/retrain $body"
job=$(curl -sS -X POST -H "Authorization: Bearer $token" -d "$body" "http://127.0.0.1:$port/v1/admin/retrain")
echo "  $job"
job_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$job")
last=""
while true; do
  state=$(curl -sS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/admin/jobs/$job_id")
  line=$(python3 -c 'import json, sys
job = json.loads(sys.argv[1])
print("%-9s %5.1f%%  %s" % (job["status"], job["progress"] * 100, job.get("message") or ""))' "$state")
  [ "$line" != "$last" ] && echo "  $line" && last=$line
  case "$state" in *'"status":"succeeded"'*|*'"status":"failed"'*) break;; esac
  sleep 2
done

echo "== the quality gate: every candidate's label-free score, the one activated and why"
python3 -c 'import json, sys
gate = (json.loads(sys.argv[1]).get("result") or {}).get("gate")
if not gate:
    sys.exit("  (no gate result: the gate is off or the job failed)")
print("  held-out images: %d" % gate["held_out_images"])
for candidate in gate["candidates"]:
    quality = candidate.get("quality")
    if quality is None:
        print("  %-16s %-5s %3d bits  not scored" % (candidate["name"], candidate["kind"], candidate["bits"]))
        continue
    print("  %-16s %-5s %3d bits  score %.3f = first-rank rate %.3f x balance %.3f (constant bits %d)" % (
        candidate["name"], candidate["kind"], candidate["bits"], quality["score"], quality["first_rank_rate"],
        quality["balance"], quality["constant_bits"]))
print("  chosen: %s (%s)" % (gate["chosen"], gate["reason"]))' "$state"

echo "== precision@10 after the retrain"
precision
