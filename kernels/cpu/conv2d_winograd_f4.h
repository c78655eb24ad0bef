#pragma once
// The transforms of Winograd F(4x4, 3x3) (Lavin & Gray 2015; interpolation points 0, 1, -1, 2, -2,
// infinity), for kernels/cpu/conv2d_winograd.cpp's driver, in the same layouts as its F(2x2):
//   B^T = [4  0 -5  0  1  0]    G = [ 1/4    0     0  ]    A^T = [1 1  1 1  1 0]
//         [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0 1 -1 2 -2 0]
//         [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0 1  1 4  4 0]
//         [0 -2 -1  2  1  0]        [1/24  1/12   1/6 ]          [0 1 -1 8 -8 1]
//         [0  2 -1 -2  1  0]        [1/24 -1/12   1/6 ]
//         [0  4  0 -5  0  1]        [  0     0     1  ]
// Output tile (th, tw) covers y rows 4th..4th+3 and reads the 6x6 input tile at rows 4th-1..4th+4.
// xi = 6 * row + column indexes the 36 transformed points.
#include <cstdint>
#include <cstring>

// The transforms below are written once over a lane type T: float for a remainder, or a GCC
// vector of 16 floats (8 doubles for the weights) that the compiler lowers to whatever the target
// has. GCC 12 left every `omp simd` version of these loops scalar: with 36 live values per channel
// it could not turn the local arrays into vector registers ("no vectype"). Each lane of a vector
// runs the same operations as the scalar path, and which channels take which path depends only on
// the channel count, so results stay fixed by the shapes.
namespace dd::kernels::cpu::winograd_f4 {

using vf16 = float __attribute__((vector_size(64)));
using vf8 = float __attribute__((vector_size(32)));
using vd8 = double __attribute__((vector_size(64)));

template <class T>
[[gnu::always_inline]] inline T load(const float* p) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return *p;
  } else {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
}
template <class T>
[[gnu::always_inline]] inline void store(float* p, T v) {
  if constexpr (sizeof(T) == sizeof(float))
    *p = v;
  else
    std::memcpy(p, &v, sizeof(T));
}

// The six rows of G applied to (a, b, c), in double: multiplications by the reciprocals (their
// double rounding, 2^-53 relative, is far below the float result's) instead of divisions.
template <class T>
[[gnu::always_inline]] inline void g_rows(T a, T b, T c, T* o) {
  constexpr double k6 = 1.0 / 6.0, k12 = 1.0 / 12.0, k24 = 1.0 / 24.0;
  const T ac = a + c;
  o[0] = 0.25 * a;
  o[1] = -k6 * (ac + b);
  o[2] = -k6 * (ac - b);
  o[3] = k24 * a + k12 * b + k6 * c;
  o[4] = k24 * a - k12 * b + k6 * c;
  o[5] = c;
}

// Lanes j..j+L of transform_weights below (F = float lanes of the loads, D = double lanes).
template <class F, class D>
[[gnu::always_inline]] inline void weights_at(const float* const* tap_src, int64_t j, float* dst, int64_t plane) {
  D g[3][3];
  for (int tap = 0; tap < 9; ++tap) {
    if constexpr (sizeof(F) == sizeof(float))
      g[tap / 3][tap % 3] = static_cast<double>(tap_src[tap][j]);
    else
      g[tap / 3][tap % 3] = __builtin_convertvector(load<F>(tap_src[tap] + j), D);
  }
  D t[3][6];  // t[c] = G (column c of g)
  for (int c = 0; c < 3; ++c) g_rows(g[0][c], g[1][c], g[2][c], t[c]);
  for (int r = 0; r < 6; ++r) {  // row r of (G g) G^T
    D u[6];
    g_rows(t[0][r], t[1][r], t[2][r], u);
    for (int s = 0; s < 6; ++s) {
      if constexpr (sizeof(F) == sizeof(float))
        dst[(r * 6 + s) * plane + j] = static_cast<float>(u[s]);
      else
        store(dst + (r * 6 + s) * plane + j, __builtin_convertvector(u[s], F));
    }
  }
}

