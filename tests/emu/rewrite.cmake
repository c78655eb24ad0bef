# Rewrites one CUDA source (kernels/cuda/*.cu, engine/cuda/*.cu, tests/emu/*.cu) into a host-compilable <op>.emu.cpp:
#   kernel<<<grid, block, smem, stream>>>(args)
#     ->  ::dd_emu::Launch(grid, block, smem, stream).named("kernel").run(kernel, args)
#   extern __shared__ T name[];  ->  T* const name = ::dd_emu::dynamic_shared<T>();
#   __shared__ T a[..], b[..];   ->  the same, then DD_EMU_SHARED(a) DD_EMU_SHARED(b) (registers the arrays,
#                                    so ldmatrix and cp.async can check their addresses)
# and prepends tests/emu/emu_prologue.h (harness, namespace renames).
# Usage: cmake -DIN=<file.cu> -DOUT=<file.emu.cpp> -DSRC_ROOT=<repo> -P rewrite.cmake
# With -DHEADER=ON (kernels/cuda/*.cuh, which launch kernels too) only the
# launches and shared declarations are rewritten; the copies shadow the originals on the include path.
# Fails, naming the construct, on a launch it cannot match or on a CUDA feature
# the harness does not emulate (in the file or in the kernels/cuda headers it includes).
file(READ "${IN}" src)

if(NOT HEADER)  # a .cu: scan it and the kernels/cuda headers it includes
  set(scan "${src}")
  string(REGEX MATCHALL "#include \"kernels/cuda/[A-Za-z0-9_]+\\.cuh?\"" incs "${src}")
  foreach(inc IN LISTS incs)
    string(REGEX REPLACE "#include \"(.*)\"" "\\1" rel "${inc}")
    # warp_ops.cuh holds the PTX and intrinsics behind wrappers that have an emulated path.
    if(NOT rel STREQUAL "kernels/cuda/warp_ops.cuh")
      file(READ "${SRC_ROOT}/${rel}" text)
      string(APPEND scan "${text}")
    endif()
  endforeach()
  string(REGEX REPLACE "//[^\n]*" "" scan "${scan}")  # comments may name anything
  # Emulated now: __shfl_*_sync, __ballot_sync, __any_sync, __all_sync, __syncwarp, extern __shared__,
  # cudaFuncSetAttribute, and (through kernels/cuda/warp_ops.cuh) mma.sync, ldmatrix and cp.async.
  foreach(bad "__shfl(_up|_down|_xor)?[ \t]*\\(" "__ballot[ \t]*\\(" "__any[ \t]*\\(" "__all[ \t]*\\("
          "__activemask" "__match_[a-z_]*" "__reduce_[a-z_]*_sync" "atomic[A-Z][A-Za-z]*" "cooperative_groups"
          "__threadfence[a-z_]*" "[^A-Za-z0-9_](asm|__asm__)[ \t]*(volatile[ \t]*)?\\("
          "cuda(Memcpy|Memset|Malloc|Free|Stream[A-Z]|Event|DeviceSynchronize)[A-Za-z]*"
          "cublas[A-Z][A-Za-z]*" "__ldg" "clock64")
    string(REGEX MATCH "${bad}" hit "${scan}")
    if(hit)
      message(FATAL_ERROR "${IN}: uses ${hit}, which tests/support/cuda_emulation.h does not emulate (inline PTX belongs in kernels/cuda/warp_ops.cuh); leave this file out of tests/emu/CMakeLists.txt or extend the harness")
    endif()
  endforeach()
endif()

# A kernel name, optionally with template arguments (no nested <>), then the launch.
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_:]*(<[^<>;]*>)?)<<<([^;]*)>>>\\(" "::dd_emu::Launch(\\3).named(\"\\1\").run(\\1, " src "${src}")
string(REGEX REPLACE "\\.run\\(([^,()]+), \\)" ".run(\\1)" src "${src}")
string(FIND "${src}" "<<<" left)
if(NOT left EQUAL -1)
  string(SUBSTRING "${src}" ${left} 80 ctx)
  message(FATAL_ERROR "${IN}: a kernel launch the rewrite cannot match (write it as kernel<<<cfg>>>(args) on one line up to the opening parenthesis): ${ctx}")
endif()

# extern __shared__ [__align__(n)] T name[];  (the emulated buffer is 128-byte aligned)
string(REGEX REPLACE "extern[ \t]+__shared__[ \t]+((__align__|alignas)[ \t]*\\([0-9]+\\)[ \t]*)?([A-Za-z_][A-Za-z0-9_: \t]*[A-Za-z0-9_])[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\3* const \\4 = ::dd_emu::dynamic_shared<\\3>();" src "${src}")
string(FIND "${src}" "extern __shared__" left)
if(NOT left EQUAL -1)
  string(SUBSTRING "${src}" ${left} 80 ctx)
  message(FATAL_ERROR "${IN}: an extern __shared__ declaration the rewrite cannot match (write it as extern __shared__ [__align__(n)] T name[];): ${ctx}")
endif()

# Static __shared__ declarations, one per line (matched without the ';', which would split the list).
string(REGEX MATCHALL "\n[ \t]*__shared__[^;{}\n]*" decls "${src}")
list(REMOVE_DUPLICATES decls)
foreach(decl IN LISTS decls)
  string(REGEX REPLACE "^[\n \t]*__shared__" "" names "${decl}")
  string(REGEX REPLACE "(__align__|alignas)[ \t]*\\([^)]*\\)" "" names "${names}")
  string(REGEX REPLACE "\\[[^]]*\\]" "" names "${names}")  # array bounds (no nested brackets)
  string(REPLACE "," ";" names "${names}")
  set(regs "")
  foreach(part IN LISTS names)
    string(REGEX MATCH "[A-Za-z_][A-Za-z0-9_]*[ \t]*$" name "${part}")
    string(STRIP "${name}" name)
    if(name STREQUAL "")
      message(FATAL_ERROR "${IN}: a __shared__ declaration the rewrite cannot read: ${decl}")
    endif()
    string(APPEND regs " DD_EMU_SHARED(${name})")
  endforeach()
  string(REPLACE "${decl};" "${decl};${regs}" src "${src}")
endforeach()

if(HEADER)
  file(WRITE "${OUT}" "// Generated from ${IN} by tests/emu/rewrite.cmake: do not edit.\n#line 1 \"${IN}\"\n${src}")
  return()
endif()
file(WRITE "${OUT}" "// Generated from ${IN} by tests/emu/rewrite.cmake: do not edit.\n#include \"tests/emu/emu_prologue.h\"\n#line 1 \"${IN}\"\n${src}")
