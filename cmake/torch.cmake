# LibTorch for moe-lab: the INTERFACE target moe_torch, MOE_TORCH_VERSION and MOE_TORCH_CUDA.
#
# LibTorch comes from a PyTorch 2.x install: experiments/setup.sh's .venv, or a researcher's
# own, named with -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
# (or -DTorch_DIR=.../torch/share/cmake/Torch).
#
# MOE_CUDA picks what the build links:
#   AUTO  LibTorch's CUDA libraries when the install has them and a CUDA toolkit (nvcc) is
#         found, else the CPU libraries only (libtorch_cpu, libc10): a PyPI `torch` wheel is
#         built for CUDA, and its CMake package insists on a toolkit, so without one the CPU
#         part is linked directly;
#   ON    CUDA, or an error saying what is missing;
#   OFF   the CPU libraries only.
set(MOE_CUDA AUTO CACHE STRING "Link LibTorch's CUDA libraries: AUTO, ON or OFF")
set_property(CACHE MOE_CUDA PROPERTY STRINGS AUTO ON OFF)
if(NOT MOE_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "MOE_CUDA=${MOE_CUDA}: expected one of AUTO, ON, OFF")
endif()

string(CONCAT _moe_torch_help
  "run `bash experiments/setup.sh` (installs the pinned PyTorch into .venv), or name an install: "
  "cmake -S . -B build -DCMAKE_PREFIX_PATH=\"$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')\"")

# Where to look, first found wins: CMAKE_PREFIX_PATH, Torch_DIR, setup.sh's .venv.
file(GLOB _moe_venv_torch "${CMAKE_CURRENT_SOURCE_DIR}/.venv/lib/python3*/site-packages/torch/share/cmake")
unset(MOE_TORCH_CMAKE_DIR CACHE)
foreach(_where IN ITEMS CMAKE_PREFIX_PATH Torch_DIR _moe_venv_torch)
  if(NOT MOE_TORCH_CMAKE_DIR AND ${_where})
    find_path(MOE_TORCH_CMAKE_DIR TorchConfig.cmake PATHS ${${_where}}
      PATH_SUFFIXES . Torch share/cmake/Torch NO_DEFAULT_PATH)
  endif()
endforeach()
if(NOT MOE_TORCH_CMAKE_DIR)
  message(FATAL_ERROR "LibTorch not found: ${_moe_torch_help}")
endif()
set(Torch_DIR "${MOE_TORCH_CMAKE_DIR}" CACHE PATH "LibTorch's CMake package" FORCE)
get_filename_component(MOE_TORCH_PREFIX "${MOE_TORCH_CMAKE_DIR}/../../.." ABSOLUTE)

function(_moe_torch_version dir out)
  include("${dir}/TorchConfigVersion.cmake")
  set(${out} "${PACKAGE_VERSION}" PARENT_SCOPE)
endfunction()
_moe_torch_version("${MOE_TORCH_CMAKE_DIR}" MOE_TORCH_VERSION)
if(MOE_TORCH_VERSION VERSION_LESS 2.1)
  message(FATAL_ERROR "LibTorch ${MOE_TORCH_VERSION} at ${MOE_TORCH_PREFIX}: moe-lab needs 2.1 or "
    "newer (Debian's libtorch-dev 1.13 is no longer supported; README, \"LibTorch versions\"): "
    "${_moe_torch_help}")
endif()

set(_moe_torch_has_cuda OFF)
if(EXISTS "${MOE_TORCH_PREFIX}/lib/libtorch_cuda.so")
  set(_moe_torch_has_cuda ON)
