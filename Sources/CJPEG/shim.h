// libjpeg-turbo (Debian: libjpeg-dev). jpeglib.h needs stdio.h first.
//
// libjpeg reports fatal errors through error_exit, which by default prints and calls exit().
// Swift cannot use setjmp safely, so every libjpeg call that may fail runs inside one of the
// static inline functions below: each calls setjmp itself and keeps the whole decode or encode
// loop in its own frame, so the longjmp from the error handler always lands in a live frame.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <limits.h>
#include <jpeglib.h>
#include <jerror.h>

/// Size of the message buffers passed to the functions below.
#define DSCH_JPEG_MESSAGE_CAPACITY JMSG_LENGTH_MAX

/// A progressive file can hold any number of scans, each re-reading the whole coefficient buffer;
/// a hostile file with thousands of tiny scans would burn CPU for minutes, so more are refused.
#define DSCH_JPEG_MAX_SCANS 1000

/// libjpeg's error manager extended with a jump target and the last message.
typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} dsch_jpeg_error;

static inline void dsch_jpeg_error_exit(j_common_ptr cinfo) {
    dsch_jpeg_error *error = (dsch_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, error->message);
    longjmp(error->jump, 1);
}

/// Warnings are silent except the two that mean the data ran out: libjpeg would pad the image
/// with grey and carry on, but a truncated upload must be reported, not indexed half grey.
static inline void dsch_jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER) {
        dsch_jpeg_error_exit(cinfo);
    }
    cinfo->err->num_warnings++;
}

static inline void dsch_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static inline void dsch_jpeg_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr decompress = (j_decompress_ptr)cinfo;
    if (decompress->input_scan_number > DSCH_JPEG_MAX_SCANS) {
        dsch_jpeg_error *error = (dsch_jpeg_error *)cinfo->err;
        snprintf(error->message, sizeof error->message,
                 "JPEG has more than %d scans", DSCH_JPEG_MAX_SCANS);
        longjmp(error->jump, 1);
    }
}

static inline void dsch_jpeg_install_handlers(dsch_jpeg_error *error) {
    jpeg_std_error(&error->manager);
    error->manager.error_exit = dsch_jpeg_error_exit;
    error->manager.emit_message = dsch_jpeg_emit_message;
    error->manager.output_message = dsch_jpeg_output_message;
    error->message[0] = 0;
}

/// Rounded x·y/255 for bytes.
static inline unsigned char dsch_jpeg_multiply(unsigned int x, unsigned int y) {
    unsigned int t = x * y + 128;
    return (unsigned char)((t + (t >> 8)) >> 8);
}

/// Receives one decoded row of 8-bit RGB: `count` pixels (3 bytes each, packed) that belong at
/// x = first_x + k·x_step of image row y. JPEG rows are always whole (first_x 0, x_step 1); the
/// signature matches the PNG shim's so one Swift function can receive rows from either.
/// It must be a plain function that returns: the libjpeg error handler longjmps only into
/// dsch_jpeg_decode_rows' own frame, never across the callback.
typedef void (*dsch_jpeg_row_callback)(void *context, size_t y, size_t first_x, size_t x_step,
                                       size_t count, const unsigned char *rgb);

/// dsch_jpeg_decode_rows succeeded, found damaged data, or went over its memory budget.
#define DSCH_JPEG_OK 0
#define DSCH_JPEG_CORRUPT 1
#define DSCH_JPEG_TOO_MUCH_MEMORY 2

