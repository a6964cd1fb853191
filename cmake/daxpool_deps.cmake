# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Dependencies, found through pkg-config. A missing required one stops configure and names the
# Debian package that provides it.

find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "daxpool: pkg-config not found: apt-get install pkg-config")
endif()
find_package(Threads REQUIRED)

# daxpool_require(<prefix> <pkg-config module> <Debian package>)
function(daxpool_require prefix module debpkg)
  pkg_check_modules(${prefix} IMPORTED_TARGET ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "daxpool: ${module} not found: apt-get install ${debpkg}")
  endif()
endfunction()

daxpool_require(PMEM2 libpmem2 libpmem2-dev)
daxpool_require(DAXCTL libdaxctl libdaxctl-dev)
daxpool_require(NDCTL libndctl libndctl-dev)
# urcu-bp: the "bulletproof" flavour needs no reader registration and survives an application's
# fork() without exec (the memb/qsbr/mb flavours require readers to unregister before fork).
daxpool_require(URCU_BP liburcu-bp liburcu-dev)
daxpool_require(URCU_CDS liburcu-cds liburcu-dev)
daxpool_require(JSONC json-c libjson-c-dev)
daxpool_require(URING liburing liburing-dev)
# daxpoold follows device removal and unbinding (tools/daxpoold/udev.c).
daxpool_require(UDEV libudev libudev-dev)

# daxpool_optional(<name> <prefix> <pkg-config module> <what it is called> <Debian packages>
#                  [REQUIRES <variable>...] [WITHOUT <consequence>])
#
# An optional dependency chosen by the cache variable DAXPOOL_<name> (AUTO, ON or OFF). Sets
# DAXPOOL_HAVE_<name> (ON/OFF) and DAXPOOL_HAVE_<name>_MSG, the line configure prints. AUTO builds
# the feature when <module> is found and every REQUIRES variable is true; ON makes its absence an
# error naming <Debian packages>; WITHOUT says what a user loses when AUTO finds nothing.
function(daxpool_optional name prefix module what debpkgs)
  cmake_parse_arguments(PARSE_ARGV 5 opt "" "WITHOUT" "REQUIRES")
  string(TOUPPER "${DAXPOOL_${name}}" mode)
  set(have OFF)
  if(mode STREQUAL "OFF")
    set(msg "no (disabled with DAXPOOL_${name}=OFF)")
  else()
    pkg_check_modules(${prefix} IMPORTED_TARGET ${module})
    set(missing "")
    if(NOT ${prefix}_FOUND)
      set(missing "${module} not found")
    endif()
    foreach(var IN LISTS opt_REQUIRES)
      if(NOT ${var} AND missing STREQUAL "")
        set(missing "needs ${var}, which is OFF")
      endif()
    endforeach()
    if(missing STREQUAL "")
      set(have ON)
      set(msg "yes (${what} ${${prefix}_VERSION})")
    elseif(mode STREQUAL "ON")
      message(FATAL_ERROR "daxpool: DAXPOOL_${name}=ON but ${missing}: apt-get install ${debpkgs}")
    else()
      set(msg "no (${missing}: apt-get install ${debpkgs} to enable${opt_WITHOUT})")
    endif()
  endif()
  set(DAXPOOL_HAVE_${name} ${have} PARENT_SCOPE)
  set(DAXPOOL_HAVE_${name}_MSG "${msg}" PARENT_SCOPE)
endfunction()

daxpool_optional(RDMA IBVERBS libibverbs libibverbs libibverbs-dev)
# libcxl (cxl-cli's library): which device-dax devices are CXL memory (lib/util/cxl.c) and
# daxpoold's teardown of a released CXL region (daxpoolctl release --teardown).
daxpool_optional(CXL CXL libcxl libcxl libcxl-dev
  WITHOUT "; no device is described as CXL memory and release --teardown is refused")
# libdaxpool-fabric (lib/fabric): libfabric's MR cache on daxpool memory. Needs libfabric >= 1.13
# (an importable memory monitor, rdma/fi_ext.h).
daxpool_optional(FABRIC FABRIC "libfabric>=1.13" libfabric libfabric-dev)
# libdaxpool-ucx (lib/ucx): UCX memory handles on daxpool memory as pins (ucp, ucm).
daxpool_optional(UCX UCX ucx UCX libucx-dev)
# libdaxpool-remote (lib/remote): daxpool memory served to remote peers, on rdma_cm and verbs.
daxpool_optional(REMOTE RDMACM librdmacm librdmacm "librdmacm-dev libibverbs-dev"
  REQUIRES DAXPOOL_HAVE_RDMA)
# daxpoold's MR tracer (tools/daxpoold/umem_trace.*): an eBPF program, built by clang, that
# records what each RDMA MR pins, so the holder rule can tell an MR on ordinary memory from one
# on the device. x86-64 only (it reads vmemmap_base).
find_program(DAXPOOL_BPF_CLANG NAMES clang-14 clang)
if(CMAKE_SYSTEM_PROCESSOR STREQUAL "x86_64")
  set(DAXPOOL_X86_64 ON)
else()
  set(DAXPOOL_X86_64 OFF)
endif()
daxpool_optional(BPF LIBBPF libbpf libbpf "libbpf-dev clang"
  REQUIRES DAXPOOL_BPF_CLANG DAXPOOL_X86_64
  WITHOUT "; daxpoold judges every RDMA MR without knowing where it is")
