#!/usr/bin/env python3
"""Single-thread faiss binary-index throughput, for comparison with `dsch bench index`.

Reads codes and queries as raw bytes (rows of bits/8 bytes, the layout `BinaryCode.bytes` writes),
times top-k search with IndexBinaryFlat one query at a time and as one batch, and prints JSON with the
median queries/second of each and the distances of the first queries, so the caller can check that
both implementations agree.

With --serve it loads the index once and then answers commands on stdin, one JSON line each:
  single [K]            time one run of one-query-at-a-time IndexBinaryFlat searches
  batched [K]           time one run of a single IndexBinaryFlat call for all queries
  check [K]             IndexBinaryFlat top-K distances of the first --check queries
  multihash_build NHASH B NFLIP
                        build IndexBinaryMultiHash (NHASH tables of B bits, probing up to NFLIP bit flips)
  multihash [K]         time one run of one-query-at-a-time IndexBinaryMultiHash searches
  multihash_recall [K]  fraction of (query, rank) pairs where IndexBinaryMultiHash returns the exact
                        distance, over all queries (it is approximate for k-nearest search)
  quit
The caller can then alternate its own runs with faiss's, so both see the same load on a shared machine.
"""
import argparse
import json
import statistics
import sys
import time

import faiss
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", required=True, help="raw file of count x bits/8 bytes")
    parser.add_argument("--queries", required=True, help="raw file of queries x bits/8 bytes")
    parser.add_argument("--bits", type=int, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check", type=int, default=20, help="queries whose distances are reported")
    parser.add_argument("--serve", action="store_true", help="answer commands on stdin (see above)")
    args = parser.parse_args()

    row_bytes = args.bits // 8
    codes = np.fromfile(args.codes, dtype=np.uint8).reshape(-1, row_bytes)
    queries = np.fromfile(args.queries, dtype=np.uint8).reshape(-1, row_bytes)

    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(args.bits)
    index.add(codes)
    multihash = None

    def single(searched, k: int) -> float:
        start = time.perf_counter()
        for i in range(len(queries)):
            searched.search(queries[i:i + 1], k)
        return len(queries) / (time.perf_counter() - start)

    def batched(k: int) -> float:
        start = time.perf_counter()
        index.search(queries, k)
        return len(queries) / (time.perf_counter() - start)

    single(index, args.k)  # warm caches and lazy initialisation before timing

    if args.serve:
        print(json.dumps({"ready": True, "faiss_version": faiss.__version__}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            command = words[0]
            k = int(words[1]) if len(words) > 1 and command != "multihash_build" else args.k
            if command == "single":
                print(json.dumps({"qps": single(index, k)}), flush=True)
            elif command == "batched":
                print(json.dumps({"qps": batched(k)}), flush=True)
            elif command == "check":
                distances, _ = index.search(queries[:args.check], k)
                print(json.dumps({"distances": distances.astype(int).tolist()}), flush=True)
            elif command == "multihash_build":
                nhash, bits_per_hash, nflip = (int(word) for word in words[1:4])
                start = time.perf_counter()
                multihash = faiss.IndexBinaryMultiHash(args.bits, nhash, bits_per_hash)
                multihash.nflip = nflip
                multihash.add(codes)
                print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
            elif command == "multihash":
                print(json.dumps({"qps": single(multihash, k)}), flush=True)
            elif command == "multihash_recall":
                exact, _ = index.search(queries, k)
                approximate, _ = multihash.search(queries, k)
                print(json.dumps({"recall": float(np.mean(exact == approximate))}), flush=True)
            elif command == "quit":
                break
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
        return 0

    single_runs = [single(index, args.k) for _ in range(args.runs)]
    batched_runs = [batched(args.k) for _ in range(args.runs)]
    distances, _ = index.search(queries[:args.check], args.k)

    json.dump({
        "faiss_version": faiss.__version__,
        "single_qps": statistics.median(single_runs),
        "batched_qps": statistics.median(batched_runs),
        "distances": distances.astype(int).tolist(),
    }, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
