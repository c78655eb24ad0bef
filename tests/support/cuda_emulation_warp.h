#pragma once
// Part of tests/support/cuda_emulation.h (include that one): warp collectives.
// Every one is a rendezvous (warp_join): the lanes of the mask leave their
// operands, the last one to arrive computes every lane's result, and the
// scheduler reports the warp as divergent if the rendezvous cannot complete.
//
// Shuffles and votes follow the CUDA programming guide (width segments, a source
// outside the segment returns the caller's own value). A lane reading a lane
// that is not a participant (outside the mask, or past the end of a partial
// last warp) gets 0xFF bytes (NaN as float): the hardware leaves that value
// undefined. mma.sync and ldmatrix are `.aligned`: all 32 lanes, mask full.
//
// Fragment layouts, from the PTX ISA ("Matrix Fragments for mma.m16n8k16 with
// floating point type", "... for mma.m16n8k8", "ldmatrix"); g = lane >> 2,
// t = lane % 4; element pairs packed low half first:
//  m16n8k16 .bf16/.f16, A (16x16, row): a0..a7 in 4 registers;
//    row g for a0,a1,a4,a5 and g+8 for a2,a3,a6,a7; col 2t+(i&1), +8 for i >= 4.
//  m16n8k16 B (16x8, col): b0..b3 in 2 registers; row 2t+(i&1), +8 for i >= 2; col g.
//  m16n8k8 .tf32, A (16x8): a0..a3 one per register; row g for a0,a2, g+8 for
//    a1,a3; col t for a0,a1, t+4 for a2,a3.  B (8x8): b0 row t, b1 row t+4; col g.
//  C/D (16x8 f32): c0..c3; row g for c0,c1, g+8 for c2,c3; col 2t+(i&1).
//  ldmatrix .m8n8 .b16: matrix i's row r address comes from lane 8i+r (.x1 uses
//    lanes 0-7, .x2 0-15, .x4 0-31; the other lanes' addresses are ignored).
//    Register i of lane l holds matrix i's row l/4, columns 2(l%4) and +1; with
//    .trans, column l/4, rows 2(l%4) and +1.
// Emulated arithmetic: bf16 and f16 inputs convert to float exactly; a .tf32
// operand is its fp32 register with the low 13 mantissa bits dropped (round
// first with cvt.rna.tf32.f32, warp::f32_to_tf32, so device and emulation
// agree). Each product is exact in fp32 (at most 11 x 11 significant bits);
// d = c, then d = fl(d + a[k] b[k]) for k = 0, 1, ..., K-1 in fp32. The hardware's
// order and internal precision are unspecified: tests compare with tolerances.
#include <cstring>

