// libpng 1.6 (Debian: libpng-dev).
//
// libpng reports errors by longjmp to png_jmpbuf. Swift cannot use setjmp safely, so every libpng
// call that may fail runs inside one of the static inline functions below, which call setjmp
// themselves and keep the whole read or write loop in their own frame.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <png.h>

/// Size of the message buffers passed to the functions below.
#define DSCH_PNG_MESSAGE_CAPACITY 256

/// Reading from memory, and where the last error message goes.
typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char message[DSCH_PNG_MESSAGE_CAPACITY];
} dsch_png_reader;

/// Writing into a growing malloc'd buffer, and where the last error message goes.
typedef struct {
    unsigned char *data;
    size_t size;
    size_t capacity;
    char message[DSCH_PNG_MESSAGE_CAPACITY];
} dsch_png_writer;

static inline void dsch_png_reader_error(png_structp png, png_const_charp text) {
    dsch_png_reader *reader = (dsch_png_reader *)png_get_error_ptr(png);
    snprintf(reader->message, sizeof reader->message, "%s", text);
    png_longjmp(png, 1);
}

static inline void dsch_png_writer_error(png_structp png, png_const_charp text) {
    dsch_png_writer *writer = (dsch_png_writer *)png_get_error_ptr(png);
    snprintf(writer->message, sizeof writer->message, "%s", text);
    png_longjmp(png, 1);
}

static inline void dsch_png_ignore_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static inline void dsch_png_read_data(png_structp png, png_bytep out, size_t count) {
    dsch_png_reader *reader = (dsch_png_reader *)png_get_io_ptr(png);
    if (count > reader->size - reader->offset) {
        png_error(png, "the PNG data ends early (truncated file)");
    }
    memcpy(out, reader->data + reader->offset, count);
    reader->offset += count;
}

static inline void dsch_png_write_data(png_structp png, png_bytep data, size_t count) {
    dsch_png_writer *writer = (dsch_png_writer *)png_get_io_ptr(png);
    if (count > writer->capacity - writer->size) {
        size_t capacity = writer->capacity ? writer->capacity : 4096;
        while (count > capacity - writer->size) capacity *= 2;
        unsigned char *grown = (unsigned char *)realloc(writer->data, capacity);
        if (!grown) png_error(png, "out of memory while writing PNG");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, data, count);
    writer->size += count;
}

static inline void dsch_png_flush(png_structp png) { (void)png; }

/// Receives decoded pixels as 8-bit RGB: `count` pixels (3 bytes each, packed) that belong at
/// x = first_x + k·x_step of image row y. Plain images give whole rows; an interlaced (Adam7)
/// image gives each pass's sub-image rows, so every pixel arrives exactly once, in pass order.
/// It must be a plain function that returns: libpng's error handler longjmps only into
/// dsch_png_decode_rows' own frame, never across the callback.
typedef void (*dsch_png_row_callback)(void *context, size_t y, size_t first_x, size_t x_step,
                                      size_t count, const unsigned char *rgb);

/// Composites `count` RGBA pixels on white into packed RGB, in place: the write index 3i never
/// passes the read index 4i. Each channel is (value·alpha + 255·(255 − alpha) + 127) / 255.
static inline void dsch_png_composite_on_white(unsigned char *pixels, size_t count) {
    for (size_t i = 0; i < count; i++) {
        unsigned int alpha = pixels[4 * i + 3];
        unsigned int white = 255 * (255 - alpha) + 127;
        unsigned int red = pixels[4 * i], green = pixels[4 * i + 1], blue = pixels[4 * i + 2];
        pixels[3 * i] = (unsigned char)((red * alpha + white) / 255);
        pixels[3 * i + 1] = (unsigned char)((green * alpha + white) / 255);
        pixels[3 * i + 2] = (unsigned char)((blue * alpha + white) / 255);
    }
}

