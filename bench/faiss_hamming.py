#!/usr/bin/env python3
"""Single-thread faiss IndexBinaryFlat throughput, for comparison with `dsch bench index`.

Reads codes and queries as raw bytes (rows of bits/8 bytes, the layout `BinaryCode.bytes` writes),
times top-k search one query at a time and as one batch, and prints JSON with the median
queries/second of each and the distances of the first queries, so the caller can check that both
implementations agree.

With --serve it loads the index once and then answers commands on stdin, one JSON line each:
`single` and `batched` time one run, `check` returns the distances, `quit` ends. The caller can then
alternate its own runs with faiss's, so both see the same load on a shared machine.
"""
import argparse
import json
import statistics
import sys
import time

import faiss
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--codes", required=True, help="raw file of count x bits/8 bytes")
    parser.add_argument("--queries", required=True, help="raw file of queries x bits/8 bytes")
    parser.add_argument("--bits", type=int, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check", type=int, default=20, help="queries whose distances are reported")
    parser.add_argument("--serve", action="store_true", help="answer single/batched/check/quit on stdin")
    args = parser.parse_args()

    row_bytes = args.bits // 8
    codes = np.fromfile(args.codes, dtype=np.uint8).reshape(-1, row_bytes)
    queries = np.fromfile(args.queries, dtype=np.uint8).reshape(-1, row_bytes)

    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(args.bits)
    index.add(codes)

    def single() -> float:
        start = time.perf_counter()
        for i in range(len(queries)):
            index.search(queries[i:i + 1], args.k)
        return len(queries) / (time.perf_counter() - start)

    def batched() -> float:
        start = time.perf_counter()
        index.search(queries, args.k)
        return len(queries) / (time.perf_counter() - start)

    single()  # warm caches and lazy initialisation before timing

    if args.serve:
        print(json.dumps({"ready": True, "faiss_version": faiss.__version__}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "single":
                print(json.dumps({"qps": single()}), flush=True)
            elif command == "batched":
                print(json.dumps({"qps": batched()}), flush=True)
            elif command == "check":
                distances, _ = index.search(queries[:args.check], args.k)
                print(json.dumps({"distances": distances.astype(int).tolist()}), flush=True)
            elif command == "quit":
                break
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
        return 0

    single_runs = [single() for _ in range(args.runs)]
    batched_runs = [batched() for _ in range(args.runs)]
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
