# SPDX-License-Identifier: Apache-2.0
# nsa-run flex-attention / block-mask replaying the PyTorch goldens end to end.
if(TARGET nsa-run AND TARGET nsa_test_common)
  add_executable(test_flex_cli ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_flex_cli.c)
  target_link_libraries(test_flex_cli PRIVATE nsa_test_common)
  target_compile_definitions(test_flex_cli PRIVATE NSA_RUN_EXE="$<TARGET_FILE:nsa-run>")
  add_dependencies(test_flex_cli nsa-run)
  add_test(NAME test_flex_cli COMMAND test_flex_cli)
  set_tests_properties(test_flex_cli PROPERTIES LABELS cli TIMEOUT 120)
endif()