// dst[xi * plane + j] = (G g_j G^T)[xi] for n kernels g_j, g_j[tap] = src[tap * tap_stride + j]
// (taps reversed when flip), in double, rounded once.
inline void transform_weights(const float* src, int64_t tap_stride, int64_t n, bool flip, float* __restrict dst,
                              int64_t plane) {
  const float* tap_src[9];
  for (int tap = 0; tap < 9; ++tap) tap_src[tap] = src + (flip ? 8 - tap : tap) * tap_stride;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) weights_at<vf8, vd8>(tap_src, j, dst, plane);
  for (; j < n; ++j) weights_at<float, double>(tap_src, j, dst, plane);
}

// B^T applied to (d0..d5), the operations grouped as NNPACK and Lavin do: 12 adds, 4 FMAs.
template <class T>
[[gnu::always_inline]] inline void bt6(T d0, T d1, T d2, T d3, T d4, T d5, T* o) {
  const T a = d3 + d4, b = d1 + d2, c = d4 - d3, e = d1 - d2, f = d4 - d2, h = d3 - d1;
  o[0] = 4.0f * d0 - 5.0f * d2 + d4;
  o[1] = a - 4.0f * b;
  o[2] = c + 4.0f * e;
  o[3] = f + 2.0f * h;
  o[4] = f - 2.0f * h;
  o[5] = 4.0f * d1 - 5.0f * d3 + d5;
}

// Channels c..c+L of input_tile below.
template <class T>
[[gnu::always_inline]] inline void input_at(const float* e, int64_t n, int64_t stride, float* o) {
  T t[6][6];  // t[s] = B^T (column s of d): the transpose of B^T d
  for (int s = 0; s < 6; ++s)
    bt6(load<T>(e + s * n), load<T>(e + (6 + s) * n), load<T>(e + (12 + s) * n), load<T>(e + (18 + s) * n),
        load<T>(e + (24 + s) * n), load<T>(e + (30 + s) * n), t[s]);
  for (int r = 0; r < 6; ++r) {  // row r of (B^T d) B: B^T along row r of B^T d
    T u[6];
    bt6(t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r], u);
    for (int s = 0; s < 6; ++s) store(o + (6 * r + s) * stride, u[s]);
  }
}

// v[xi * stride + c] = (B^T d B)[xi] for the channel-c 6x6 tile d, element (r, s) at
// d[(6r + s) * n + c] (a contiguous copy of the tile, zero halo included).
inline void input_tile(const float* __restrict d, int64_t n, int64_t stride, float* __restrict v) {
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) input_at<vf16>(d + c, n, stride, v + c);
  for (; c < n; ++c) input_at<float>(d + c, n, stride, v + c);
}

// A^T applied to (m0..m5).
template <class T>
[[gnu::always_inline]] inline void at6(T m0, T m1, T m2, T m3, T m4, T m5, T* o) {
  const T p = m1 + m2, q = m1 - m2, r = m3 + m4, s = m3 - m4;
  o[0] = m0 + p + r;
  o[1] = q + 2.0f * s;
  o[2] = p + 4.0f * r;
  o[3] = q + 8.0f * s + m5;
}

// Channels c..c+L of output_tile below.
template <class T>
[[gnu::always_inline]] inline void output_at(const float* mm, int64_t n, int64_t stride, const float* bias,
                                             float* q) {
  T t[6][4];  // t[s] = A^T (column s of m)
  for (int s = 0; s < 6; ++s)
    at6(load<T>(mm + s * stride), load<T>(mm + (6 + s) * stride), load<T>(mm + (12 + s) * stride),
        load<T>(mm + (18 + s) * stride), load<T>(mm + (24 + s) * stride), load<T>(mm + (30 + s) * stride), t[s]);
  const T b = load<T>(bias);
  for (int r = 0; r < 4; ++r) {  // row r of (A^T m) A
    T o[4];
    at6(t[0][r], t[1][r], t[2][r], t[3][r], t[4][r], t[5][r], o);
    for (int s = 0; s < 4; ++s) store(q + (4 * r + s) * n, b + o[s]);
  }
}

// q[(4i + j) * n + c] = bias[c] + (A^T m A)[i][j] for m[xi] = mm[xi * stride + c].
inline void output_tile(const float* __restrict mm, int64_t n, int64_t stride, const float* __restrict bias,
                        float* __restrict q) {
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) output_at<vf16>(mm + c, n, stride, bias + c, q + c);
  for (; c < n; ++c) output_at<float>(mm + c, n, stride, bias + c, q + c);
}

