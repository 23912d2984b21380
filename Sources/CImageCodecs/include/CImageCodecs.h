// JPEG and PNG decoding for image-folder data sets, with Debian's libjpeg-turbo and libpng.
//
// libjpeg reports errors by longjmp, which Swift cannot cross, so decoding happens here in C and
// returns a status and a message instead. Both decoders write 8-bit pixels, interleaved
// (height x width x channels), converted to `channels` = 1 (grey) or 3 (RGB) as PIL's
// `Image.convert` does (torchvision's loader): grey replicated into RGB, RGB to grey by PIL's luma,
// alpha dropped.
#ifndef APSWEEP_CIMAGECODECS_H
#define APSWEEP_CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

/// Decodes a JPEG or PNG file held in memory (told apart by their signatures). On success returns
/// 0 and sets *pixels (free with apsweep_image_free), *width and *height; otherwise returns -1 and
/// writes a message into error (at most error_size bytes, NUL-terminated).
int apsweep_image_decode(const uint8_t *data, size_t size, int channels,
                         uint8_t **pixels, int *width, int *height, char *error, size_t error_size);

void apsweep_image_free(uint8_t *pixels);

#endif
