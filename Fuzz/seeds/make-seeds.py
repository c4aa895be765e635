#!/usr/bin/env python3
"""Writes the hand-made seeds: HTTP requests, multipart bodies, PNG variants, IDX files, configuration
JSON, and the LSH/ITQ-shaped model headers. Run by `scripts/fuzz seeds`."""
import gzip, json, os, struct, sys, zlib

root = sys.argv[1] if len(sys.argv) > 1 else "Fuzz/corpus"

def write(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)

# HTTP requests. The first byte also picks the split point (Fuzz/http-parser.swift); a method starts the input.
http = {
    "get": b"GET /v1/images/a%20b/similar?k=10&name=red+car%21 HTTP/1.1\r\nHost: x\r\nX-Thing:  spaced value \r\n\r\n",
    "get-http10": b"GET /healthz HTTP/1.0\r\n\r\n",
    "post-length": b"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello",
    "post-chunked": b"POST /v1/images HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: y\r\n\r\n",
    "post-100-continue": b"PUT /v1/admin/model HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "pipelined": b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nDELETE /v1/images/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "keepalive-10": b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    "bad-version": b"GET / HTTP/2.0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "chunked-hex": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n1f\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n",
}
for name, data in http.items():
    write("http-parser", name, data)

# Multipart: the Content-Type line, LF, then the body.
def form(boundary, parts, preamble=b"", epilogue=b""):
    body = preamble
    for headers, content in parts:
        body += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + content + b"\r\n"
    return body + b"--" + boundary + b"--\r\n" + epilogue

multipart = {
    "file": (b'multipart/form-data; boundary=XyZ', form(b"XyZ", [([b'Content-Disposition: form-data; name="image"; filename="a.jpg"', b"Content-Type: image/jpeg"], b"\xff\xd8\xff\xe0data")])),
    "fields": (b'multipart/form-data; charset=utf-8; boundary="a b:c"', form(b"a b:c", [([b'Content-Disposition: form-data; name="k"'], b"10"), ([b'content-disposition: form-data; name="name"'], b"red car")], preamble=b"preamble\r\n", epilogue=b"epilogue")),
    "quoted-filename": (b'Multipart/Form-Data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW', form(b"----WebKitFormBoundary7MA4YWxkTrZu0gW", [([b'Content-Disposition: form-data; name="file"; filename="we\\"ird;name.png"'], b"\x89PNG\r\n")])),
    "padding": (b'multipart/form-data; boundary=b', b"--b \t\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n--b--"),
    "not-multipart": (b'text/plain; boundary=x', b"--x\r\n\r\n\r\n--x--"),
}
for name, (content_type, body) in multipart.items():
    write("multipart", name, content_type + b"\n" + body)

# PNG variants (the JPEG seeds come from the project's encoder, Fuzz/seeds/make-seeds.swift).
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

def png(width, height, depth, color, rows, extra=b"", interlace=0):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    raw = b"".join(b"\x00" + row for row in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

write("image", "gray8-4x3.png", png(4, 3, 8, 0, [bytes([x * 60 + y for x in range(4)]) for y in range(3)]))
write("image", "gray1-9x2.png", png(9, 2, 1, 0, [b"\xaa\x80", b"\x55\x00"]))
write("image", "gray-alpha-2x2.png", png(2, 2, 8, 4, [b"\x10\xff\x20\x80", b"\x30\x00\x40\x40"]))
write("image", "rgba-2x2.png", png(2, 2, 8, 6, [b"\xff\x00\x00\xff\x00\xff\x00\x80", b"\x00\x00\xff\x00\xff\xff\xff\xff"]))
write("image", "rgb16-2x1.png", png(2, 1, 16, 2, [b"\xff\xff\x00\x00\x12\x34\x00\x00\xff\xff\xab\xcd"]))
write("image", "palette-3x2-trns.png", png(3, 2, 8, 3, [b"\x00\x01\x02", b"\x02\x01\x00"],
      extra=chunk(b"PLTE", b"\xff\x00\x00\x00\xff\x00\x00\x00\xff") + chunk(b"tRNS", b"\x80")))
# Adam7-interlaced 5x5 RGB: each pass's rows are a filter byte then 3 bytes per pixel.
passes = [(1, 1), (1, 1), (1, 1), (2, 1), (1, 2), (2, 2), (5, 2)]
write("image", "interlaced-rgb-5x5.png", b"\x89PNG\r\n\x1a\n"
      + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 5, 8, 2, 0, 0, 1))
      + chunk(b"IDAT", zlib.compress(b"".join((b"\x00" + bytes(range(3 * w))) * h for w, h in passes)))
      + chunk(b"IEND", b""))
# The baseline JPEG seed with an EXIF orientation 6 (rotate 90°) block, once the Swift half has written it.
def exif(orientation):
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
baseline = os.path.join(root, "image", "baseline-17x5-q30.jpg")
if os.path.exists(baseline):
    with open(baseline, "rb") as f:
        jpeg = f.read()
    write("image", "exif-orientation-6.jpg", jpeg[:2] + exif(6) + jpeg[2:])

# IDX: images (idx3) and labels (idx1), plain and gzipped.
images = struct.pack(">IIII", 0x803, 2, 3, 2) + bytes(range(12))
labels = struct.pack(">II", 0x801, 5) + bytes([0, 1, 2, 9, 3])
write("idx", "images-2x3x2.idx", images)
write("idx", "labels-5.idx", labels)
write("idx", "images-2x3x2.idx.gz", gzip.compress(images, mtime=0))
write("idx", "labels-5.idx.gz", gzip.compress(labels, mtime=0))
write("idx", "empty-images.idx", struct.pack(">IIII", 0x803, 0, 28, 28))

# Model headers the fuzzer can grow: ITQ (bits 2, input 1 → dimension 3) and LSH parameters.
itq = b"ITQ1" + struct.pack("<III", 2, 1, 3) + struct.pack("<9f", *[0.5, -0.25, 1.0, 1, 0, 0, 1, 0.5, -0.5])
write("model", "itq-tiny", b"\x01" + itq)
write("model", "lsh-tiny", b"\x00" + json.dumps({"bits": 8, "inputSize": 2, "seed": 1}).encode())

# Configuration files (the text up to a NUL byte), one with overrides after the NUL.
with open("Config/default.json", "rb") as f:
    write("config", "default.json", f.read())
write("config", "empty.json", b"{}")
write("config", "partial.json", json.dumps({"server": {"port": 9000, "workers": 2}, "model": {"bits": 32}, "dsch": {"widths": [16, 32, 64]}}).encode())
write("config", "overrides", json.dumps({"search": {"defaultK": 5}}).encode() + b"\0server.port=8081\nmodel.bits=128\nadmin.token=secret\ndsch.widths=[8,8,8]")
write("config", "wrong-type.json", b'{"server": {"port": "80"}, "images": 3}')
