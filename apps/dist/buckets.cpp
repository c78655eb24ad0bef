#include "apps/dist/buckets.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>

#include "engine/error.h"

namespace dd::dist {

std::vector<Bucket> partition_buckets(const std::vector<int64_t>& param_numel, int64_t max_elems) {
  DD_CHECK(max_elems > 0, "partition_buckets: the bucket size must be > 0 elements, got ", max_elems);
  std::vector<Bucket> out;
  int64_t offset = 0;
  for (std::size_t p = 0; p < param_numel.size(); ++p) {
    const int64_t n = param_numel[p];
    DD_CHECK(n >= 0, "partition_buckets: parameter ", p, " has ", n, " elements");
    const int64_t open = out.empty() ? 0 : out.back().end - out.back().begin;
    // A new bucket when this parameter would overfill the open one; a zero-sized parameter, or any
    // in a bucket still empty, joins the open one.
    if (out.empty() || (n > 0 && open > 0 && open + n > max_elems)) out.push_back({offset, offset, p, p});
    out.back().end += n;
    out.back().last = p + 1;
    offset += n;
  }
  return out;
}

int64_t bucket_elems_from_env() {
  const char* v = std::getenv("DD_DIST_BUCKET_MB");
  double mb = 25.0;
  if (v && *v) {
    char* end = nullptr;
    mb = std::strtod(v, &end);
    DD_CHECK(end && *end == '\0' && std::isfinite(mb) && mb > 0, "DD_DIST_BUCKET_MB must be a number of megabytes > 0, got '",
             v, "'");
  }
  const double elems = mb * 1024.0 * 1024.0 / sizeof(float);
  return std::max<int64_t>(1, static_cast<int64_t>(elems));
}

std::vector<int64_t> bucket_ready_after(const std::vector<Bucket>& buckets, const std::vector<int64_t>& last_node) {
  std::vector<int64_t> ready(buckets.size(), -1);
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    DD_CHECK(buckets[b].last <= last_node.size(), "bucket_ready_after: bucket ", b, " holds parameter ",
             buckets[b].last - 1, " but only ", last_node.size(), " parameters were traced");
    for (std::size_t p = buckets[b].first; p < buckets[b].last; ++p) ready[b] = std::max(ready[b], last_node[p]);
  }
  return ready;
}

std::vector<std::size_t> bucket_send_order(std::size_t buckets) {
  std::vector<std::size_t> order(buckets);
  std::iota(order.rbegin(), order.rend(), std::size_t{0});
  return order;
}

std::size_t buckets_sendable(const std::vector<std::size_t>& order, const std::vector<int64_t>& ready_after,
                             std::size_t sent, int64_t node) {
  while (sent < order.size() && ready_after.at(order[sent]) <= node) ++sent;
  return sent;
}

}  // namespace dd::dist
