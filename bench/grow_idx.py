"""Writes an IDX image file of N distinct images grown from an MNIST-style IDX file, for benchmarks
that need more images than the dataset has (`scripts/bench-http 1000000`).

Image i < the source's count is the source's image i. Every later image is a copy of source image
i mod count whose first four pixels (the top-left corner, background in Fashion-MNIST) are changed: the
first differs from the source's, the next three hold the copy number. So a copy never equals its
source nor another copy of it (the service stores identical bytes once), while it still looks, and
hashes, like the image it copies.

    python3 bench/grow_idx.py SOURCE.idx3-ubyte[.gz] N OUTPUT.idx
"""
import gzip
import struct
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, count, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    opener = gzip.open if source.endswith(".gz") else open
    with opener(source, "rb") as file:
        magic, images, rows, columns = struct.unpack(">IIII", file.read(16))
        if magic != 0x803:
            sys.exit(f"{source} is not an IDX image file (magic {magic:#x})")
        pixels = rows * columns
        data = file.read(images * pixels)
    if count > images * (1 << 24):
        sys.exit(f"at most {images * (1 << 24)} images can be grown from {images}")
    with open(output, "wb") as file:
        file.write(struct.pack(">IIII", 0x803, count, rows, columns))
        for index in range(count):
            base = index % images
            image = data[base * pixels:(base + 1) * pixels]
            copy = index // images
            if copy:
                marker = 255 if image[0] != 255 else 254
                image = bytes((marker, copy >> 16 & 0xFF, copy >> 8 & 0xFF, copy & 0xFF)) + image[4:]
            file.write(image)


if __name__ == "__main__":
    main()
