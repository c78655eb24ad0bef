# Rewrites one kernels/cuda/*.cu file into a host-compilable <op>.emu.cpp:
#   kernel<<<grid, block, smem, stream>>>(args)  ->  ::dd_emu::Launch(grid, block, smem, stream).run(kernel, args)
# and prepends tests/emu/emu_prologue.h (harness, namespace renames).
# Usage: cmake -DIN=<file.cu> -DOUT=<file.emu.cpp> -DSRC_ROOT=<repo> -P rewrite.cmake
# With -DHEADER=ON (kernels/cuda/*.cuh, which launch kernels too) only the
# launches are rewritten; the copies shadow the originals on the include path.
# Fails, naming the construct, on a launch it cannot match or on a CUDA feature
# the harness does not emulate (in the file or in the kernels/cuda headers it includes).
file(READ "${IN}" src)

if(NOT HEADER)  # a .cu: scan it and the kernels/cuda headers it includes
  set(scan "${src}")
  string(REGEX MATCHALL "#include \"kernels/cuda/[A-Za-z0-9_]+\\.cuh?\"" incs "${src}")
  foreach(inc IN LISTS incs)
    string(REGEX REPLACE "#include \"(.*)\"" "\\1" rel "${inc}")
    file(READ "${SRC_ROOT}/${rel}" text)
    string(APPEND scan "${text}")
  endforeach()
  string(REGEX REPLACE "//[^\n]*" "" scan "${scan}")  # comments may name anything
  foreach(bad "__shfl[a-z_]*" "__ballot[a-z_]*" "__any_sync" "__all_sync" "__activemask" "atomic[A-Z][A-Za-z]*"
          "extern __shared__" "cooperative_groups" "__threadfence[a-z_]*" "cuda(Memcpy|Memset|Malloc|Free|Stream[A-Z]|Event|DeviceSynchronize|FuncSetAttribute)[A-Za-z]*"
          "cublas[A-Z][A-Za-z]*" "__ldg" "clock64" "__syncwarp")
    string(REGEX MATCH "${bad}" hit "${scan}")
    if(hit)
      message(FATAL_ERROR "${IN}: uses ${hit}, which tests/support/cuda_emulation.h does not emulate; leave this file out of tests/emu/CMakeLists.txt or extend the harness")
    endif()
  endforeach()
endif()

# A kernel name, optionally with template arguments (no nested <>), then the launch.
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_:]*(<[^<>;]*>)?)<<<([^;]*)>>>\\(" "::dd_emu::Launch(\\3).run(\\1, " src "${src}")
string(REGEX REPLACE "\\.run\\(([^,()]+), \\)" ".run(\\1)" src "${src}")
string(FIND "${src}" "<<<" left)
if(NOT left EQUAL -1)
  string(SUBSTRING "${src}" ${left} 80 ctx)
  message(FATAL_ERROR "${IN}: a kernel launch the rewrite cannot match (write it as kernel<<<cfg>>>(args) on one line up to the opening parenthesis): ${ctx}")
endif()

if(HEADER)
  file(WRITE "${OUT}" "// Generated from ${IN} by tests/emu/rewrite.cmake: do not edit.\n#line 1 \"${IN}\"\n${src}")
  return()
endif()
file(WRITE "${OUT}" "// Generated from ${IN} by tests/emu/rewrite.cmake: do not edit.\n#include \"tests/emu/emu_prologue.h\"\n#line 1 \"${IN}\"\n${src}")
