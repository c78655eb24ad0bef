// Durable files (engine/durable_file.h) and the checksum every safetensors file we write carries
// (engine/crc32c.h): known CRC-32C values, a flipped byte reported as corruption, files without a
// checksum still loading, and a full disk failing the save cleanly.
#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/crc32c.h"
#include "engine/durable_file.h"
#include "engine/safetensors.h"
#include "tests/support/temp_dir.h"

using namespace dd;
using dd::test::TempDir;

namespace {
void flip_byte(const std::string& path, std::streamoff from_end) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-from_end, std::ios::end);
  char c = 0;
  f.read(&c, 1);
  f.seekp(-from_end, std::ios::end);
  c = static_cast<char>(c ^ 0x10);
  f.write(&c, 1);
}
SafeTensorsFile sample_file(int64_t n) {
  SafeTensorsFile f;
  f.metadata["config"] = "{}";
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = 0.5f * static_cast<float>(i);
  f.put_f32("w", Tensor::from_vector({n}, v));
  return f;
}
}  // namespace

TEST_CASE("crc32c: the standard check values, and extending equals one pass", "[durable]") {
  const std::string digits = "123456789";
  CHECK(crc32c(digits.data(), digits.size()) == 0xE3069283u);  // the CRC-32C check value
  CHECK(crc32c("", 0) == 0u);
  const std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF);
  CHECK(crc32c(zeros.data(), 32) == 0x8A9136AAu);  // RFC 3720 B.4 test vectors
  CHECK(crc32c(ones.data(), 32) == 0x62A8AB43u);
  std::vector<uint8_t> inc(32);
  for (int i = 0; i < 32; ++i) inc[static_cast<std::size_t>(i)] = static_cast<uint8_t>(i);
  CHECK(crc32c(inc.data(), 32) == 0x46DD794Eu);
  std::vector<uint8_t> bytes(1001);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 11);
  const uint32_t whole = crc32c(bytes.data(), bytes.size());
  CHECK(crc32c_extend_portable(0, bytes.data(), bytes.size()) == whole);  // table and SSE4.2 agree
  CHECK(crc32c_extend_portable(0, digits.data(), digits.size()) == 0xE3069283u);
  for (std::size_t cut : {0, 1, 7, 8, 13, 500, 1001})
    CHECK(crc32c_extend(crc32c(bytes.data(), cut), bytes.data() + cut, bytes.size() - cut) == whole);
}

TEST_CASE("safetensors checksum: a flipped byte is corruption naming the file, files without one load",
          "[durable][safetensors]") {
  TempDir dir("durable");
  const std::string path = dir.file("w.safetensors");
  save_safetensors(path, sample_file(100));
  const SafeTensorsFile back = load_safetensors(path);
  CHECK(back.metadata.count("dd_data_crc32c") == 0);  // verified and dropped
  CHECK(back.metadata.at("config") == "{}");
  flip_byte(path, 5);  // inside the last tensor's data
  REQUIRE_THROWS_WITH(load_safetensors(path), Catch::Contains("corrupted") && Catch::Contains(path));
  // A file as PyTorch writes it, with no checksum: the same bytes without the key load.
  {
    const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    std::ofstream f(dir.file("torch.safetensors"), std::ios::binary);
    const uint64_t n = header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << header;
    const float v[2] = {1.5f, -2.0f};
    f.write(reinterpret_cast<const char*>(v), 8);
  }
  CHECK(load_safetensors(dir.file("torch.safetensors")).at("w").to_f32().to_vector() == std::vector<float>{1.5f, -2.0f});
  CHECK(dir.entries() == 2);  // no temporary file left beside them
}

TEST_CASE("durable files: a full disk fails the save, keeps the previous file and leaves no temporary",
          "[durable]") {
  TempDir dir("durable_full");
  const std::string mnt = dir.path() + "/small";
  std::filesystem::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
    std::printf("skipped: cannot mount a 64 KiB tmpfs here (needs root / CAP_SYS_ADMIN) to fill a disk\n");
    std::exit(77);  // ctest's skip code: reported as skipped, never passed
  }
  struct Unmount {
    std::string at;
    ~Unmount() { ::umount(at.c_str()); }
  } unmount{mnt};
  const std::string path = mnt + "/w.safetensors";
  save_safetensors(path, sample_file(4000));  // 16 KB: fits
  REQUIRE_THROWS_WITH(save_safetensors(path, sample_file(20000)), Catch::Contains("disk is full") &&
                                                                      Catch::Contains(path) &&
                                                                      Catch::Contains("untouched"));
  CHECK(load_safetensors(path).at("w").numel() == 4000);  // the previous file, intact
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(mnt)) {
    INFO(e.path().string());
    ++entries;
  }
  CHECK(entries == 1);
  REQUIRE_THROWS_WITH(write_file_durably(mnt + "/big.bin", {{std::string(100000, 'x').data(), 100000}}, "test"),
                      Catch::Contains("disk is full"));
}

TEST_CASE("durable files: temporaries of dead processes are removed, live ones and other files kept", "[durable]") {
  TempDir dir("durable_stale");
  const auto touch = [&](const std::string& name) { std::ofstream(dir.file(name)) << "x"; };
  // PID 2^22 + 12345 is above Linux's pid_max default: no such process.
  touch("checkpoint.safetensors.tmp-4206649");
  touch("model.safetensors.tmp-" + std::to_string(::getpid()));  // ours: in use
  touch("model.safetensors.tmp-1");                               // init: alive
  touch("notes.tmp-abc");
  touch("model.safetensors");
  const std::vector<std::string> removed = remove_stale_temporaries(dir.path());
  REQUIRE(removed.size() == 1);
  CHECK(removed[0] == dir.file("checkpoint.safetensors.tmp-4206649"));
  CHECK(dir.entries() == 4);
}