// A = (A^T)^T applied to (e0..e3): dL/dm of the forward's A^T m.
template <class T>
[[gnu::always_inline]] inline void a4(T e0, T e1, T e2, T e3, T* o) {
  const T p = e0 + e2, q = e1 + e3, r = e0 + 4.0f * e2, s = e1 + 4.0f * e3;
  o[0] = e0;
  o[1] = p + q;
  o[2] = p - q;
  o[3] = r + 2.0f * s;
  o[4] = r - 2.0f * s;
  o[5] = e3;
}

// Channels c..c+L of grad_tile below.
template <class T>
[[gnu::always_inline]] inline void grad_at(const float* const* e, int64_t c, int64_t stride, float* o) {
  T t[4][6];  // t[j] = A (column j of the 4x4 dy tile)
  for (int j = 0; j < 4; ++j)
    a4(load<T>(e[j] + c), load<T>(e[4 + j] + c), load<T>(e[8 + j] + c), load<T>(e[12 + j] + c), t[j]);
  for (int r = 0; r < 6; ++r) {  // row r of (A e) A^T
    T u[6];
    a4(t[0][r], t[1][r], t[2][r], t[3][r], u);
    for (int s = 0; s < 6; ++s) store(o + c + (6 * r + s) * stride, u[s]);
  }
}

// yh[xi * stride + c] = (A e A^T)[xi] for the channel-c 4x4 tile e of dy, e[i][j] = g[4i + j][c]
// (g[k] null: a position past the map's edge, zero): dL/dM of the forward's y = A^T M A.
inline void grad_tile(const float* const* g, const float* zero, int64_t n, int64_t stride, float* __restrict yh) {
  const float* e[16];
  for (int k = 0; k < 16; ++k) e[k] = g[k] ? g[k] : zero;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) grad_at<vf16>(e, c, stride, yh);
  for (; c < n; ++c) grad_at<float>(e, c, stride, yh);
}

// G^T applied to (m0..m5), in double.
template <class T>
[[gnu::always_inline]] inline void gt3(T m0, T m1, T m2, T m3, T m4, T m5, T* o) {
  constexpr double k6 = 1.0 / 6.0, k12 = 1.0 / 12.0, k24 = 1.0 / 24.0;
  const T p = m1 + m2, r = m3 + m4;
  o[0] = 0.25 * m0 - k6 * p + k24 * r;
  o[1] = k6 * (m2 - m1) + k12 * (m3 - m4);
  o[2] = k6 * (r - p) + m5;
}

// Lanes j..j+L of transform_weight_grads below (F = float lanes, D = double lanes).
template <class F, class D>
[[gnu::always_inline]] inline void weight_grads_at(const float* src, int64_t plane, int64_t j, float* dst,
                                                   int64_t tap_stride) {
  D m[6][6];
  for (int xi = 0; xi < 36; ++xi) {
    if constexpr (sizeof(F) == sizeof(float))
      m[xi / 6][xi % 6] = static_cast<double>(src[xi * plane + j]);
    else
      m[xi / 6][xi % 6] = __builtin_convertvector(load<F>(src + xi * plane + j), D);
  }
  D t[6][3];  // t[s] = G^T (column s of m)
  for (int s = 0; s < 6; ++s) gt3(m[0][s], m[1][s], m[2][s], m[3][s], m[4][s], m[5][s], t[s]);
  for (int a = 0; a < 3; ++a) {  // row a of (G^T m) G
    D u[3];
    gt3(t[0][a], t[1][a], t[2][a], t[3][a], t[4][a], t[5][a], u);
    for (int b = 0; b < 3; ++b) {
      if constexpr (sizeof(F) == sizeof(float))
        dst[(a * 3 + b) * tap_stride + j] = static_cast<float>(u[b]);
      else
        store(dst + (a * 3 + b) * tap_stride + j, __builtin_convertvector(u[b], F));
    }
  }
}

// dst[tap * tap_stride + j] = (G^T m_j G)[tap] for n 6x6 matrices m_j[xi] = src[xi * plane + j]:
// dL/dg of the forward's U = G g G^T, in double, rounded once.
inline void transform_weight_grads(const float* src, int64_t plane, int64_t n, float* __restrict dst,
                                   int64_t tap_stride) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) weight_grads_at<vf8, vd8>(src, plane, j, dst, tap_stride);
  for (; j < n; ++j) weight_grads_at<float, double>(src, plane, j, dst, tap_stride);
}

}  // namespace dd::kernels::cpu::winograd_f4
