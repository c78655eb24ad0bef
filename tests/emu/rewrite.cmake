# Rewrites one CUDA source (kernels/cuda/*.cu, engine/cuda/*.cu, tests/emu/*.cu) into a host-compilable <op>.emu.cpp:
#   kernel<<<grid, block, smem, stream>>>(args)
#     ->  ::dd_emu::Launch(grid, block, smem, stream).named("kernel").run(kernel, args)
#   extern __shared__ T name[];  ->  T* const name = ::dd_emu::dynamic_shared<T>();
#   __shared__ T a[..], b[..];   ->  the same, then DD_EMU_SHARED(a) DD_EMU_SHARED(b) (registers the arrays,
#                                    so ldmatrix and cp.async can check their addresses)
#   __launch_bounds__(MAX, MIN) kernel(..) {  ->  kernel(..) { DD_EMU_LAUNCH_BOUNDS(MAX, MIN); (block size checked)
# and prepends tests/emu/emu_prologue.h (harness, namespace renames).
# Usage: cmake -DIN=<file.cu> -DOUT=<file.emu.cpp> -DSRC_ROOT=<repo> -P rewrite.cmake
# With -DHEADER=ON (kernels/cuda/*.cuh, which launch kernels too) only the
# launches and shared declarations are rewritten; the copies shadow the originals on the include path.
# Fails, naming the construct, on a launch it cannot match or on a CUDA feature
# the harness does not emulate (in the file or in the kernels/cuda headers it includes).
cmake_policy(VERSION 3.20)  # -P scripts start with no policies set: while(TRUE) needs CMP0012 and CMP0130
file(READ "${IN}" src)

# Stops the build when `token` is still in `text` after its rewrite: what follows it, then `why`.
function(fail_if_left text token why)
  string(FIND "${text}" "${token}" left)
  if(NOT left EQUAL -1)
    string(SUBSTRING "${text}" ${left} 80 ctx)
    message(FATAL_ERROR "${IN}: ${why}: ${ctx}")
  endif()
endfunction()

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
fail_if_left("${src}" "<<<" "a kernel launch the rewrite cannot match (write it as kernel<<<cfg>>>(args) on one line up to the opening parenthesis)")

# extern __shared__ [__align__(n)] T name[];  (the emulated buffer is 128-byte aligned)
string(REGEX REPLACE "extern[ \t]+__shared__[ \t]+((__align__|alignas)[ \t]*\\([0-9]+\\)[ \t]*)?([A-Za-z_][A-Za-z0-9_: \t]*[A-Za-z0-9_])[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\3* const \\4 = ::dd_emu::dynamic_shared<\\3>();" src "${src}")
fail_if_left("${src}" "extern __shared__" "an extern __shared__ declaration the rewrite cannot match (write it as extern __shared__ [__align__(n)] T name[];)")

# __global__ void __launch_bounds__(MAX[, MIN]) kernel(params) {  ->  __global__ void kernel(params) {
# DD_EMU_LAUNCH_BOUNDS(MAX[, MIN]); ...: a launch of more than MAX threads a block fails on the device
# ("too many resources requested"), so the emulated kernel checks its block size as it starts. The
# bounds may hold parentheses; a declaration without a body just loses them.
set(rewritten "")
while(TRUE)
  string(FIND "${src}" "__global__ void __launch_bounds__(" at)
  if(at EQUAL -1)
    break()
  endif()
  string(SUBSTRING "${src}" 0 ${at} before)
  string(APPEND rewritten "${before}__global__ void")
  math(EXPR i "${at} + 34")
  string(LENGTH "${src}" len)
  set(depth 1)
  set(begin ${i})
  while(depth GREATER 0)
    if(NOT i LESS len)
      message(FATAL_ERROR "${IN}: __launch_bounds__( without its closing parenthesis")
    endif()
    string(SUBSTRING "${src}" ${i} 1 c)
    if(c STREQUAL "(")
      math(EXPR depth "${depth} + 1")
    elseif(c STREQUAL ")")
      math(EXPR depth "${depth} - 1")
    endif()
    math(EXPR i "${i} + 1")
  endwhile()
  math(EXPR n "${i} - 1 - ${begin}")
  string(SUBSTRING "${src}" ${begin} ${n} bounds)
  string(SUBSTRING "${src}" ${i} -1 src)
  string(FIND "${src}" "{" brace)
  string(FIND "${src}" ";" semi)
  if(brace EQUAL -1 OR (NOT semi EQUAL -1 AND semi LESS brace))
    continue()
  endif()
  math(EXPR brace "${brace} + 1")
  string(SUBSTRING "${src}" 0 ${brace} head)
  string(APPEND rewritten "${head} DD_EMU_LAUNCH_BOUNDS(${bounds});")
  string(SUBSTRING "${src}" ${brace} -1 src)
endwhile()
set(src "${rewritten}${src}")
string(REGEX REPLACE "//[^\n]*" "" code "${src}")
fail_if_left("${code}" "__launch_bounds__(" "__launch_bounds__ the rewrite cannot match (write it as __global__ void __launch_bounds__(...) kernel(...) {)")

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