/// Decodes a JPEG row by row, handing each row to `callback` as 8-bit RGB, so the caller never
/// needs a whole-image buffer. CMYK and YCCK are converted to RGB per row; files with an Adobe
/// marker hold inverted CMYK (Photoshop's convention, which libjpeg does not undo).
/// `max_memory` becomes libjpeg's `max_memory_to_use`, which bounds its whole-image ("virtual")
/// arrays: progressive and multi-scan files keep every coefficient in one. With no backing store
/// in Debian's build, libjpeg fails with JERR_NO_BACKING_STORE rather than exceed the budget,
/// reported as DSCH_JPEG_TOO_MUCH_MEMORY. Returns DSCH_JPEG_OK, or another status with a message.
static inline int dsch_jpeg_decode_rows(const unsigned char *data, unsigned long size,
                                        unsigned int width, unsigned int height, size_t max_memory,
                                        dsch_jpeg_row_callback callback, void *context,
                                        char *message) {
    struct jpeg_decompress_struct cinfo;
    dsch_jpeg_error error;
    struct jpeg_progress_mgr progress;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&progress, 0, sizeof progress);
    dsch_jpeg_install_handlers(&error);
    cinfo.err = &error.manager;
    if (setjmp(error.jump)) {
        // Fatal errors exit at once, so msg_code is the failing error's own code here. The scan
        // limit longjmps without setting it, but a stale code is never one of these fatal ones.
        int code = error.manager.msg_code;
        int memory = code == JERR_NO_BACKING_STORE || code == JERR_OUT_OF_MEMORY
            || code == JERR_TFILE_CREATE || code == JERR_TFILE_WRITE;
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY, "%s", error.message);
        jpeg_destroy_decompress(&cinfo);
        return memory ? DSCH_JPEG_TOO_MUCH_MEMORY : DSCH_JPEG_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    // Zero would mean "no limit" to libjpeg, so the smallest budget is one byte.
    size_t budget = max_memory > 0 ? max_memory : 1;
    cinfo.mem->max_memory_to_use = budget > (size_t)LONG_MAX ? LONG_MAX : (long)budget;
    progress.progress_monitor = dsch_jpeg_progress;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width != width || cinfo.image_height != height) {
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY,
                 "JPEG frame is %ux%u but its header said %ux%u",
                 cinfo.image_width, cinfo.image_height, width, height);
        jpeg_destroy_decompress(&cinfo);
        return DSCH_JPEG_CORRUPT;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int inverted = cinfo.saw_Adobe_marker;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != width || cinfo.output_height != height
        || cinfo.output_components != (cmyk ? 4 : 3)) {
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY, "JPEG output has an unexpected shape");
        jpeg_destroy_decompress(&cinfo);
        return DSCH_JPEG_CORRUPT;
    }
    // Allocated from libjpeg's image pool, so a longjmp cannot leak them.
    JSAMPARRAY decoded = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE,
                                                    width * (cmyk ? 4 : 3), 1);
    JSAMPARRAY converted = cmyk
        ? (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, width * 3, 1)
        : decoded;
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t row = cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, decoded, 1);
        if (cmyk) {
            const unsigned char *source = decoded[0];
            unsigned char *destination = converted[0];
            for (unsigned int x = 0; x < width; x++, source += 4, destination += 3) {
                unsigned int c = source[0], m = source[1], y = source[2], k = source[3];
                if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
                destination[0] = dsch_jpeg_multiply(c, k);
                destination[1] = dsch_jpeg_multiply(m, k);
                destination[2] = dsch_jpeg_multiply(y, k);
            }
        }
        callback(context, row, 0, 1, width, converted[0]);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return DSCH_JPEG_OK;
}

/// Encodes interleaved samples (`components` per pixel, in `input_space`) as a JPEG stored in
/// `file_space` (e.g. CMYK input stored as YCCK). `adobe_marker` < 0 keeps libjpeg's default.
/// On success returns 0 and a malloc'd buffer the caller must free().
static inline int dsch_jpeg_encode(const unsigned char *pixels, unsigned int width,
                                   unsigned int height, int components,
                                   J_COLOR_SPACE input_space, J_COLOR_SPACE file_space,
                                   int quality, int progressive, int adobe_marker,
                                   unsigned char **output, unsigned long *output_size,
                                   char *message) {
    struct jpeg_compress_struct cinfo;
    dsch_jpeg_error error;
    memset(&cinfo, 0, sizeof cinfo);
    dsch_jpeg_install_handlers(&error);
    cinfo.err = &error.manager;
    *output = NULL;
    *output_size = 0;
    if (setjmp(error.jump)) {
        // The destination's buffer may have been reallocated behind *output: leaking it on this
        // (programming-error-only) path is safer than freeing a stale pointer.
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY, "%s", error.message);
        jpeg_destroy_compress(&cinfo);
        *output = NULL;
        *output_size = 0;
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, output, output_size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = components;
    cinfo.in_color_space = input_space;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, file_space);
    if (adobe_marker >= 0) cinfo.write_Adobe_marker = adobe_marker ? TRUE : FALSE;
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)components;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return 0;
}
