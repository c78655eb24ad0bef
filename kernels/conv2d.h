#pragma once
// 2-D convolution, stride 1, square kernel, the same zero padding on all sides
// (the U-Net's 1x1/p0 and 3x3/p1 convs, plain and weight-standardised):
//   x NHWC [B, H, W, Ci], w OHWI [Co, K, K, Ci], optional bias [Co]
//   y [B, Ho, Wo, Co], Ho = H + 2p - K + 1, Wo = W + 2p - K + 1
//   y[b,oh,ow,o] = bias[o] + sum_{kh,kw,ci} x[b, oh+kh-p, ow+kw-p, ci] * w[o,kh,kw,ci]
// (cross-correlation, as torch.nn.Conv2d). An absent bias is an undefined Tensor.
//
// x (every part of it) may be bfloat16 in these stride-1 entry points and in
// conv2d_group_norm_act's: the conv input the tape keeps under Precision::BF16
// (autograd/conv2d_keep.h), which is the operand that policy rounds x to anyway. The tensor-core
// path reads it in place of its fp32 pack; every other path reads its values widened to fp32, so
// the results are those of the fp32 x it was rounded from, under BF16 bit for bit. y and every
// gradient are fp32.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/context.h"
#include "engine/tensor.h"

namespace dd::kernels {

// The stride-1 square-kernel entry points' operand checks (errors name op, x and w): returns
// y's shape [B, Ho, Wo, Co].
Shape conv2d_out_shape(const char* op, const Tensor& x, const Tensor& w, int padding);

struct Conv2dGrads {
  Tensor dx, dw, dbias;  // each undefined unless asked for
};

// The plain convolution each stride-1 forward entry point runs (conv2d_forward, _parts, _up2,
// _unshuffle2 and conv2d_group_norm_act_forward), x as the conv reads it (the parts' channels
// together, the upsampled or rearranged map), reported to an observer when one is set:
// bench_conv2d records a U-Net's convolutions with it. A call made inside another reporting entry
// point (the CUDA compositions) is not reported again.
struct Conv2dCall {
  Shape x;  // [B, H, W, Ci]
  Shape w;  // [Co, K, K, Ci]
  int padding = 0;
  bool bias = false;
};
using Conv2dObserver = void (*)(const Conv2dCall&);
Conv2dObserver set_conv2d_observer(Conv2dObserver observer);  // returns the previous one
// Sets observer for its lifetime and restores the previous one, also when an exception leaves.
class Conv2dObserverScope {
 public:
  explicit Conv2dObserverScope(Conv2dObserver observer);
  ~Conv2dObserverScope();
  Conv2dObserverScope(const Conv2dObserverScope&) = delete;
  Conv2dObserverScope& operator=(const Conv2dObserverScope&) = delete;

 private:
  Conv2dObserver previous_;
};
// Reports call on construction (outermost scope on this thread only); entry points hold one while they run.
class Conv2dReport {
 public:
  explicit Conv2dReport(const Conv2dCall& call);
  ~Conv2dReport();
  Conv2dReport(const Conv2dReport&) = delete;
  Conv2dReport& operator=(const Conv2dReport&) = delete;
};

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias);
// conv2d_forward's y stored as bf16 (nearest even): bitwise conv2d_forward(x, w, bias, padding)
// .to(DType::BF16), for a consumer that rounds its input to bf16 anyway (the linear attention's qkv
// under BF16: autograd/linear_attention.cpp), which then reads half the bytes the conv wrote. The
// CUDA tensor-core conv (BF16, TF32) writes it from its accumulators; every other path rounds y.
Tensor conv2d_forward_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);

// The conv of x = concat(xs) along the channel dim (torch.cat(dim=1): the U-Net's skip
// connections), xs NHWC [B, H, W, C_i] agreeing in B, H and W, 1 to 4 of them; dx comes back in
// the same parts. On the CPU x is never built: every path gathers its rows or tiles from the parts
// and scatters dx into them (kernels/cpu/channel_parts.h); the results are bitwise the conv of the
// concatenation. The CUDA backend concatenates, runs the conv and splits dx.
struct Conv2dPartsGrads {
  std::vector<Tensor> dx;  // one per part when asked for, else empty
  Tensor dw, dbias;
};
// y's shape [B, Ho, Wo, Co]; errors name the op, each part and w.
Shape conv2d_parts_out_shape(const char* op, const std::vector<Tensor>& xs, const Tensor& w, int padding);
// [B, H, W, sum of the parts' channels]: the concatenation's shape (xs checked already).
Shape conv2d_parts_in_shape(const std::vector<Tensor>& xs);
Tensor conv2d_forward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding);
Conv2dPartsGrads conv2d_backward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& dy, int padding,
                                       bool need_dx, bool need_dw, bool need_dbias);