/// Decodes a PNG row by row, handing each row to `callback` as 8-bit RGB, so the caller never
/// needs a whole-image buffer: every colour type and bit depth is expanded to 8 bits, tRNS
/// becomes alpha, 16-bit samples are scaled with rounding, and alpha is composited on white.
/// Interlaced images are read pass by pass without libpng's deinterlacing, which would need the
/// whole image in memory. Only one row buffer of width·4 bytes is allocated, before setjmp so
/// that the error path can free it. Returns 0 on success, otherwise 1 with a message.
static inline int dsch_png_decode_rows(const unsigned char *data, size_t size,
                                       png_uint_32 width, png_uint_32 height,
                                       dsch_png_row_callback callback, void *context,
                                       char *message) {
    dsch_png_reader reader;
    memset(&reader, 0, sizeof reader);
    reader.data = data;
    reader.size = size;
    unsigned char *row = (unsigned char *)malloc((size_t)width * 4);
    if (!row) {
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "out of memory allocating a PNG row");
        return 1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader,
                                             dsch_png_reader_error, dsch_png_ignore_warning);
    if (!png) {
        free(row);
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "out of memory creating the PNG reader");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(row);
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "out of memory creating the PNG reader");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "%s", reader.message);
        png_destroy_read_struct(&png, &info, NULL);
        free(row);
        return 1;
    }
    png_set_read_fn(png, &reader, dsch_png_read_data);
    // The caller has already held the header to its own side and pixel limits; libpng's default
    // of 1,000,000 per side would otherwise refuse a legitimate 2,000,000×1 strip as "corrupt".
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    if (png_get_image_width(png, info) != width || png_get_image_height(png, info) != height) {
        png_error(png, "PNG dimensions differ from the ones read from its header");
    }
    int has_alpha = (png_get_color_type(png, info) & PNG_COLOR_MASK_ALPHA) != 0
        || png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    int interlaced = png_get_interlace_type(png, info) == PNG_INTERLACE_ADAM7;
    png_set_expand(png);
    png_set_scale_16(png);
    png_set_gray_to_rgb(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * (has_alpha ? 4 : 3)) {
        png_error(png, "PNG did not expand to 8-bit RGB or RGBA");
    }
    // Without png_set_interlace_handling, png_read_row returns the rows of each pass's sub-image
    // in turn (its pixels packed from the row's start) and skips passes that are empty because
    // the image is narrower or shorter than the pass's first column or row; the loop below skips
    // exactly those passes, so its row count matches what libpng delivers.
    int passes = interlaced ? 7 : 1;
    for (int pass = 0; pass < passes; pass++) {
        png_uint_32 rows = interlaced ? PNG_PASS_ROWS(height, pass) : height;
        png_uint_32 columns = interlaced ? PNG_PASS_COLS(width, pass) : width;
        if (rows == 0 || columns == 0) continue;
        size_t first_x = interlaced ? PNG_PASS_START_COL(pass) : 0;
        size_t x_step = interlaced ? (size_t)1 << PNG_PASS_COL_SHIFT(pass) : 1;
        for (png_uint_32 pass_row = 0; pass_row < rows; pass_row++) {
            // A cheap guard on the skipping rule above: libpng's own position must be ours.
            if (png_get_current_pass_number(png) != pass
                || png_get_current_row_number(png) != pass_row) {
                png_error(png, "PNG rows are out of step with the interlace passes");
            }
            png_read_row(png, row, NULL);
            if (has_alpha) dsch_png_composite_on_white(row, columns);
            size_t y = interlaced ? PNG_ROW_FROM_PASS_ROW(pass_row, pass) : pass_row;
            callback(context, y, first_x, x_step, columns, row);
        }
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(row);
    return 0;
}

/// Encodes packed rows (`row_bytes` each, in PNG's own sample layout: big-endian 16-bit, sub-byte
/// samples packed from the high bit) as a PNG. The palette is RGB triples; `trans_alpha` holds
/// palette alphas; `has_trans_color` selects a tRNS colour key for gray (`trans_red` is the gray
/// level) or RGB images. On success returns 0 and a malloc'd buffer the caller must free().
static inline int dsch_png_encode(const unsigned char *rows, png_uint_32 width, png_uint_32 height,
                                  size_t row_bytes, int bit_depth, int color_type, int interlaced,
                                  const unsigned char *palette, int palette_count,
                                  const unsigned char *trans_alpha, int trans_count,
                                  int has_trans_color, unsigned int trans_red,
                                  unsigned int trans_green, unsigned int trans_blue,
                                  unsigned char **output, size_t *output_size, char *message) {
    dsch_png_writer writer;
    memset(&writer, 0, sizeof writer);
    *output = NULL;
    *output_size = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &writer,
                                              dsch_png_writer_error, dsch_png_ignore_warning);
    if (!png) {
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "out of memory creating the PNG writer");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "out of memory creating the PNG writer");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(message, DSCH_PNG_MESSAGE_CAPACITY, "%s", writer.message);
        png_destroy_write_struct(&png, &info);
        free(writer.data);
        return 1;
    }
    png_set_write_fn(png, &writer, dsch_png_write_data, dsch_png_flush);
    // libpng checks its per-side read limits (1,000,000 by default) on write too.
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_IHDR(png, info, width, height, bit_depth, color_type,
                 interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette_count > 0) {
        png_color colors[256];
        for (int i = 0; i < palette_count && i < 256; i++) {
            colors[i].red = palette[3 * i];
            colors[i].green = palette[3 * i + 1];
            colors[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, colors, palette_count);
    }
    if (trans_count > 0 || has_trans_color) {
        png_color_16 key;
        memset(&key, 0, sizeof key);
        key.gray = (png_uint_16)trans_red;
        key.red = (png_uint_16)trans_red;
        key.green = (png_uint_16)trans_green;
        key.blue = (png_uint_16)trans_blue;
        // libpng marks a colour key valid only with a count of one.
        png_set_tRNS(png, info, has_trans_color ? NULL : trans_alpha,
                     has_trans_color ? 1 : trans_count, has_trans_color ? &key : NULL);
    }
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++) {
        for (png_uint_32 y = 0; y < height; y++) {
            png_write_row(png, rows + (size_t)y * row_bytes);
        }
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *output = writer.data;
    *output_size = writer.size;
    return 0;
}
