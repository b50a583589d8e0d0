# SPDX-License-Identifier: Apache-2.0
# libFuzzer targets, one per operator (tests/fuzz/fuzz_op_<op>.c), built with clang when
# NSA_BUILD_FUZZERS is ON. The library is compiled a second time for them, with coverage
# instrumentation (-fsanitize=fuzzer-no-link) and ASan + UBSan, so the fuzzer sees the
# kernel's branches. Run them with scripts/fuzz.sh; seeds are in tests/fuzz/corpus/<op>/.
option(NSA_BUILD_FUZZERS "Build the libFuzzer targets (clang only)" OFF)
if(NOT NSA_BUILD_FUZZERS)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "libnsa: NSA_BUILD_FUZZERS needs clang (CMAKE_C_COMPILER_ID is "
                  "${CMAKE_C_COMPILER_ID}); the operator fuzz targets are not built")
  return()
endif()

set(NSA_FUZZ_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer -g)
get_target_property(nsa_fuzz_sources nsa_objects SOURCES)
get_target_property(nsa_fuzz_includes nsa_objects INCLUDE_DIRECTORIES)
get_target_property(nsa_fuzz_defs nsa_objects COMPILE_DEFINITIONS)
get_target_property(nsa_fuzz_libs nsa_objects LINK_LIBRARIES)
add_library(nsa_fuzz_lib STATIC EXCLUDE_FROM_ALL ${nsa_fuzz_sources})
target_include_directories(nsa_fuzz_lib PUBLIC ${nsa_fuzz_includes})
if(nsa_fuzz_defs)
  target_compile_definitions(nsa_fuzz_lib PRIVATE ${nsa_fuzz_defs})
endif()
target_compile_options(nsa_fuzz_lib PRIVATE ${NSA_FUZZ_FLAGS} -fsanitize=fuzzer-no-link)
target_link_libraries(nsa_fuzz_lib PUBLIC Threads::Threads m)
if(nsa_fuzz_libs)
  target_link_libraries(nsa_fuzz_lib PUBLIC ${nsa_fuzz_libs})
endif()

add_custom_target(nsa_fuzzers)
file(GLOB nsa_fuzz_targets CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_op_*.c)
foreach(src IN LISTS nsa_fuzz_targets)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${NSA_FUZZ_FLAGS} -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE nsa_fuzz_lib)
  add_dependencies(nsa_fuzzers ${name})
endforeach()

# Replay the committed seeds (and any reproducer added there) once: a regression test.
foreach(src IN LISTS nsa_fuzz_targets)
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_op_" "" op ${name})
  if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${op})
    add_test(NAME fuzz_seeds_${op}
             COMMAND ${name} -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${op})
    set_tests_properties(fuzz_seeds_${op} PROPERTIES LABELS fuzz)
  endif()
endforeach()
