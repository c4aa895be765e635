// Hamming-distance kernels, each compiled for one instruction set with a `target` attribute so
// that the rest of the binary stays generic x86-64 and runs on CPUs without these instructions.
//
// Every kernel works on a block of rows: a tight loop with no allocation and no dispatch, the
// kernel for the code width having been chosen once by `dsch_hamming_kernel_for`. The filter
// variants return only the rows within a threshold, because after the first few blocks of a
// top-k search almost no row is, and handing every distance back to the caller would cost more
// than computing it.
#include "CHammingKernels.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))

#include <immintrin.h>

#define POPCNT_TARGET __attribute__((target("popcnt")))
#define AVX2_TARGET __attribute__((target("avx2,popcnt")))
#define AVX512_TARGET __attribute__((target("avx512vpopcntdq,avx512bw,avx512f,avx2,popcnt")))

// MARK: - POPCNT: one row at a time, a fixed number of words unrolled by the compiler.

POPCNT_TARGET static inline uint32_t popcnt_row(const uint64_t *code, const uint64_t *query, size_t words) {
    uint64_t total = 0;
    for (size_t word = 0; word < words; word++) total += (uint64_t)__builtin_popcountll(code[word] ^ query[word]);
    return (uint32_t)total;
}

POPCNT_TARGET static inline void popcnt_distances(const uint64_t *codes, size_t rows, size_t words,
                                                  const uint64_t *query, uint32_t *distances) {
    for (size_t row = 0; row < rows; row++) distances[row] = popcnt_row(codes + row * words, query, words);
}

POPCNT_TARGET static inline size_t popcnt_filter(const uint64_t *codes, size_t rows, size_t words, const uint64_t *query,
                                                 uint32_t threshold, uint32_t *found_rows, uint32_t *found_distances) {
    size_t found = 0;
    for (size_t row = 0; row < rows; row++) {
        uint32_t distance = popcnt_row(codes + row * words, query, words);
        // Written unconditionally and kept only by advancing `found`: no branch to mispredict.
        found_rows[found] = (uint32_t)row;
        found_distances[found] = distance;
        found += distance <= threshold;
    }
    return found;
}

// One pair of entry points per width; the constant width lets the compiler unroll the word loop.
#define POPCNT_WIDTH(name, WORDS)                                                                           \
    POPCNT_TARGET static void popcnt_distances_##name(const uint64_t *codes, size_t rows, size_t words,    \
                                                      const uint64_t *query, uint32_t *distances) {        \
        (void)words;                                                                                       \
        popcnt_distances(codes, rows, WORDS, query, distances);                                            \
    }                                                                                                      \
    POPCNT_TARGET static size_t popcnt_filter_##name(const uint64_t *codes, size_t rows, size_t words,     \
                                                     const uint64_t *query, uint32_t threshold,            \
                                                     uint32_t *found_rows, uint32_t *found_distances) {    \
        (void)words;                                                                                       \
        return popcnt_filter(codes, rows, WORDS, query, threshold, found_rows, found_distances);          \
    }

POPCNT_WIDTH(1, 1)
POPCNT_WIDTH(2, 2)
POPCNT_WIDTH(3, 3)
POPCNT_WIDTH(4, 4)
POPCNT_WIDTH(any, words)

static dsch_hamming_kernel popcnt_kernel_for(size_t words) {
    switch (words) {
    case 1: return (dsch_hamming_kernel){popcnt_distances_1, popcnt_filter_1};
    case 2: return (dsch_hamming_kernel){popcnt_distances_2, popcnt_filter_2};
    case 3: return (dsch_hamming_kernel){popcnt_distances_3, popcnt_filter_3};
    case 4: return (dsch_hamming_kernel){popcnt_distances_4, popcnt_filter_4};
    default: return (dsch_hamming_kernel){popcnt_distances_any, popcnt_filter_any};
    }
}

// MARK: - AVX2: four rows per step, popcount of bytes by table lookup (VPSHUFB), sums by VPSADBW.

/// Number of set bits in each byte.
AVX2_TARGET static inline __m256i avx2_byte_counts(__m256i value) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low_nibble = _mm256_set1_epi8(0x0f);
    __m256i low = _mm256_and_si256(value, low_nibble);
    __m256i high = _mm256_and_si256(_mm256_srli_epi16(value, 4), low_nibble);
    return _mm256_add_epi8(_mm256_shuffle_epi8(table, low), _mm256_shuffle_epi8(table, high));
}

/// Sum of the bytes of each 64-bit lane.
AVX2_TARGET static inline __m256i avx2_lane_sums(__m256i byte_counts) {
    return _mm256_sad_epu8(byte_counts, _mm256_setzero_si256());
}

