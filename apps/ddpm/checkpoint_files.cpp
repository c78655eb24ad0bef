#include "apps/ddpm/checkpoint_files.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace dd::ddpm {

namespace fs = std::filesystem;

namespace {
// (step, path) of the older copies beside newest, any order.
std::vector<std::pair<int64_t, std::string>> older_copies(const std::string& newest) {
  const fs::path p(newest);
  const std::string stem = p.stem().string() + ".step_", ext = p.extension().string();
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= stem.size() + ext.size() || name.compare(0, stem.size(), stem) != 0 ||
        name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
      continue;
    const std::string digits = name.substr(stem.size(), name.size() - stem.size() - ext.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) continue;
    out.emplace_back(std::stoll(digits), e.path().string());
  }
  return out;
}
}  // namespace

std::string checkpoint_step_path(const std::string& newest, int64_t step) {
  const fs::path p(newest);
  char num[32];
  std::snprintf(num, sizeof num, "%07lld", static_cast<long long>(step));
  return (p.parent_path() / (p.stem().string() + ".step_" + num + p.extension().string())).string();
}

std::vector<std::string> checkpoint_candidates(const std::string& newest) {
  std::vector<std::string> out;
  std::error_code ec;
  if (fs::exists(newest, ec)) out.push_back(newest);
  auto older = older_copies(newest);
  std::sort(older.begin(), older.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& o : older) out.push_back(o.second);
  return out;
}

void rotate_checkpoints(const std::string& newest, int64_t newest_step, int keep) {
  DD_CHECK(keep >= 1, "--keep-checkpoints must be >= 1, got ", keep);
  std::error_code ec;
  if (keep > 1 && newest_step >= 0 && fs::exists(newest, ec)) {
    const std::string copy = checkpoint_step_path(newest, newest_step);
    fs::remove(copy, ec);  // a copy of the same step from an earlier invocation
    DD_CHECK(::link(newest.c_str(), copy.c_str()) == 0, "keeping the previous checkpoint: cannot link ", newest,
             " to ", copy, ": ", std::strerror(errno));
  }
  auto older = older_copies(newest);
  std::sort(older.begin(), older.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = static_cast<std::size_t>(keep - 1); i < older.size(); ++i) fs::remove(older[i].second, ec);
}

SafeTensorsFile load_newest_checkpoint(const std::string& newest, std::FILE* log, std::string* used) {
  const std::vector<std::string> candidates = checkpoint_candidates(newest);
  DD_CHECK(!candidates.empty(), "--resume: no checkpoint at ", newest,
           " (start the run without --resume, or point --out at an existing run folder)");
  std::string failures;
  for (const std::string& c : candidates) {
    try {
      SafeTensorsFile f = load_safetensors(c);
      if (used) *used = c;
      if (!failures.empty()) std::fprintf(log, "resuming from %s\n", c.c_str());
      return f;
    } catch (const Error& e) {
      std::fprintf(log, "skipping %s: %s\n", c.c_str(), e.what());
      failures += str_cat("\n  ", c, ": ", e.what());
    }
  }
  DD_FAIL("--resume: no checkpoint in ", fs::path(newest).parent_path().string(), " loads:", failures);
}

}  // namespace dd::ddpm
