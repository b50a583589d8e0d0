# SPDX-License-Identifier: Apache-2.0
# libFuzzer targets: built only with clang and -DNSA_BUILD_FUZZERS=ON.
#   nsa_add_fuzzer(<name> <sources>...) -> an executable instrumented with
#   -fsanitize=fuzzer,address,undefined; returns without a target otherwise (check
#   `if(TARGET <name>)` before using it).
include_guard(GLOBAL)
option(NSA_BUILD_FUZZERS "Build the libFuzzer targets (needs clang)" OFF)

if(NSA_BUILD_FUZZERS AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "libnsa: NSA_BUILD_FUZZERS needs clang (CC=clang); fuzzers are not built")
endif()

function(nsa_add_fuzzer name)
  if(NOT NSA_BUILD_FUZZERS OR NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    return()
  endif()
  add_executable(${name} ${ARGN})
  target_compile_options(${name} PRIVATE -g -fsanitize=fuzzer,address,undefined
                                         -fno-sanitize-recover=all)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_compile_definitions(${name} PRIVATE _POSIX_C_SOURCE=200809L)
endfunction()
