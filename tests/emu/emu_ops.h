#pragma once
// Declares the emulated ops, dd::kernels::emu::<op> (and dd::emu_rng::randn_fill, dd::emu_cast::cast and fill),
// with the signatures of dd::kernels::cuda::<op>: the op headers read with
// `cuda` renamed, exactly as the generated <op>.emu.cpp files read them. Include
// this before any other header of the project in a test file.
#define cuda emu
#define cuda_rng emu_rng
#define cuda_cast emu_cast
#include "engine/cast.h"
#include "engine/rng.h"
#include "kernels/activation.h"
#include "kernels/adam.h"
#include "kernels/attention.h"
#include "kernels/broadcast.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/diffusion.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/group_norm.h"
#include "kernels/group_norm_act.h"
#include "kernels/linear_attention.h"
#include "kernels/loss.h"
#include "kernels/multi_tensor.h"
#include "kernels/pixel_unshuffle.h"
#include "kernels/pool2d.h"
#include "kernels/resize.h"
#include "kernels/time_embedding.h"
#include "kernels/timestep_embedding.h"
#include "kernels/timesteps.h"
#include "kernels/ddim_step.h"
#include "kernels/dpm_solver_step.h"
#include "kernels/threshold.h"
#include "kernels/upsample.h"
#include "kernels/weight_standardize.h"
#undef cuda_cast
#undef cuda_rng
#undef cuda