namespace dd_emu {
namespace detail {

inline uint32_t& seq_counter(Fiber& f, uint32_t mask) {
  for (auto& [m, n] : f.seq)
    if (m == mask) return n;
  f.seq.emplace_back(mask, 0);
  return f.seq.back().second;
}

inline bool same_collective(const WarpCall& a, const WarpCall& b) {
  // __syncwarp may be reached from different places; the others must be the same call.
  return a.op == b.op && a.variant == b.variant && a.mask == b.mask && a.seq == b.seq &&
         (a.op == WarpOp::SyncWarp || a.site == b.site);
}

inline uint32_t lanes_present(unsigned warp) {
  const unsigned n = std::min(kWarpSize, sched().nthreads - warp * kWarpSize);
  return n == kWarpSize ? 0xFFFFFFFFu : (1u << n) - 1u;
}

// The calling lane joins `call`; returns once every participant is there and
// `call.exec` has written every participant's `out`.
inline void warp_join(WarpCall& call, bool aligned) {
  Scheduler& s = sched();
  Fiber& me = current_thread(call.what);
  const unsigned lane = me.index % kWarpSize, base = me.index - lane;
  const uint32_t present = lanes_present(me.index / kWarpSize);
  if (aligned && present != 0xFFFFFFFFu)
    throw std::runtime_error("cuda_emulation: " + std::string(call.what) + " at " + call.site.str() + " in " +
                             where() + " needs all 32 lanes of the warp; this warp has " +
                             std::to_string(__builtin_popcount(present)) + " (the block has " +
                             std::to_string(s.nthreads) + " threads)");
  if (!(call.mask >> lane & 1u))
    throw std::runtime_error("cuda_emulation: " + std::string(call.what) + " at " + call.site.str() + " in " + where() +
                             " with mask " + hex(call.mask) + ", which leaves out the calling lane");
  const uint32_t part = call.mask & present;
  call.seq = seq_counter(me, call.mask)++;
  me.call = &call;
  me.state = State::AtWarp;
  WarpCall* lanes[kWarpSize] = {};
  bool all = true;
  for (unsigned l = 0; l < kWarpSize && all; ++l) {
    if (!(part >> l & 1u)) continue;
    const Fiber& f = s.fibers[base + l];
    all = f.state == State::AtWarp && same_collective(*f.call, call);
    lanes[l] = f.call;
  }
  if (!all) {
    swapcontext(&me.uc, &s.main);  // resumed by the lane that completes the collective
    return;
  }
  me.state = State::Ready;
  me.call = nullptr;
  call.exec(lanes, part);
  for (unsigned l = 0; l < kWarpSize; ++l) {
    if (!(part >> l & 1u) || l == lane) continue;
    s.fibers[base + l].state = State::Ready;
    s.fibers[base + l].call = nullptr;
  }
}

struct ShflIn {
  uint64_t value;
  int arg;  // source lane, delta or lane mask
  int width;
};

inline void exec_shfl(WarpCall* const* lanes, uint32_t part) {
  for (int l = 0; l < int(kWarpSize); ++l) {
    if (!(part >> l & 1u)) continue;
    const ShflIn& in = *static_cast<const ShflIn*>(lanes[l]->in);
    const int w = in.width, first = l & ~(w - 1), last = first + w - 1;
    int src = l;
    switch (lanes[l]->op) {
      case WarpOp::ShflIdx: src = first + (in.arg & (w - 1)); break;
      case WarpOp::ShflUp: src = unsigned(in.arg) > unsigned(l - first) ? l : l - in.arg; break;
      case WarpOp::ShflDown: src = unsigned(in.arg) > unsigned(last - l) ? l : l + in.arg; break;
      case WarpOp::ShflXor: src = (l ^ in.arg) > last ? l : l ^ in.arg; break;
      default: break;
    }
    uint64_t v = ~uint64_t{0};
    if (part >> src & 1u) v = static_cast<const ShflIn*>(lanes[src]->in)->value;
    *static_cast<uint64_t*>(lanes[l]->out) = v;
  }
}

template <class T>
T shfl(WarpOp op, const char* what, uint32_t mask, T v, int arg, int width, Site site) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "cuda_emulation: shuffles move 4 or 8 bytes");
  if (width < 1 || width > int(kWarpSize) || (width & (width - 1)) != 0)
    throw std::runtime_error("cuda_emulation: " + std::string(what) + " at " + site.str() + " in " + where() +
                             ": width " + std::to_string(width) + " is not a power of two in 1..32");
  if ((op == WarpOp::ShflXor && (arg < 0 || arg > 31)) || ((op == WarpOp::ShflUp || op == WarpOp::ShflDown) && arg < 0))
    throw std::runtime_error("cuda_emulation: " + std::string(what) + " at " + site.str() + " in " + where() +
                             ": lane offset " + std::to_string(arg) + " out of range");
  ShflIn in{0, arg, width};
  std::memcpy(&in.value, &v, sizeof(T));
  uint64_t out = 0;
  WarpCall call{op, unsigned(sizeof(T)), mask, site, 0, what, &in, &out, exec_shfl};
  warp_join(call, false);
  T r;
  std::memcpy(&r, &out, sizeof(T));
  return r;
}

inline void exec_vote(WarpCall* const* lanes, uint32_t part) {
  uint32_t ballot = 0;
  for (unsigned l = 0; l < kWarpSize; ++l)
    if ((part >> l & 1u) && *static_cast<const int*>(lanes[l]->in) != 0) ballot |= 1u << l;
  for (unsigned l = 0; l < kWarpSize; ++l) {
    if (!(part >> l & 1u)) continue;
    uint32_t& out = *static_cast<uint32_t*>(lanes[l]->out);
    switch (lanes[l]->op) {
      case WarpOp::Any: out = ballot != 0; break;
      case WarpOp::All: out = ballot == part; break;
      default: out = ballot; break;
    }
  }
}

