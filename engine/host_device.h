#pragma once
// DD_HOST_DEVICE marks functions compiled for both host and device (engine/philox.h,
// engine/dtype.h): __host__ __device__ under nvcc, nothing for the host compiler.
#if defined(__CUDACC__)
#define DD_HOST_DEVICE __host__ __device__
#else
#define DD_HOST_DEVICE
#endif
