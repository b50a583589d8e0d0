# SPDX-License-Identifier: Apache-2.0
# The nsa_compress / nsa_compress_attention golden cases replayed through nsa-run: the golden
# test program built a second time with NSA_RUN_EXE (tests/golden/test_nsa_compress_golden.c).
if(TARGET nsa-run AND TARGET nsa_test_common)
  add_executable(test_nsa_run_compress_golden
                 ${CMAKE_CURRENT_SOURCE_DIR}/golden/test_nsa_compress_golden.c)
  target_link_libraries(test_nsa_run_compress_golden PRIVATE nsa_test_common)
  target_compile_definitions(test_nsa_run_compress_golden PRIVATE
                             NSA_RUN_EXE="$<TARGET_FILE:nsa-run>")
  add_dependencies(test_nsa_run_compress_golden nsa-run)
  add_test(NAME test_nsa_run_compress_golden COMMAND test_nsa_run_compress_golden)
  set_tests_properties(test_nsa_run_compress_golden PROPERTIES LABELS cli TIMEOUT 120)
endif()
