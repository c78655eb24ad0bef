#pragma once
// CIFAR-10, binary version: data_batch_1.bin .. data_batch_5.bin, each a run of
// 3073-byte records {label, 1024 R, 1024 G, 1024 B} with each plane a row-major
// 32x32 image. Labels are skipped (the diffusion model is unconditional);
// test_batch.bin is never read (it is the evaluation split).
#include <string>
#include <vector>

#include "apps/data/dataset.h"

namespace dd::data {

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarRecord = 1 + 3 * kCifarSide * kCifarSide;  // 3073

// The data_batch_<k>.bin files (k = 1..5) present in dir, in order; empty if none.
std::vector<std::string> cifar10_batch_files(const std::string& dir);

// Every image of the batch files present in dir as [N, 32, 32, 3]. Throws if there is
// none, or naming the file whose size is not a positive multiple of 3073 bytes.
Dataset load_cifar10(const std::string& dir);

// The same from an explicit list of batch files, concatenated in the given order.
Dataset load_cifar10_files(const std::vector<std::string>& files);

}  // namespace dd::data