endif()
set(MOE_TORCH_CUDA OFF)
if(_moe_torch_has_cuda AND NOT MOE_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    set(MOE_TORCH_CUDA ON)
  elseif(MOE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MOE_CUDA=ON: LibTorch ${MOE_TORCH_VERSION} has CUDA libraries but no "
      "CUDA toolkit was found (install one, or name it with -DCUDAToolkit_ROOT=/usr/local/cuda); "
      "-DMOE_CUDA=OFF builds for the CPU")
  endif()
elseif(MOE_CUDA STREQUAL "ON")
  message(FATAL_ERROR "MOE_CUDA=ON: LibTorch ${MOE_TORCH_VERSION} at ${MOE_TORCH_PREFIX} has no "
    "CUDA libraries (a CPU-only build of PyTorch)")
endif()

add_library(moe_torch INTERFACE)
# libstdc++ first in every binary's library search order: the wheels' libtorch_cpu (2.11's
# libtorch too) export their own copy of std::filesystem, which would otherwise take moe-lab's
# calls; 2.11's remove_all jumps to a null pointer (every `moe report`, every test fixture).
target_link_libraries(moe_torch INTERFACE stdc++)
if(MOE_TORCH_CUDA OR NOT _moe_torch_has_cuda)
  # LibTorch's own CMake package: the CUDA build, or an install without CUDA libraries.
  # moe-lab compiles no CUDA sources, but the package enables the CUDA language: C++17 for
  # it (CMake 3.25 knows no CUDA 20 dialect for nvcc), and an architecture list so that it
  # does not compile and run a GPU probe (which fails on a machine without a GPU).
  if(NOT DEFINED CMAKE_CUDA_STANDARD)
    set(CMAKE_CUDA_STANDARD 17)
  endif()
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  find_package(Torch REQUIRED PATHS "${MOE_TORCH_CMAKE_DIR}" NO_DEFAULT_PATH)
  target_link_libraries(moe_torch INTERFACE ${TORCH_LIBRARIES})
  # A wheel's CUDA libraries are PyPI's nvidia-* packages beside torch/ (newer than a local
  # toolkit's): the linker and the loader take them first, as LibTorch's own RUNPATH does.
  file(GLOB _moe_nvidia_libs LIST_DIRECTORIES true "${MOE_TORCH_PREFIX}/../nvidia/*/lib")
  foreach(dir IN LISTS _moe_nvidia_libs)
    target_link_options(moe_torch INTERFACE "LINKER:-rpath-link,${dir}" "LINKER:-rpath,${dir}")
  endforeach()
else()
  # A CUDA install built for the CPU: its CPU libraries, without the package (which needs a
  # CUDA toolkit). libtorch_cpu finds the CUDA runtime and CUPTI it names through its own
  # RUNPATH (the wheel's nvidia-* packages) or the system's library path.
  foreach(lib torch_cpu c10)
    find_library(MOE_TORCH_LIB_${lib} ${lib} PATHS "${MOE_TORCH_PREFIX}/lib" NO_DEFAULT_PATH)
    if(NOT MOE_TORCH_LIB_${lib})
      message(FATAL_ERROR "LibTorch at ${MOE_TORCH_PREFIX}: lib${lib}.so is missing")
    endif()
    target_link_libraries(moe_torch INTERFACE ${MOE_TORCH_LIB_${lib}})
  endforeach()
  target_include_directories(moe_torch SYSTEM INTERFACE "${MOE_TORCH_PREFIX}/include"
    "${MOE_TORCH_PREFIX}/include/torch/csrc/api/include")
  target_link_libraries(moe_torch INTERFACE Threads::Threads)
  target_compile_features(moe_torch INTERFACE cxx_std_20)
endif()

if(MOE_TORCH_CUDA)
  # c10_cuda's headers (peak memory, sync-debug counting): one definition for every target,
  # so that they all reuse moe_core's precompiled header.
  target_compile_definitions(moe_torch INTERFACE MOE_WITH_C10_CUDA)
  message(STATUS "LibTorch ${MOE_TORCH_VERSION} (${MOE_TORCH_PREFIX}): CUDA build "
    "(CUDA toolkit ${CUDAToolkit_VERSION})")
elseif(_moe_torch_has_cuda)
  message(STATUS "LibTorch ${MOE_TORCH_VERSION} (${MOE_TORCH_PREFIX}): CPU build of a CUDA "
    "install (MOE_CUDA=${MOE_CUDA}; no CUDA toolkit found or CUDA off)")
else()
  message(STATUS "LibTorch ${MOE_TORCH_VERSION} (${MOE_TORCH_PREFIX}): CPU build")
endif()