// conv2d(upsample2x(x), w, bias, padding) (the U-Net's Upsample: nearest 2x, then its conv), dx at
// x's resolution. On the CPU the upsampled map is never built: each path reads its rows or tiles
// straight from x (kernels/cpu/channel_parts.h), and dx is the conv's dx of the upsampled map
// summed over each 2x2 block (upsample2x_backward); bitwise the two ops for every K but 1 (a 1x1
// takes im2col here instead of the linear layer's GEMMs). The CUDA backend runs the two ops.
Tensor conv2d_forward_up2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);
Conv2dGrads conv2d_backward_up2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                bool need_dw, bool need_dbias);
// conv2d(pixel_unshuffle(x), w, bias, padding) (the U-Net's Downsample: the 2x2 rearrange of
// kernels/pixel_unshuffle.h, then its 1x1 conv), x [B, H, W, C] with H and W even, dx in x's
// shape. On the CPU the rearranged tensor is never built (each row block is gathered through the
// permutation, dx scattered back through it); bitwise the two ops. The CUDA backend runs them.
Tensor conv2d_forward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);
Conv2dGrads conv2d_backward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                       bool need_dw, bool need_dbias);

// The general geometry: stride s, zero padding per side and a possibly rectangular kernel,
// w OHWI [Co, KH, KW, Ci] (diffusers' Downsample2D with downsample_padding = 0 is F.pad(x, (0, 1, 0, 1))
// then a 3x3 stride-2 conv: {2, 0, 0, 1, 1}; Inception-v3's 1x7 conv with padding (0, 3) is {1, 0, 3, 0, 3}).
//   Ho = (H + pad_top + pad_bottom - KH) / s + 1, Wo = (W + pad_left + pad_right - KW) / s + 1
//   y[b,oh,ow,o] = bias[o] + sum_{kh,kw,ci} x[b, oh*s + kh - pad_top, ow*s + kw - pad_left, ci] * w[o,kh,kw,ci]
// A square kernel at stride 1 with the same padding on every side runs the kernels above (their
// fast paths); anything else, every KH != KW included, runs the strided kernels
// (kernels/cpu/conv2d_strided.cpp, kernels/cuda/conv2d_strided.cu).
struct Conv2dGeometry {
  int stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool plain() const { return stride == 1 && pad_top == pad_left && pad_top == pad_bottom && pad_top == pad_right; }
};
// Whether conv2d_forward/backward(geo) hand (w, geo) to the stride-1 square kernels above: a plain
// geometry and a square kernel (w OHWI with KH == KW). ag::conv2d decides the same way.
bool conv2d_uses_plain_path(const Tensor& w, const Conv2dGeometry& geo);
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo);
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                            bool need_dx, bool need_dw, bool need_dbias);

namespace cpu {
Tensor conv2d_strided_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo);
Conv2dGrads conv2d_strided_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                                    bool need_dx, bool need_dw, bool need_dbias);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor conv2d_strided_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dGeometry& geo);
Conv2dGrads conv2d_strided_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Conv2dGeometry& geo,
                                    bool need_dx, bool need_dw, bool need_dbias);
}  // namespace cuda
#endif

