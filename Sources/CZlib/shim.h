// zlib (Debian: zlib1g-dev), for the gzip-compressed IDX files of Fashion-MNIST.
#include <zlib.h>
