#!/usr/bin/env python3
"""faiss's ITQ and LSH under the project's evaluation protocol (see EVALUATION.md), as a check on the
Swift ITQ: the two should agree within 0.01 mAP@1000.

Reads the Fashion-MNIST IDX files itself, builds the same split and the same 32x32 RGB thumbnails
(area-averaged resize, gray replicated to three channels, features value/255 - 0.5), trains faiss's
ITQTransform on the first 5,000 train images and IndexLSH (random rotation, zero thresholds), and
prints mAP@1000 and precision@100 at 16, 32 and 64 bits. The protocol's ranking (Hamming distance, ties
by database position) is computed exactly with numpy; the mAP of faiss's own IndexBinaryFlat ordering
(its tie order may differ) is printed beside it. A textbook ITQ in numpy (centre, L2-normalise, exact
PCA by eigh, 50 Procrustes iterations from a random rotation) is printed as a third opinion, because
faiss's ITQMatrix reaches a visibly higher quantisation loss than the textbook iteration on this data.

usage: bench/faiss_itq.py [--data DIR] [--bits 16,32,64] [--size 32]
"""
import argparse
import gzip
import os
import time

import faiss
import numpy as np


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic not in (0x801, 0x803):
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims))
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header promises {int(np.prod(dims))} bytes, file holds {body.size}")
    return body.reshape(dims)


def find(directory, name):
    path = os.path.join(directory, name + ".gz")
    return path if os.path.exists(path) else os.path.join(directory, name)


def area_weights(source, target):
    """Box-filter weights (target x source): output i averages input interval [i*s/t, (i+1)*s/t)."""
    scale = source / target
    weights = np.zeros((target, source))
    for i in range(target):
        start, end = i * scale, (i + 1) * scale
        for j in range(int(np.floor(start)), min(source, int(np.ceil(end)))):
            overlap = min(end, j + 1) - max(start, j)
            if overlap > 1e-12:
                weights[i, j] = overlap / scale
    return weights


def thumbnails(images, size):
    vertical = area_weights(images.shape[1], size)
    horizontal = area_weights(images.shape[2], size)
    resized = np.einsum("yr,nrc,xc->nyx", vertical, images.astype(np.float64), horizontal)
    gray = np.clip(np.floor(resized + 0.5), 0, 255).astype(np.uint8)
    return np.repeat(gray.reshape(len(images), -1), 3, axis=1)  # interleaved RGB, gray replicated


def protocol_split(labels, train_count, per_class=100, classes=10, training=5000):
    queries = []
    for label in range(classes):
        members = [i for i in range(train_count, len(labels)) if labels[i] == label]
        queries += members[:per_class]
    is_query = np.zeros(len(labels), dtype=bool)
    is_query[queries] = True
    return np.array(queries), np.flatnonzero(~is_query), np.arange(min(training, train_count))


def protocol_scores(query_bits, database_bits, query_labels, database_labels, k=1000, depth=100):
    """mAP@k and precision@depth with ranking by Hamming distance, ties by database position."""
    bits = query_bits.shape[1]
    q = np.where(query_bits, 1, -1).astype(np.float32)
    d = np.where(database_bits, 1, -1).astype(np.float32)
    n = len(database_labels)
    aps, precisions = [], []
    for start in range(0, len(q), 100):
        distances = ((bits - q[start:start + 100] @ d.T) / 2).round().astype(np.int64)
        keys = distances * n + np.arange(n)
        for row, key in enumerate(keys):
            top = np.argpartition(key, k - 1)[:k]
            top = top[np.argsort(key[top])]
            relevant = database_labels[top] == query_labels[start + row]
            hits = np.cumsum(relevant)
            count = hits[-1]
            aps.append(0.0 if count == 0 else float(np.sum(hits / np.arange(1, k + 1) * relevant) / count))
            precisions.append(relevant[:depth].mean())
    return float(np.mean(aps)), float(np.mean(precisions))


def numpy_itq(train, bits, basis, iterations=50, seed=0):
    """Textbook ITQ (Gong & Lazebnik) on centred, L2-normalised rows; returns an encoder."""
    mean = train.mean(0)
    centred = train - mean
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    pca = basis[:, :bits]
    reduced = centred @ pca
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((bits, bits)))
    for _ in range(iterations):
        signs = np.where(reduced @ rotation >= 0, 1.0, -1.0)
        u, _, vt = np.linalg.svd(reduced.T @ signs)
        rotation = u @ vt
    projection = pca @ rotation
    return lambda x: (x - mean) @ projection > 0


def pca_basis(train):
    centred = train - train.mean(0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred.astype(np.float64))
    return vectors[:, ::-1]


def ordering_map(order, query_labels, database_labels):
    aps = []
    for row, top in enumerate(order):
        relevant = database_labels[top] == query_labels[row]
        hits = np.cumsum(relevant)
        count = hits[-1]
        aps.append(0.0 if count == 0 else float(np.sum(hits / np.arange(1, len(top) + 1) * relevant) / count))
    return float(np.mean(aps))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--bits", default="16,32,64")
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()

    train = read_idx(find(args.data, "train-images-idx3-ubyte"))
    test = read_idx(find(args.data, "t10k-images-idx3-ubyte"))
    labels = np.concatenate([read_idx(find(args.data, "train-labels-idx1-ubyte")),
                             read_idx(find(args.data, "t10k-labels-idx1-ubyte"))])
    images = np.concatenate([train, test])
    queries, database, training = protocol_split(labels, len(train))
    features = thumbnails(images, args.size).astype(np.float32) / 255 - 0.5
    print(f"queries {len(queries)}, database {len(database)}, training {len(training)}, "
          f"features {features.shape[1]}, faiss {faiss.__version__}, {os.cpu_count()} cores")
    query_labels, database_labels = labels[queries], labels[database]

    basis = pca_basis(features[training])
    print("method      bits  mAP@1000  P@100   mAP(IndexBinaryFlat order)  train s")
    for bits in [int(b) for b in args.bits.split(",")]:
        itq = faiss.ITQTransform(features.shape[1], bits, True)
        start = time.perf_counter()
        itq.train(features[training])
        train_seconds = time.perf_counter() - start
        lsh = faiss.IndexLSH(features.shape[1], bits, True, False)
        lsh.train(features[training])
        encoders = {
            "numpy-itq": numpy_itq(features[training], bits, basis),
            "faiss-itq": lambda x: itq.apply(x) > 0,
            "faiss-lsh": lambda x: np.unpackbits(lsh.sa_encode(x), axis=1, bitorder="little")[:, :bits] > 0,
        }
        for name, encode in encoders.items():
            query_bits, database_bits = encode(features[queries]), encode(features[database])
            score, precision = protocol_scores(query_bits, database_bits, query_labels, database_labels)
            index = faiss.IndexBinaryFlat(bits)
            index.add(np.packbits(database_bits, axis=1))
            _, order = index.search(np.packbits(query_bits, axis=1), 1000)
            flat = ordering_map(order, query_labels, database_labels)
            seconds = train_seconds if name == "faiss-itq" else 0.0
            print(f"{name:10s} {bits:5d}  {score:8.4f}  {precision:6.4f}  {flat:8.4f}                  {seconds:6.2f}")


if __name__ == "__main__":
    main()