namespace cpu {
// The CPU backend lowers the conv to GEMMs over im2col buffers of chunk_rows
// output pixels each (see kernels/cpu/conv2d.cpp); chunk_rows = 0 picks a
// cache-sized chunk from the shapes alone. Tests pass small values to run the
// multi-chunk paths on small shapes. For a given chunk_rows the results are
// bitwise the same run to run and for any thread count (the 1x1/p0 conv is a
// linear layer, whose GEMMs also run in fixed blocks: kernels/cpu/linear.cpp).
// 3x3/p1 forwards and backward-data run Winograd F(2x2,3x3) or F(4x4,3x3), and
// backward-weight F(2x2,3x3), instead where a measured per-shape rule says it is
// faster (kernels/cpu/conv2d_winograd.h; DD_CPU_CONV3X3=im2col|winograd|winograd4
// forces a path); chunk_rows then counts output tiles per chunk, with the same
// determinism.
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, int64_t chunk_rows = 0);
// conv2d_forward (the same y, bitwise) that also fills sums[k * B*Co + b*Co + c] with y's sums over
// the pixels of image b (k = 0) and of their squares (k = 1), in double: GroupNorm's statistics.
// im2col and Winograd take them from each chunk of output while it is in cache
// (kernels/cpu/chunk_stats.h); the 1x1 path makes a pass over y. Bitwise the same run to run and
// for any thread count, for a given chunk_rows.
Tensor conv2d_forward_sums(const Tensor& x, const Tensor& w, const Tensor& bias, int padding,
                           std::vector<double>& sums, int64_t chunk_rows = 0);
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias, int64_t chunk_rows = 0);
Tensor conv2d_forward_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);
// The same three with x in channel parts (conv2d_forward_parts above).
Tensor conv2d_forward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                            int64_t chunk_rows = 0);
Tensor conv2d_forward_parts_sums(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& bias, int padding,
                                 std::vector<double>& sums, int64_t chunk_rows = 0);
Conv2dPartsGrads conv2d_backward_parts(const std::vector<Tensor>& xs, const Tensor& w, const Tensor& dy, int padding,
                                       bool need_dx, bool need_dw, bool need_dbias, int64_t chunk_rows = 0);
// And of upsample2x(x) (conv2d_forward_up2 above).
Tensor conv2d_forward_up2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, int64_t chunk_rows = 0);
Conv2dGrads conv2d_backward_up2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                bool need_dw, bool need_dbias, int64_t chunk_rows = 0);
// And of pixel_unshuffle(x) (conv2d_forward_unshuffle2 above).
Tensor conv2d_forward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& bias, int padding,
                                 int64_t chunk_rows = 0);
Conv2dGrads conv2d_backward_unshuffle2(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                       bool need_dw, bool need_dbias, int64_t chunk_rows = 0);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
// Implicit-GEMM kernels (kernels/cuda/conv2d.cu); dw and dbias are reduced
// deterministically (fixed splits folded in order), so results repeat bitwise. With the current
// Context's precision TF32 or BF16 both run the tensor-core kernels below instead.
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                            bool need_dw, bool need_dbias);
Tensor conv2d_forward_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding);

// dbias[co] = sum over pixels of dy[.., co], deterministic (conv2d.cu), whatever the precision.
Tensor conv2d_bias_grad(const Tensor& dy);

// Tensor-core implicit GEMMs (kernels/cuda/conv2d_tc.cu), Precision::BF16 or TF32 only: each fp32
// operand is rounded once to bf16 (nearest even) or tf32 (nearest, ties away), products are summed
// in fp32; outputs are fp32 and repeat bitwise run to run. Any K, padding, Ci, Co.
struct TcConvOptions {
  int tile = -1;   // -1: the per-shape rule; 0 .. conv2d_tc_tile_count()-1 forces one (tests, bench)
  int splits = 0;  // dw split-K count over the pixels; 0: the rule (a constant target, not the GPU's)
  // Forward and dx: the halo kernel (kernels/cuda/conv2d_tc_halo.cuh: a block per 8x16 output patch
  // reads its input halo once per channel chunk for all K*K taps; K >= 2; with the sums epilogue too) instead
  // of tile; dw keeps tile. Picked by no rule: --conv-autotune may choose it, bench_conv2d --sweep times it.
  bool halo = false;
  // With halo: 128 output channels a block instead of 64 (each loaded halo read by twice the
  // channels: for Co, or dx's Ci, above 64). Picked by no rule: --conv-autotune may choose it.
  bool halo_wide = false;
  int dw_tile = -1;  // dw's tile when >= 0 (forward and dx keep tile); -1: tile
  // dw by the halo kernel (kernels/cuda/conv2d_tc_wgrad_halo.cuh: a block owns 64 x 32 channels and
  // all nine taps, one warp a tap, and reads each 64-pixel patch of dy and its input halo once for
  // all of them; 3x3 only) instead of dw_tile; splits then counts its patch splits (0: its rule).
  // Picked by no rule yet: --conv-autotune may choose it.
  bool dw_halo = false;
  // The default options: the rules', or the autotuned ones under --conv-autotune (kernels/conv_autotune.h).
  bool is_rule() const { return tile < 0 && splits == 0 && !halo && !halo_wide && dw_tile < 0 && !dw_halo; }
};
int conv2d_tc_tile_count();
const char* conv2d_tc_tile_name(int tile);  // e.g. "128x128_64x32_S3" (block, warp, stages)
// What the rules run for x [B, H, W, Ci] and w [Co, K, K, Ci] under prec (BF16 or TF32): the tile
// of the forward, of dx and of dw, and dw's split count (bench_conv2d --sweep prints it).
struct TcConvPlan {
  int fwd_tile, dx_tile, dw_tile, dw_splits;
  int dw_halo_splits;  // the dw halo kernel's split under its rule (0: K != 3, no halo kernel)
};
TcConvPlan conv2d_tc_plan(int64_t B, int64_t H, int64_t W, int64_t Ci, int64_t Co, int64_t K, int padding,
                          Precision prec);