inline uint32_t vote(WarpOp op, const char* what, uint32_t mask, int pred, Site site) {
  uint32_t out = 0;
  WarpCall call{op, 0, mask, site, 0, what, &pred, &out, exec_vote};
  warp_join(call, false);
  return out;
}

inline void exec_nothing(WarpCall* const*, uint32_t) {}

// --- ldmatrix ---------------------------------------------------------------

inline const char* ldmatrix_name(unsigned variant) {
  static const char* names[] = {"",
                                "ldmatrix.x1",
                                "ldmatrix.x2",
                                "",
                                "ldmatrix.x4",
                                "",
                                "",
                                "",
                                "",
                                "ldmatrix.x1.trans",
                                "ldmatrix.x2.trans",
                                "",
                                "ldmatrix.x4.trans"};
  return names[variant];
}

inline void exec_ldmatrix(WarpCall* const* lanes, uint32_t) {
  const unsigned num = lanes[0]->variant & 7u;
  const bool trans = lanes[0]->variant & 8u;
  uint16_t m[4][8][8];
  for (unsigned i = 0; i < num; ++i)
    for (unsigned r = 0; r < 8; ++r) {
      const unsigned lane = 8 * i + r;
      const void* row = *static_cast<const void* const*>(lanes[lane]->in);
      const std::string why = shared_problem(row, 16, 16);
      if (!why.empty())
        throw std::runtime_error("cuda_emulation: " + std::string(lanes[0]->what) + " at " + lanes[0]->site.str() +
                                 " in " + launch_str() + ", warp " + std::to_string(sched().current->index / 32) +
                                 ": the row address of lane " + std::to_string(lane) + " (matrix " + std::to_string(i) +
                                 ", row " + std::to_string(r) + "): " + why);
      std::memcpy(m[i][r], row, 16);
    }
  for (unsigned l = 0; l < kWarpSize; ++l) {
    uint32_t* out = static_cast<uint32_t*>(lanes[l]->out);
    const unsigned a = l / 4, b = 2 * (l % 4);
    for (unsigned i = 0; i < num; ++i) {
      const uint16_t lo = trans ? m[i][b][a] : m[i][a][b], hi = trans ? m[i][b + 1][a] : m[i][a][b + 1];
      out[i] = uint32_t(lo) | uint32_t(hi) << 16;
    }
  }
}

// --- mma.sync ---------------------------------------------------------------

enum class MmaType : unsigned { BF16 = 1, F16 = 2, TF32 = 3 };