/// Distances of rows r...r+3 of 64-bit codes, one per 64-bit lane.
AVX2_TARGET static inline __m256i avx2_four_rows_1(const uint64_t *codes, const __m256i *query) {
    __m256i value = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)codes), query[0]);
    return avx2_lane_sums(avx2_byte_counts(value));
}

/// Distances of four 128-bit rows: byte counts of both halves of a row are added before the sum.
AVX2_TARGET static inline __m256i avx2_four_rows_2(const uint64_t *codes, const __m256i *query) {
    __m256i first = avx2_byte_counts(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)codes), query[0]));
    __m256i second = avx2_byte_counts(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(codes + 4)), query[0]));
    // Swapping the 64-bit halves of each 128-bit lane and adding leaves each row's total in both halves.
    first = avx2_lane_sums(_mm256_add_epi8(first, _mm256_shuffle_epi32(first, 0x4E)));    // r0 r0 r1 r1
    second = avx2_lane_sums(_mm256_add_epi8(second, _mm256_shuffle_epi32(second, 0x4E))); // r2 r2 r3 r3
    __m256i mixed = _mm256_blend_epi32(first, second, 0xCC);                                 // r0 r2 r1 r3
    return _mm256_permute4x64_epi64(mixed, 0xD8);                                            // r0 r1 r2 r3
}

/// Distances of four rows of `chunks` * 256 bits: byte counts are accumulated over the chunks of a
/// row (at most 8 per chunk, so up to 31 chunks fit in a byte), then the four rows' lane sums are
/// transposed so that one vector holds the four totals.
AVX2_TARGET static inline __m256i avx2_four_rows_wide(const uint64_t *codes, size_t words, const __m256i *query,
                                                      size_t chunks) {
    __m256i partial[4];
    for (int row = 0; row < 4; row++) {
        const uint64_t *code = codes + (size_t)row * words;
        __m256i counts = _mm256_setzero_si256();
        for (size_t chunk = 0; chunk < chunks; chunk++) {
            __m256i value = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(code + 4 * chunk)), query[chunk]);
            counts = _mm256_add_epi8(counts, avx2_byte_counts(value));
        }
        __m256i sums = avx2_lane_sums(counts);                          // four partial sums of the row
        partial[row] = _mm256_add_epi64(sums, _mm256_shuffle_epi32(sums, 0x4E)); // a01 a01 a23 a23
    }
    __m256i rows01 = _mm256_blend_epi32(partial[0], partial[1], 0xCC); // r0.01 r1.01 r0.23 r1.23
    __m256i rows23 = _mm256_blend_epi32(partial[2], partial[3], 0xCC); // r2.01 r3.01 r2.23 r3.23
    __m256i low = _mm256_permute2x128_si256(rows01, rows23, 0x20);
    __m256i high = _mm256_permute2x128_si256(rows01, rows23, 0x31);
    return _mm256_add_epi64(low, high);
}

/// Stores the low 32 bits of each 64-bit lane.
AVX2_TARGET static inline void avx2_store_four(uint32_t *destination, __m256i sums) {
    __m256i packed = _mm256_permutevar8x32_epi32(sums, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    _mm_storeu_si128((__m128i *)destination, _mm256_castsi256_si128(packed));
}

/// Four rows per step for 16 rows, so that one test of a 16-bit mask skips the usual case of no
/// row within the threshold; leftover rows go through POPCNT.
#define AVX2_WIDTH(name, FOUR_ROWS, QUERY_VECTORS)                                                          \
    AVX2_TARGET static void avx2_distances_##name(const uint64_t *codes, size_t rows, size_t words,        \
                                                  const uint64_t *query, uint32_t *distances) {            \
        __m256i query_vectors[8];                                                                           \
        size_t chunks = QUERY_VECTORS;                                                                      \
        avx2_load_query(query, words, query_vectors, chunks);                                              \
        size_t row = 0;                                                                                     \
        for (; row + 4 <= rows; row += 4) avx2_store_four(distances + row, FOUR_ROWS);                     \
        for (; row < rows; row++) distances[row] = popcnt_row(codes + row * words, query, words);          \
    }                                                                                                       \
    AVX2_TARGET static size_t avx2_filter_##name(const uint64_t *codes, size_t rows, size_t words,         \
                                                 const uint64_t *query, uint32_t threshold,                \
                                                 uint32_t *found_rows, uint32_t *found_distances) {        \
        __m256i query_vectors[8];                                                                           \
        size_t chunks = QUERY_VECTORS;                                                                      \
        avx2_load_query(query, words, query_vectors, chunks);                                              \
        const __m256i limit = _mm256_set1_epi64x((long long)threshold);                                    \
        size_t found = 0, row = 0;                                                                          \
        for (; row + 16 <= rows; row += 16) {                                                               \
            __m256i sums[4];                                                                                \
            unsigned above = 0;                                                                             \
            for (int group = 0; group < 4; group++) {                                                       \
                size_t at = row + 4 * (size_t)group;                                                        \
                (void)at;                                                                                   \
                sums[group] = FOUR_ROWS_AT(at);                                                             \
                above |= (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(sums[group], limit))) \
                         << (4 * group);                                                                    \
            }                                                                                               \
            unsigned within = ~above & 0xFFFFu;                                                             \
            if (within == 0) continue;                                                                      \
            uint64_t values[16];                                                                            \
            for (int group = 0; group < 4; group++) _mm256_storeu_si256((__m256i *)(values + 4 * group), sums[group]); \
            while (within) {                                                                                \
                int bit = __builtin_ctz(within);                                                            \
                found_rows[found] = (uint32_t)(row + (size_t)bit);                                          \
                found_distances[found] = (uint32_t)values[bit];                                             \
                found++;                                                                                    \
                within &= within - 1;                                                                       \
            }                                                                                               \
        }                                                                                                   \
        for (; row < rows; row++) {                                                                         \
            uint32_t distance = popcnt_row(codes + row * words, query, words);                             \
            found_rows[found] = (uint32_t)row;                                                              \
            found_distances[found] = distance;                                                              \
            found += distance <= threshold;                                                                 \
        }                                                                                                   \
        return found;                                                                                       \
    }

