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

/// Decodes a whole JPEG into `rgb` (width·height·3 bytes, allocated by the caller after it has
/// checked the header dimensions against its limits). CMYK and YCCK are converted to RGB; files
/// with an Adobe marker hold inverted CMYK (Photoshop's convention, which libjpeg does not undo).
/// Returns 0 on success, otherwise 1 with a message.
static inline int dsch_jpeg_decode(const unsigned char *data, unsigned long size,
                                   unsigned char *rgb, unsigned int width, unsigned int height,
                                   char *message) {
    struct jpeg_decompress_struct cinfo;
    dsch_jpeg_error error;
    struct jpeg_progress_mgr progress;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&progress, 0, sizeof progress);
    dsch_jpeg_install_handlers(&error);
    cinfo.err = &error.manager;
    if (setjmp(error.jump)) {
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY, "%s", error.message);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = dsch_jpeg_progress;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width != width || cinfo.image_height != height) {
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY,
                 "JPEG frame is %ux%u but its header said %ux%u",
                 cinfo.image_width, cinfo.image_height, width, height);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int inverted = cinfo.saw_Adobe_marker;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != width || cinfo.output_height != height
        || cinfo.output_components != (cmyk ? 4 : 3)) {
        snprintf(message, DSCH_JPEG_MESSAGE_CAPACITY, "JPEG output has an unexpected shape");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    // Allocated from libjpeg's image pool, so a longjmp cannot leak it.
    JSAMPARRAY cmyk_row = cmyk
        ? (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, width * 4, 1)
        : NULL;
    while (cinfo.output_scanline < cinfo.output_height) {
        unsigned char *destination = rgb + (size_t)cinfo.output_scanline * width * 3;
        if (!cmyk) {
            JSAMPROW row = destination;
            jpeg_read_scanlines(&cinfo, &row, 1);
            continue;
        }
        jpeg_read_scanlines(&cinfo, cmyk_row, 1);
        const unsigned char *source = cmyk_row[0];
        for (unsigned int x = 0; x < width; x++, source += 4, destination += 3) {
            unsigned int c = source[0], m = source[1], y = source[2], k = source[3];
            if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
            destination[0] = dsch_jpeg_multiply(c, k);
            destination[1] = dsch_jpeg_multiply(m, k);
            destination[2] = dsch_jpeg_multiply(y, k);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
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
