#include "apps/ddpm/sample_job.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "apps/report/image_grid.h"
#include "engine/durable_file.h"
#include "engine/error.h"

namespace dd::ddpm {
namespace fs = std::filesystem;

namespace {
// Hidden, so the folder stays a plain image folder for FID and training (image_folder.h skips dot files).
constexpr const char* kManifest = ".sample_job.json";
}

std::string SampleJob::file_name(int64_t index) const {
  int digits = 5;
  for (int64_t m = 100000; m <= n - 1 && digits < 18; m *= 10) ++digits;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%0*lld.png", digits, static_cast<long long>(index));
  return buf;
}

int64_t SampleJob::prepare(std::FILE* log) const {
  DD_CHECK(n > 0 && batch_size > 0, "sample job ", dir, ": n and batch size must be positive, got ", n, " and ",
           batch_size);
  std::error_code ec;
  fs::create_directories(dir, ec);
  DD_CHECK(!ec && fs::is_directory(dir), "--each-dir ", dir, ": cannot create the folder: ", ec.message());
  const std::string manifest = (fs::path(dir) / kManifest).string();
  remove_stale_temporaries(dir);  // PNGs a killed run was writing
  if (!fs::exists(manifest)) {
    for (const auto& e : fs::directory_iterator(dir, ec))
      DD_CHECK(e.path().extension() != ".png", "--each-dir ", dir, ": holds PNG files (", e.path().filename().string(),
               ") but no ", kManifest, ": samples of another job; use an empty folder");
    const std::string text = identity.dump(2) + "\n";
    write_file_durably(manifest, {{text.data(), text.size()}}, "sample_ddpm --each-dir");
    return 0;
  }
  nlohmann::json have;
  try {
    std::ifstream in(manifest);
    have = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    DD_FAIL("--each-dir ", dir, ": ", kManifest, " is not valid JSON (", e.what(), "); remove it or use another folder");
  }
  for (auto it = identity.begin(); it != identity.end(); ++it) {
    const auto found = have.find(it.key());
    DD_CHECK(found != have.end() && *found == it.value(), "--each-dir ", dir, ": holds the samples of another job (",
             it.key(), " is ", found == have.end() ? std::string("absent") : found->dump(), " there, ",
             it.value().dump(), " now); use another folder, or the same settings to continue it");
  }
  int64_t b = 0;
  for (; b < batches(); ++b) {
    const int64_t first = b * batch_size, last = std::min<int64_t>(n, first + batch_size);
    bool complete = true;
    for (int64_t i = first; i < last && complete; ++i) complete = fs::exists(fs::path(dir) / file_name(i));
    if (!complete) break;
  }
  if (log && b > 0)
    std::fprintf(log, "%s: continuing the job at image %lld of %d (%lld batches already written)\n", dir.c_str(),
                 static_cast<long long>(std::min<int64_t>(n, b * batch_size)), n, static_cast<long long>(b));
  return b;
}

void SampleJob::write_batch(int64_t b, const Tensor& images) const {
  const Shape& s = images.shape();
  const int64_t per = s[1] * s[2] * s[3];
  for (int64_t k = 0; k < s[0]; ++k) {
    Tensor one = Tensor::empty({1, s[1], s[2], s[3]});
    std::copy(images.data() + k * per, images.data() + (k + 1) * per, one.data());
    report::write_image_grid((fs::path(dir) / file_name(b * batch_size + k)).string(), one, 1, 0);
  }
}

}  // namespace dd::ddpm