/// Broadcasts the query into vectors: one 256-bit chunk per vector, or the query repeated to fill one.
AVX2_TARGET static inline void avx2_load_query(const uint64_t *query, size_t words, __m256i *vectors, size_t chunks) {
    if (words == 1) {
        vectors[0] = _mm256_set1_epi64x((long long)query[0]);
    } else if (words == 2) {
        vectors[0] = _mm256_setr_epi64x((long long)query[0], (long long)query[1], (long long)query[0], (long long)query[1]);
    } else {
        for (size_t chunk = 0; chunk < chunks; chunk++) vectors[chunk] = _mm256_loadu_si256((const __m256i *)(query + 4 * chunk));
    }
}

#define FOUR_ROWS_AT(at) avx2_four_rows_1(codes + (at), query_vectors)
AVX2_WIDTH(1, avx2_four_rows_1(codes + row, query_vectors), 1)
#undef FOUR_ROWS_AT
#define FOUR_ROWS_AT(at) avx2_four_rows_2(codes + 2 * (at), query_vectors)
AVX2_WIDTH(2, avx2_four_rows_2(codes + 2 * row, query_vectors), 1)
#undef FOUR_ROWS_AT
#define FOUR_ROWS_AT(at) avx2_four_rows_wide(codes + 4 * (at), 4, query_vectors, 1)
AVX2_WIDTH(4, avx2_four_rows_wide(codes + 4 * row, 4, query_vectors, 1), 1)
#undef FOUR_ROWS_AT
#define FOUR_ROWS_AT(at) avx2_four_rows_wide(codes + 8 * (at), 8, query_vectors, 2)
AVX2_WIDTH(8, avx2_four_rows_wide(codes + 8 * row, 8, query_vectors, 2), 2)
#undef FOUR_ROWS_AT
#define FOUR_ROWS_AT(at) avx2_four_rows_wide(codes + words * (at), words, query_vectors, chunks)
AVX2_WIDTH(wide, avx2_four_rows_wide(codes + words * row, words, query_vectors, chunks), words / 4)
#undef FOUR_ROWS_AT

static dsch_hamming_kernel avx2_kernel_for(size_t words) {
    switch (words) {
    case 1: return (dsch_hamming_kernel){avx2_distances_1, avx2_filter_1};
    case 2: return (dsch_hamming_kernel){avx2_distances_2, avx2_filter_2};
    case 4: return (dsch_hamming_kernel){avx2_distances_4, avx2_filter_4};
    case 8: return (dsch_hamming_kernel){avx2_distances_8, avx2_filter_8};
    default:
        // Whole 256-bit chunks only, up to 1024 bits (the query buffer holds 8 chunks); other widths
        // are rare enough that scalar POPCNT serves them.
        if (words % 4 == 0 && words <= 32) return (dsch_hamming_kernel){avx2_distances_wide, avx2_filter_wide};
        return popcnt_kernel_for(words);
    }
}

// MARK: - AVX-512 VPOPCNTDQ: eight 64-bit rows per step, or one row of up to eight words per step.

AVX512_TARGET static void avx512_distances_1(const uint64_t *codes, size_t rows, size_t words, const uint64_t *query,
                                             uint32_t *distances) {
    const __m512i broadcast = _mm512_set1_epi64((long long)query[0]);
    size_t row = 0;
    for (; row + 8 <= rows; row += 8) {
        __m512i sums = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512((const void *)(codes + row)), broadcast));
        _mm256_storeu_si256((__m256i *)(distances + row), _mm512_cvtepi64_epi32(sums));
    }
    for (; row < rows; row++) distances[row] = popcnt_row(codes + row * words, query, words);
}

