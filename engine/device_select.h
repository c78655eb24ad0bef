#pragma once
// One process per GPU (data-parallel training, apps/dist/nccl_comm.h): the process's work goes to
// GPU `ordinal`, not device 0. Makes it the device of the default context (engine/context.h) and
// the calling thread's current device. It must run before anything touches the GPU: once the
// default context exists on another device (its stream, handles and every tensor there), it
// throws instead of leaving half the process on each GPU. CUDA builds only.
namespace dd {
void select_default_device(int ordinal);
}  // namespace dd