Tensor conv2d_forward_tc(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                         const TcConvOptions& opt = {});
// conv2d_forward_tc (the same y, bitwise) that also sets sums to y's per-image channel sums for
// GroupNorm, cpu::conv2d_forward_sums's sums[k * B*Co + b*Co + c] (k = 0: y, k = 1: y^2) as 2*B*Co
// doubles on the device: a CUDA F32 tensor of 4*B*Co words (the engine has no f64 dtype), read by
// cuda::group_norm_act_forward_sums. Taken in the conv's epilogue from its accumulators, per
// (row block, image) partials folded in a fixed order: bitwise the same run to run for a given tile.
Tensor conv2d_forward_tc_sums(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                              Tensor& sums, const TcConvOptions& opt = {});
// conv2d_forward_tc with y written as bf16 by the epilogue, each value rounded to nearest even
// from the fp32 value conv2d_forward_tc writes: bitwise conv2d_forward_tc(...).to(DType::BF16).
Tensor conv2d_forward_tc_bf16(const Tensor& x, const Tensor& w, const Tensor& bias, int padding, Precision prec,
                              const TcConvOptions& opt = {});
Conv2dGrads conv2d_backward_tc(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                               bool need_dw, bool need_dbias, Precision prec, const TcConvOptions& opt = {});
// The options the three entry points above run when called with the default ones: the rules' ({})
// with autotuning off; with it on, the fastest for this shape (kernels/conv_autotune.h), timed on
// the call's own operands the first time the shape comes (kernels/cuda/conv2d_tc_tune.cu).
// Forward: every tile, and the halo kernel for K >= 2 (its 128-channel form too when
// Co > 64). Backward: dx as the forward (Ci for Co),
// dw every tile under its rule's split and the rule's tile under 1/4, 1/2, 2 and 4 times its split,
// and for 3x3 kernels the dw halo kernel under its rule's split and 1/4, 1/2, 2 and 4 times it.
TcConvOptions conv2d_tc_tuned_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding,
                                      Precision prec, bool sums);
TcConvOptions conv2d_tc_tuned_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                       bool need_dw, Precision prec);
// The options autotuning times (and bench_conv2d --sweep lists): for the forward or dx of a KxK conv
// with n outputs (Co, or dx's Ci), and for dw under plan (conv2d_tc_plan's).
std::vector<TcConvOptions> conv2d_tc_options(int64_t k, int64_t n);
std::vector<TcConvOptions> conv2d_tc_dw_options(const TcConvPlan& plan);
// An option as the autotuning table names it: "t<tile>", "t<tile> s<splits>" (dw; s0: the rule's
// split for that tile), "halo", "halo128", "halo s<splits>" (dw); and back (throws naming an
// unknown label).
std::string conv2d_tc_option_label(const TcConvOptions& opt, bool dw);
TcConvOptions conv2d_tc_option_from_label(const std::string& label, bool dw);
}  // namespace cuda
#endif

}  // namespace dd::kernels