AVX512_TARGET static size_t avx512_filter_1(const uint64_t *codes, size_t rows, size_t words, const uint64_t *query,
                                            uint32_t threshold, uint32_t *found_rows, uint32_t *found_distances) {
    const __m512i broadcast = _mm512_set1_epi64((long long)query[0]);
    const __m512i limit = _mm512_set1_epi64((long long)threshold);
    size_t found = 0, row = 0;
    for (; row + 8 <= rows; row += 8) {
        __m512i sums = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512((const void *)(codes + row)), broadcast));
        unsigned within = (unsigned)_mm512_cmple_epu64_mask(sums, limit);
        if (within == 0) continue;
        uint64_t values[8];
        _mm512_storeu_si512((void *)values, sums);
        while (within) {
            int bit = __builtin_ctz(within);
            found_rows[found] = (uint32_t)(row + (size_t)bit);
            found_distances[found] = (uint32_t)values[bit];
            found++;
            within &= within - 1;
        }
    }
    for (; row < rows; row++) {
        uint32_t distance = popcnt_row(codes + row * words, query, words);
        found_rows[found] = (uint32_t)row;
        found_distances[found] = distance;
        found += distance <= threshold;
    }
    return found;
}

/// One row of any multiple of 512 bits: popcounts accumulated per lane, one reduction per row.
AVX512_TARGET static inline uint32_t avx512_row_wide(const uint64_t *code, const uint64_t *query, size_t chunks) {
    __m512i total = _mm512_setzero_si512();
    for (size_t chunk = 0; chunk < chunks; chunk++) {
        __m512i value = _mm512_xor_si512(_mm512_loadu_si512((const void *)(code + 8 * chunk)),
                                         _mm512_loadu_si512((const void *)(query + 8 * chunk)));
        total = _mm512_add_epi64(total, _mm512_popcnt_epi64(value));
    }
    return (uint32_t)_mm512_reduce_add_epi64(total);
}

AVX512_TARGET static void avx512_distances_wide(const uint64_t *codes, size_t rows, size_t words, const uint64_t *query,
                                                uint32_t *distances) {
    for (size_t row = 0; row < rows; row++) distances[row] = avx512_row_wide(codes + row * words, query, words / 8);
}

AVX512_TARGET static size_t avx512_filter_wide(const uint64_t *codes, size_t rows, size_t words, const uint64_t *query,
                                               uint32_t threshold, uint32_t *found_rows, uint32_t *found_distances) {
    size_t found = 0;
    for (size_t row = 0; row < rows; row++) {
        uint32_t distance = avx512_row_wide(codes + row * words, query, words / 8);
        found_rows[found] = (uint32_t)row;
        found_distances[found] = distance;
        found += distance <= threshold;
    }
    return found;
}

static dsch_hamming_kernel avx512_kernel_for(size_t words) {
    if (words == 1) return (dsch_hamming_kernel){avx512_distances_1, avx512_filter_1};
    if (words % 8 == 0) return (dsch_hamming_kernel){avx512_distances_wide, avx512_filter_wide};
    // Narrow multi-word rows gain nothing from a per-row reduction; every AVX-512 CPU has AVX2.
    return avx2_kernel_for(words);
}

int dsch_hamming_isa_supported(int isa) {
    __builtin_cpu_init();
    switch (isa) {
    case DSCH_HAMMING_ISA_POPCNT: return __builtin_cpu_supports("popcnt") ? 1 : 0;
    case DSCH_HAMMING_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") ? 1 : 0;
    case DSCH_HAMMING_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx2") &&
                       __builtin_cpu_supports("popcnt")
                   ? 1
                   : 0;
    default: return 0;
    }
}

dsch_hamming_kernel dsch_hamming_kernel_for(int isa, size_t words) {
    switch (isa) {
    case DSCH_HAMMING_ISA_POPCNT: return popcnt_kernel_for(words);
    case DSCH_HAMMING_ISA_AVX2: return avx2_kernel_for(words);
    case DSCH_HAMMING_ISA_AVX512: return avx512_kernel_for(words);
    default: return (dsch_hamming_kernel){0, 0};
    }
}

#else

// Other architectures use the portable Swift kernels.
int dsch_hamming_isa_supported(int isa) {
    (void)isa;
    return 0;
}

dsch_hamming_kernel dsch_hamming_kernel_for(int isa, size_t words) {
    (void)isa;
    (void)words;
    return (dsch_hamming_kernel){0, 0};
}

#endif
