#pragma once
// Shared pieces of the implicit-GEMM convolution kernels (kernels/cuda/conv2d.cu):
// the block tile, the per-thread micro-tile product, and the im2col index math.
//
// Block tile kBM x kBN of C, reduction step kBK, 256 threads as 16 x 16, each
// thread a 4 x 4 micro-tile of rows ty*4.. and columns tx*4... Both operand tiles
// live in shared memory reduction-major (As[k][m], Bs[k][n]) so a thread reads
// its four rows / four columns of one k as one float4. Rows are padded by 4
// floats: keeps float4 alignment and spreads the transposed stores over banks.
#include <cuda_runtime.h>  // __host__ __device__ for host compilers too

#include <cstdint>

namespace dd::kernels::cuda::conv {

constexpr int kBM = 64, kBN = 64, kBK = 16;
constexpr int kTileThreads = 256;
constexpr int kPad = 4;

// A stride-1 conv's input and output geometry as the gathers see it. Sizes are
// int (the host checks that every GEMM dimension fits); addresses are int64.
// p may be negative: dx runs as a conv with padding K-1-p, which crops when p > K-1.
struct Geom {
  int b, h, w, c;  // input [b, h, w, c]
  int k, p;        // square kernel, padding
  int ho, wo;      // output spatial dims
};

// Output pixel m = (b, oh, ow) -> where its patch starts in the input.
struct PixelBase {
  int64_t image;  // offset of image b in the input
  int ih0, iw0;   // input row / column of tap (0, 0); may be outside the image
};

// An output pixel as (b, oh, ow), advanced without a division per step while
// the step stays within a row (the dw kernel walks pixels 16 at a time).
struct PixelCursor {
  int b, oh, ow;

  __host__ __device__ void advance(const Geom& g, int n) {
    ow += n;
    if (ow >= g.wo) {
      const int q = ow / g.wo;
      ow -= q * g.wo;
      oh += q;
      if (oh >= g.ho) {
        const int q2 = oh / g.ho;
        oh -= q2 * g.ho;
        b += q2;
      }
    }
  }
  __host__ __device__ PixelBase base(const Geom& g) const {
    return {int64_t(b) * g.h * g.w * g.c, oh - g.p, ow - g.p};
  }
};

__host__ __device__ inline PixelCursor pixel_cursor(const Geom& g, int m) {
  const int per_image = g.ho * g.wo;
  const int b = m / per_image, r = m - b * per_image;
  const int oh = r / g.wo;
  return {b, oh, r - oh * g.wo};
}

__host__ __device__ inline PixelBase pixel_base(const Geom& g, int m) { return pixel_cursor(g, m).base(g); }

// Reduction index kk = (kh, kw, ci) of the OHWI inner dims.
struct Tap {
  int kh, kw, ci;
};

__host__ __device__ inline Tap tap_of(const Geom& g, int kk) {
  const int khw = kk / g.c, ci = kk - khw * g.c;
  const int kh = khw / g.k;
  return {kh, khw - kh * g.k, ci};
}

// Offset in x of im2col element (pixel base, tap), or -1 in the padding.
__host__ __device__ inline int64_t gather_offset(const Geom& g, const PixelBase& pb, const Tap& t) {
  const int ih = pb.ih0 + t.kh, iw = pb.iw0 + t.kw;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return -1;
  return pb.image + (int64_t(ih) * g.w + iw) * g.c + t.ci;
}

// im2col element (pixel base, tap): the input value, 0 in the padding.
__host__ __device__ inline float gather(const float* x, const Geom& g, const PixelBase& pb, const Tap& t) {
  const int64_t off = gather_offset(g, pb, t);
  return off < 0 ? 0.0f : x[off];
}

#ifdef __CUDACC__
// acc[i][j] += sum_k As[k][ty*4+i] * Bs[k][tx*4+j] over one kBK step.
__device__ __forceinline__ void tile_product(const float (*As)[kBM + kPad], const float (*Bs)[kBN + kPad], int ty,
                                             int tx, float (&acc)[4][4]) {
#pragma unroll
  for (int k = 0; k < kBK; ++k) {
    const float4 a = *reinterpret_cast<const float4*>(&As[k][ty * 4]);
    const float4 b = *reinterpret_cast<const float4*>(&Bs[k][tx * 4]);
    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}
#endif

}  // namespace dd::kernels::cuda::conv
