# SPDX-License-Identifier: Apache-2.0
# nsa-run select-attention replays every nsa_select golden case (tests/data/nsa) and must
# write exactly what the library computes. Needs the nsa-run framework (tools/nsa-run/cli.c).
if(TARGET nsa-run AND TARGET nsa_test_common AND EXISTS ${PROJECT_SOURCE_DIR}/tools/nsa-run/cli.c)
  set(NSA_SELECT_CLI_OUT ${CMAKE_CURRENT_BINARY_DIR}/select_cli_out)
  file(MAKE_DIRECTORY ${NSA_SELECT_CLI_OUT})
  # test_npy_load() reads below tests/data: reach the output directory from there
  file(RELATIVE_PATH NSA_SELECT_CLI_REL ${CMAKE_CURRENT_SOURCE_DIR}/data ${NSA_SELECT_CLI_OUT})
  add_executable(test_select_cli ${CMAKE_CURRENT_SOURCE_DIR}/select_cli/test_select_cli.c)
  target_link_libraries(test_select_cli PRIVATE nsa_test_common)
  target_compile_definitions(test_select_cli PRIVATE
    NSA_RUN_EXE="$<TARGET_FILE:nsa-run>"
    NSA_SELECT_CLI_OUT="${NSA_SELECT_CLI_OUT}"
    NSA_SELECT_CLI_REL="${NSA_SELECT_CLI_REL}")
  add_dependencies(test_select_cli nsa-run)
  add_test(NAME test_select_cli COMMAND test_select_cli)
  set_tests_properties(test_select_cli PROPERTIES LABELS cli TIMEOUT 120)
endif()
