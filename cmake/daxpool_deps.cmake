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

string(TOUPPER "${DAXPOOL_RDMA}" _rdma)
set(DAXPOOL_HAVE_RDMA OFF)
if(NOT _rdma STREQUAL "OFF")
  pkg_check_modules(IBVERBS IMPORTED_TARGET libibverbs)
  if(IBVERBS_FOUND)
    set(DAXPOOL_HAVE_RDMA ON)
    set(DAXPOOL_HAVE_RDMA_MSG "yes (libibverbs ${IBVERBS_VERSION})")
  elseif(_rdma STREQUAL "ON")
    message(FATAL_ERROR "daxpool: DAXPOOL_RDMA=ON but libibverbs not found: apt-get install libibverbs-dev")
  else()
    set(DAXPOOL_HAVE_RDMA_MSG "no (libibverbs not found: apt-get install libibverbs-dev to enable)")
  endif()
else()
  set(DAXPOOL_HAVE_RDMA_MSG "no (disabled with DAXPOOL_RDMA=OFF)")
endif()

# libdaxpool-fabric (lib/fabric): libfabric's MR cache on daxpool memory. Needs libfabric >= 1.13
# (an importable memory monitor, rdma/fi_ext.h).
string(TOUPPER "${DAXPOOL_FABRIC}" _fabric)
set(DAXPOOL_HAVE_FABRIC OFF)
if(NOT _fabric STREQUAL "OFF")
  pkg_check_modules(FABRIC IMPORTED_TARGET libfabric>=1.13)
  if(FABRIC_FOUND)
    set(DAXPOOL_HAVE_FABRIC ON)
    set(DAXPOOL_HAVE_FABRIC_MSG "yes (libfabric ${FABRIC_VERSION})")
  elseif(_fabric STREQUAL "ON")
    message(FATAL_ERROR "daxpool: DAXPOOL_FABRIC=ON but libfabric >= 1.13 not found: apt-get install libfabric-dev")
  else()
    set(DAXPOOL_HAVE_FABRIC_MSG "no (libfabric >= 1.13 not found: apt-get install libfabric-dev to enable)")
  endif()
else()
  set(DAXPOOL_HAVE_FABRIC_MSG "no (disabled with DAXPOOL_FABRIC=OFF)")
endif()

# libdaxpool-ucx (lib/ucx): UCX memory handles on daxpool memory as pins (ucp, ucm).
string(TOUPPER "${DAXPOOL_UCX}" _ucx)
set(DAXPOOL_HAVE_UCX OFF)
if(NOT _ucx STREQUAL "OFF")
  pkg_check_modules(UCX IMPORTED_TARGET ucx)
  if(UCX_FOUND)
    set(DAXPOOL_HAVE_UCX ON)
    set(DAXPOOL_HAVE_UCX_MSG "yes (UCX ${UCX_VERSION})")
  elseif(_ucx STREQUAL "ON")
    message(FATAL_ERROR "daxpool: DAXPOOL_UCX=ON but UCX not found: apt-get install libucx-dev")
  else()
    set(DAXPOOL_HAVE_UCX_MSG "no (UCX not found: apt-get install libucx-dev to enable)")
  endif()
else()
  set(DAXPOOL_HAVE_UCX_MSG "no (disabled with DAXPOOL_UCX=OFF)")
endif()
