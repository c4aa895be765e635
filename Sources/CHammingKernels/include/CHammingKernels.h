/// Hamming-distance kernels for blocks of packed binary codes, one per instruction set.
///
/// The package is built for generic x86-64, which has no POPCNT instruction, so each kernel is
/// compiled with its own `target` attribute and one is picked at start-up with
/// `dsch_hamming_isa_supported`. Codes are rows of `words` 64-bit words; bits past the code length
/// must be zero in both the codes and the query.
#ifndef DSCH_HAMMING_KERNELS_H
#define DSCH_HAMMING_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Scalar POPCNT instruction (x86-64 since Nehalem / Barcelona).
#define DSCH_HAMMING_ISA_POPCNT 1
/// AVX2: nibble-table popcount with VPSHUFB, sums with VPSADBW.
#define DSCH_HAMMING_ISA_AVX2 2
/// AVX-512 with VPOPCNTDQ (Ice Lake, Zen 4 and later).
#define DSCH_HAMMING_ISA_AVX512 3

/// Writes the distance of each of `rows` codes to `query` into `distances`.
typedef void (*dsch_hamming_distances_function)(const uint64_t *codes, size_t rows, size_t words,
                                                const uint64_t *query, uint32_t *distances);

/// Writes the row number (from 0 at `codes`) and distance of every row within `threshold`, in row
/// order, to `found_rows` and `found_distances` (room for `rows` each); returns how many.
typedef size_t (*dsch_hamming_filter_function)(const uint64_t *codes, size_t rows, size_t words,
                                               const uint64_t *query, uint32_t threshold,
                                               uint32_t *found_rows, uint32_t *found_distances);

/// The pair of kernels for one instruction set and code width.
typedef struct {
    dsch_hamming_distances_function distances;
    dsch_hamming_filter_function filter;
} dsch_hamming_kernel;

/// 1 when this CPU (and operating system, for the vector registers) supports `isa`, else 0.
int dsch_hamming_isa_supported(int isa);

/// The kernels for `isa` and codes of `words` words; both pointers are NULL when `isa` is unknown
/// or not compiled in. Does not check that the CPU supports `isa`.
dsch_hamming_kernel dsch_hamming_kernel_for(int isa, size_t words);

#endif
