# SPDX-License-Identifier: Apache-2.0
# Install tests: the consumer test (a C and a C++ program built against the installed
# package, through find_package(nsa) and through pkg-config) and the exported-symbol check.
if(NOT NSA_INSTALL)
  return()
endif()

# The consumer's C++ compiler: the sibling of the C compiler (clang -> clang++, gcc -> g++).
get_filename_component(nsa_cc_dir ${CMAKE_C_COMPILER} DIRECTORY)
get_filename_component(nsa_cc_name ${CMAKE_C_COMPILER} NAME)
string(REGEX REPLACE "clang" "clang++" nsa_cxx_name "${nsa_cc_name}")
string(REGEX REPLACE "gcc" "g++" nsa_cxx_name "${nsa_cxx_name}")
if(NOT nsa_cxx_name STREQUAL nsa_cc_name AND EXISTS ${nsa_cc_dir}/${nsa_cxx_name})
  set(nsa_consumer_cxx ${nsa_cc_dir}/${nsa_cxx_name})
else()
  find_program(nsa_consumer_cxx NAMES c++ g++ clang++)
endif()

set(nsa_consumer_sanitize "")
if(NSA_SANITIZE)
  set(nsa_consumer_sanitize "-fsanitize=${NSA_SANITIZE}")
endif()
if(BUILD_SHARED_LIBS)
  set(nsa_consumer_static OFF)
else()
  set(nsa_consumer_static ON)
endif()

if(nsa_consumer_cxx)
  add_test(NAME consumer COMMAND ${CMAKE_COMMAND}
    -DNSA_BUILD_DIR=${PROJECT_BINARY_DIR}
    -DNSA_WORK_DIR=${PROJECT_BINARY_DIR}/consumer
    -DNSA_STATIC=${nsa_consumer_static}
    -DC_COMPILER=${CMAKE_C_COMPILER}
    -DCXX_COMPILER=${nsa_consumer_cxx}
    -DGENERATOR=${CMAKE_GENERATOR}
    -DSANITIZE_FLAGS=${nsa_consumer_sanitize}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run.cmake)
  set_tests_properties(consumer PROPERTIES LABELS install TIMEOUT 300)
else()
  message(WARNING "libnsa: no C++ compiler found (apt-get install g++): consumer test skipped")
endif()

# The shared library exports nothing but the public nsa_ API.
if(BUILD_SHARED_LIBS)
  find_program(NSA_NM NAMES nm)
  if(NSA_NM)
    add_test(NAME exported_symbols COMMAND ${CMAKE_COMMAND}
      -DNM=${NSA_NM} -DLIBRARY=$<TARGET_FILE:nsa>
      -P ${PROJECT_SOURCE_DIR}/cmake/NsaCheckSymbols.cmake)
    set_tests_properties(exported_symbols PROPERTIES LABELS install)
  endif()
endif()