inline float bf16_bits_to_float(uint32_t h) {
  const uint32_t u = (h & 0xFFFFu) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 to float, exactly (subnormals, Inf, NaN included).
inline float f16_bits_to_float(uint32_t h) {
  const int e = int(h >> 10 & 0x1Fu), m = int(h & 0x3FFu);
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
  return sign * std::ldexp(float(e ? m + 1024 : m), (e ? e : 1) - 25);
}

inline float tf32_bits_to_float(uint32_t x) {
  const uint32_t u = x & 0xFFFFE000u;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct MmaIn {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};

inline void exec_mma(WarpCall* const* lanes, uint32_t) {
  const MmaType type = MmaType(lanes[0]->variant);
  const int K = type == MmaType::TF32 ? 8 : 16;
  float A[16][16], B[16][8], D[16][8];
  for (unsigned l = 0; l < kWarpSize; ++l) {
    const MmaIn& in = *static_cast<const MmaIn*>(lanes[l]->in);
    const int g = int(l >> 2), t = int(l & 3);
    if (type == MmaType::TF32) {
      for (int i = 0; i < 4; ++i) A[(i & 1) ? g + 8 : g][i >= 2 ? t + 4 : t] = tf32_bits_to_float(in.a[i]);
      B[t][g] = tf32_bits_to_float(in.b[0]);
      B[t + 4][g] = tf32_bits_to_float(in.b[1]);
    } else {
      auto conv = type == MmaType::BF16 ? bf16_bits_to_float : f16_bits_to_float;
      for (int i = 0; i < 8; ++i) {
        const uint32_t h = in.a[i / 2] >> (16 * (i & 1));
        A[(i < 2 || (i >= 4 && i < 6)) ? g : g + 8][2 * t + (i & 1) + (i >= 4 ? 8 : 0)] = conv(h);
      }
      for (int i = 0; i < 4; ++i) B[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = conv(in.b[i / 2] >> (16 * (i & 1)));
    }
    for (int i = 0; i < 4; ++i) D[i >= 2 ? g + 8 : g][2 * t + (i & 1)] = in.c[i];
  }
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c) {
      float d = D[r][c];
      for (int k = 0; k < K; ++k) d += A[r][k] * B[k][c];
      D[r][c] = d;
    }
  for (unsigned l = 0; l < kWarpSize; ++l) {
    float* out = static_cast<float*>(lanes[l]->out);
    const int g = int(l >> 2), t = int(l & 3);
    for (int i = 0; i < 4; ++i) out[i] = D[i >= 2 ? g + 8 : g][2 * t + (i & 1)];
  }
}

}  // namespace detail

using detail::MmaType;

// The CUDA warp intrinsics (cuda_emulation.h maps __shfl_sync & co. here).
template <class T>
T shfl_sync(unsigned mask, T v, int src_lane, int width = 32, Site site = Site::here()) {
  return detail::shfl(detail::WarpOp::ShflIdx, "__shfl_sync", mask, v, src_lane, width, site);
}
template <class T>
T shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, Site site = Site::here()) {
  return detail::shfl(detail::WarpOp::ShflUp, "__shfl_up_sync", mask, v, int(delta), width, site);
}
template <class T>
T shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, Site site = Site::here()) {
  return detail::shfl(detail::WarpOp::ShflDown, "__shfl_down_sync", mask, v, int(delta), width, site);
}
template <class T>
T shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, Site site = Site::here()) {
  return detail::shfl(detail::WarpOp::ShflXor, "__shfl_xor_sync", mask, v, lane_mask, width, site);
}
inline unsigned ballot_sync(unsigned mask, int pred, Site site = Site::here()) {
  return detail::vote(detail::WarpOp::Ballot, "__ballot_sync", mask, pred, site);
}
inline int any_sync(unsigned mask, int pred, Site site = Site::here()) {
  return int(detail::vote(detail::WarpOp::Any, "__any_sync", mask, pred, site));
}
inline int all_sync(unsigned mask, int pred, Site site = Site::here()) {
  return int(detail::vote(detail::WarpOp::All, "__all_sync", mask, pred, site));
}
inline void syncwarp(unsigned mask = 0xFFFFFFFFu, Site site = Site::here()) {
  detail::WarpCall call{detail::WarpOp::SyncWarp, 0, mask, site, 0, "__syncwarp", nullptr, nullptr,
                        detail::exec_nothing};
  detail::warp_join(call, false);
}

// ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16: `row` is this lane's
// row address; r receives num registers.
inline void ldmatrix(unsigned num, bool trans, uint32_t* r, const void* row, Site site = Site::here()) {
  const unsigned variant = num | (trans ? 8u : 0u);
  uint32_t out[4] = {};
  detail::WarpCall call{detail::WarpOp::Ldmatrix, variant, 0xFFFFFFFFu, site, 0, detail::ldmatrix_name(variant),
                        &row, out, detail::exec_ldmatrix};
  detail::warp_join(call, true);
  for (unsigned i = 0; i < num; ++i) r[i] = out[i];
}

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 and
// m16n8k8.row.col.f32.tf32.tf32.f32: d may be c.
inline void mma_sync(MmaType type, float* d, const uint32_t* a, const uint32_t* b, const float* c,
                     Site site = Site::here()) {
  detail::MmaIn in;
  std::memcpy(in.a, a, sizeof in.a);
  std::memcpy(in.b, b, sizeof in.b);
  std::memcpy(in.c, c, sizeof in.c);
  float out[4];
  const char* what = type == MmaType::BF16  ? "mma.m16n8k16.bf16"
                     : type == MmaType::F16 ? "mma.m16n8k16.f16"
                                            : "mma.m16n8k8.tf32";
  detail::WarpCall call{detail::WarpOp::Mma, unsigned(type), 0xFFFFFFFFu, site, 0, what, &in, out, detail::exec_mma};
  detail::warp_join(call, true);
  std::memcpy(d, out, sizeof out);
}

// cvt.rna.tf32.f32: round to the nearest tf32 (10 mantissa bits), ties away from zero.
inline uint32_t f32_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0x7F800000u) return (u & 0x7FFFFFu) ? 0x7FFFFFFFu : u;  // NaN stays NaN, Inf stays
  return (u + 0x1000u) & 0xFFFFE000u;
}

}  // namespace dd_emu
