#include "CImageCodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

// The largest image accepted (a side of 32768 pixels or 256 M pixels): a corrupt header cannot
// make the decoder allocate gigabytes.
#define MAX_SIDE 32768
#define MAX_PIXELS (256u * 1024u * 1024u)

struct jpeg_failure {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int warned;   // a corrupt-data warning (e.g. a truncated file, filled with grey by libjpeg)
};

static void jpeg_fail(j_common_ptr info) {
    struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
    (*info->err->format_message)(info, failure->message);
    longjmp(failure->jump, 1);
}

// libjpeg decodes past damaged data with a warning (level -1) and made-up pixels; a data set
// must not train on those, so the first warning fails the file.
static void jpeg_warning(j_common_ptr info, int level) {
    struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
    if (level < 0 && !failure->warned) {
        (*info->err->format_message)(info, failure->message);
        failure->warned = 1;
    }
}

// Interleaved RGB or RGBA (src_channels 3 or 4) to `channels`, in place: alpha is dropped and
// grey is PIL's luma, L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 — what torchvision's loader
// (`Image.convert`) gives, so a folder decodes here as it does in PyTorch.
static void to_channels(uint8_t *p, size_t count, int src_channels, int channels) {
    for (size_t i = 0; i < count; i++) {
        const uint8_t *s = p + i * src_channels;
        if (channels == 1) {
            p[i] = (uint8_t)((s[0] * 19595u + s[1] * 38470u + s[2] * 7471u + 0x8000u) >> 16);
        } else {
            uint8_t r = s[0], g = s[1], b = s[2];
            p[3 * i] = r; p[3 * i + 1] = g; p[3 * i + 2] = b;
        }
    }
}

static int decode_jpeg(const uint8_t *data, size_t size, int channels, uint8_t **pixels, int *width, int *height,
                       char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct jpeg_failure failure;
    uint8_t *volatile out = NULL;
    info.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail;
    failure.manager.emit_message = jpeg_warning;
    failure.warned = 0;
    if (setjmp(failure.jump)) {
        snprintf(error, error_size, "not a readable JPEG: %s", failure.message);
        jpeg_destroy_decompress(&info);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
        snprintf(error, error_size, "a CMYK JPEG; convert it to RGB");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    if (info.image_width == 0 || info.image_height == 0 || info.image_width > MAX_SIDE || info.image_height > MAX_SIDE ||
        (size_t)info.image_width * info.image_height > MAX_PIXELS) {
        snprintf(error, error_size, "an image of %ux%u pixels is outside what apsweep reads (1 to %d per side)",
                 info.image_width, info.image_height, MAX_SIDE);
        jpeg_destroy_decompress(&info);
        return -1;
    }
    info.out_color_space = JCS_RGB;   // grey files too: converted below as PIL does
    jpeg_start_decompress(&info);
    size_t row = (size_t)info.output_width * (size_t)info.output_components;
    out = malloc(row * info.output_height);
    if (!out) {
        snprintf(error, error_size, "out of memory");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW line = out + row * info.output_scanline;
        jpeg_read_scanlines(&info, &line, 1);
    }
    jpeg_finish_decompress(&info);
    if (failure.warned) {
        snprintf(error, error_size, "a damaged or truncated JPEG: %s", failure.message);
        jpeg_destroy_decompress(&info);
        free(out);
        return -1;
    }
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    to_channels(out, (size_t)info.output_width * info.output_height, 3, channels);
    jpeg_destroy_decompress(&info);
    *pixels = out;
    return 0;
}

static int decode_png(const uint8_t *data, size_t size, int channels, uint8_t **pixels, int *width, int *height,
                      char *error, size_t error_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        snprintf(error, error_size, "not a readable PNG: %s", image.message);
        png_image_free(&image);
        return -1;
    }
    if (image.width == 0 || image.height == 0 || image.width > MAX_SIDE || image.height > MAX_SIDE ||
        (size_t)image.width * image.height > MAX_PIXELS) {
        snprintf(error, error_size, "an image of %ux%u pixels is outside what apsweep reads (1 to %d per side)",
                 image.width, image.height, MAX_SIDE);
        png_image_free(&image);
        return -1;
    }
    image.format = PNG_FORMAT_RGBA;   // converted below as PIL does
    uint8_t *out = malloc(PNG_IMAGE_SIZE(image));
    if (!out) {
        snprintf(error, error_size, "out of memory");
        png_image_free(&image);
        return -1;
    }
    if (!png_image_finish_read(&image, NULL, out, 0, NULL)) {
        snprintf(error, error_size, "not a readable PNG: %s", image.message);
        free(out);
        png_image_free(&image);
        return -1;
    }
    *width = (int)image.width;
    *height = (int)image.height;
    to_channels(out, (size_t)image.width * image.height, 4, channels);
    *pixels = out;
    return 0;
}

int apsweep_image_decode(const uint8_t *data, size_t size, int channels,
                         uint8_t **pixels, int *width, int *height, char *error, size_t error_size) {
    *pixels = NULL;
    if (channels != 1 && channels != 3) {
        snprintf(error, error_size, "channels must be 1 or 3, got %d", channels);
        return -1;
    }
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(data, size, channels, pixels, width, height, error, error_size);
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size >= 8 && memcmp(data, png_signature, 8) == 0)
        return decode_png(data, size, channels, pixels, width, height, error, error_size);
    snprintf(error, error_size, "neither a JPEG nor a PNG (its first bytes are not their signatures)");
    return -1;
}

void apsweep_image_free(uint8_t *pixels) { free(pixels); }
