#pragma once
// A folder of ordinary image files (PNG, JPEG, BMP, GIF, TGA, PNM, PSD, HDR, PIC:
// whatever stb_image decodes), brought to one square size and channel count.
//
// The folder is walked recursively, so class subfolders (ImageFolder-style trees)
// just work. Names starting with '.' (hidden files such as .DS_Store, and hidden
// folders) are skipped; every other regular file must be a decodable image: a stray
// file is an error naming it, not silently skipped. Files are ordered by their path
// relative to the folder, byte-wise, so the image indices do not depend on the
// filesystem's listing order.
#include <cstdint>
#include <string>
#include <vector>

#include "apps/data/dataset.h"

namespace dd::data {

// An image file's size as its header states it, before anything is decoded.
struct ImageHeader {
  int64_t width = 0, height = 0;
  int channels = 0;
  int64_t pixels() const { return width * height; }
};
// False when stb_image cannot read the header. The size is a magnitude: stb's BMP reader reports a
// top-down image's height as negative, and its decoder flips the sign.
bool read_image_header(const std::string& path, ImageHeader& header);

// The files load_image_folder reads, relative to dir, in index order.
std::vector<std::string> image_folder_files(const std::string& dir);

// Every image center-cropped to a square, resized to image_size x image_size (area
// averaging down, bilinear up) and converted to `channels` (1 = luminance, 3 = RGB;
// <= 0: 3 if any image has colour, else 1). Alpha is dropped, not composited.
Dataset load_image_folder(const std::string& dir, int64_t image_size, int64_t channels);

// Every image at its own size, which must be the same for all (FID reads generated images as they
// are: no crop, no resize); channels as above. An image of another size is an error naming it.
Dataset load_image_folder_as_is(const std::string& dir, int64_t channels);

}  // namespace dd::data
