# SPDX-License-Identifier: Apache-2.0
# Find a CBLAS (OpenBLAS) for the tile GEMMs, or fall back to libnsa's built-in GEMM.
# Sets NSA_BLAS_USED (openblas | builtin), NSA_BLAS_TARGET (a target to link, or empty) and
# NSA_BLAS_PC_REQUIRES ("openblas" when found through pkg-config, for nsa.pc and nsaConfig) and
# NSA_BLAS_LIBRARIES (the libraries FindBLAS found otherwise, for nsa.pc's Libs.private).
set(NSA_BLAS_TARGET "")
set(NSA_BLAS_LIBRARIES "")
set(NSA_BLAS_USED "builtin")
set(NSA_BLAS_PC_REQUIRES "")
if(NOT NSA_BLAS MATCHES "^(auto|openblas|builtin)$")
  message(FATAL_ERROR "NSA_BLAS must be auto, openblas or builtin (got '${NSA_BLAS}')")
endif()
if(NOT NSA_BLAS STREQUAL "builtin")
  # 1. pkg-config gives both the library and the right cblas.h (Debian keeps it under
  #    /usr/include/<triplet>/openblas-pthread; the plain cblas.h may be netlib's).
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(NSA_OPENBLAS QUIET IMPORTED_TARGET openblas)
    if(NSA_OPENBLAS_FOUND)
      set(NSA_BLAS_TARGET PkgConfig::NSA_OPENBLAS)
      set(NSA_BLAS_PC_REQUIRES "openblas")
    endif()
  endif()
  # 2. FindBLAS provides no include directory: look for cblas.h next to it.
  if(NOT NSA_BLAS_TARGET)
    set(BLA_VENDOR OpenBLAS)
    find_package(BLAS QUIET)
    find_path(NSA_CBLAS_INCLUDE_DIR cblas.h
              PATH_SUFFIXES openblas openblas-pthread x86_64-linux-gnu/openblas-pthread
                            aarch64-linux-gnu/openblas-pthread)
    if(BLAS_FOUND AND NSA_CBLAS_INCLUDE_DIR)
      add_library(nsa_openblas INTERFACE)
      target_link_libraries(nsa_openblas INTERFACE ${BLAS_LIBRARIES})
      target_include_directories(nsa_openblas INTERFACE ${NSA_CBLAS_INCLUDE_DIR})
      set(NSA_BLAS_TARGET nsa_openblas)
      set(NSA_BLAS_LIBRARIES ${BLAS_LIBRARIES})
    endif()
  endif()
  if(NSA_BLAS_TARGET)
    set(NSA_BLAS_USED "openblas")
  elseif(NSA_BLAS STREQUAL "openblas")
    message(FATAL_ERROR "NSA_BLAS=openblas but OpenBLAS was not found (apt-get install libopenblas-dev)")
  endif()
endif()
message(STATUS "libnsa: GEMM backend: ${NSA_BLAS_USED}")
