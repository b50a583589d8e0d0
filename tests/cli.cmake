# SPDX-License-Identifier: Apache-2.0
# nsa-run: exit-status tests of the command-line framework, the end-to-end test program
# (tests/cli/test_cli.c), and the libFuzzer target of the .npy reader (NSA_BUILD_FUZZERS).
include(NsaFuzz)

if(TARGET nsa-run)
  set(NSA_CLI_CHECK ${CMAKE_CURRENT_SOURCE_DIR}/cli/expect_exit.cmake)
  set(NSA_CLI_DATA ${CMAKE_CURRENT_SOURCE_DIR}/data/cli)
  set(NSA_CLI_OUT ${CMAKE_CURRENT_BINARY_DIR}/cli_out)

  # nsa_cli_test(<name> <exit status> <regex on stdout+stderr> <arguments>...)
  function(nsa_cli_test name rc regex)
    set(cmd "$<TARGET_FILE:nsa-run>")
    foreach(arg IN LISTS ARGN)
      string(APPEND cmd "|${arg}")
    endforeach()
    add_test(NAME cli_${name}
             COMMAND ${CMAKE_COMMAND} "-DCMD=${cmd}" -DRC=${rc} "-DREGEX=${regex}"
                     -P ${NSA_CLI_CHECK})
    set_tests_properties(cli_${name} PROPERTIES LABELS cli TIMEOUT 60)
  endfunction()

  set(x ${NSA_CLI_DATA}/weight.npy)
  nsa_cli_test(help 0 "usage: nsa-run OP" --help)
  nsa_cli_test(op_help 0 "inputs .--in" selftest --help)
  nsa_cli_test(no_arguments 2 "usage: nsa-run OP")
  nsa_cli_test(unknown_op 2 "nsa-run: unknown operator 'nope'" nope --out ${NSA_CLI_OUT})
  nsa_cli_test(unknown_option 2 "nsa-run: selftest: unknown option --bogus"
               selftest --in x=${x} --bogus 1 --out ${NSA_CLI_OUT}/unknown_option)
  nsa_cli_test(unknown_input 2 "nsa-run: selftest: unknown input 'z'"
               selftest --in x=${x} --in z=${x} --out ${NSA_CLI_OUT}/unknown_input)
  nsa_cli_test(missing_input 2 "nsa-run: selftest: missing required input --in x=FILE.npy"
               selftest --out ${NSA_CLI_OUT}/missing_input)
  nsa_cli_test(missing_input_file 2 "nsa-run: selftest: input 'x': .*cannot open"
               selftest --in x=${NSA_CLI_DATA}/no_such_file.npy --out ${NSA_CLI_OUT}/missing_file)
  nsa_cli_test(truncated_npy 2 "nsa-run: selftest: input 'x': .*truncated: the header promises 512 data bytes, the file holds 172"
               selftest --in x=${NSA_CLI_DATA}/truncated.npy --out ${NSA_CLI_OUT}/truncated)
  nsa_cli_test(bad_dtype 2 "--dtype must be f32, f16 or bf16, got 'f64'"
               selftest --in x=${x} --dtype f64 --out ${NSA_CLI_OUT}/bad_dtype)
  nsa_cli_test(missing_out 2 "missing --out DIR" selftest --in x=${x})
  nsa_cli_test(op_error 3 "nsa-run: selftest: NSA_ERR_INVALID_ARGUMENT: n must be >= 0, got -1"
               selftest --in x=${x} --fail --out ${NSA_CLI_OUT}/op_error)
  nsa_cli_test(repeat 0 "time: median=[0-9.]+ ms min=[0-9.]+ ms runs=3"
               selftest --in x=${x} --repeat 3 --out ${NSA_CLI_OUT}/repeat)
  unset(x)

  if(TARGET nsa_test_common)
    add_executable(test_cli ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.c)
    target_link_libraries(test_cli PRIVATE nsa_test_common)
    target_compile_definitions(test_cli PRIVATE NSA_RUN_EXE="$<TARGET_FILE:nsa-run>")
    add_dependencies(test_cli nsa-run)
    add_test(NAME test_cli COMMAND test_cli)
    set_tests_properties(test_cli PROPERTIES LABELS cli TIMEOUT 120)
  endif()
endif()

nsa_add_fuzzer(fuzz_npy ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_npy.c)
if(TARGET fuzz_npy)
  # A short run from the numpy-written seeds, so the target is exercised by ctest; long runs:
  #   fuzz_npy -max_total_time=60 CORPUS_DIR tests/data/cli
  set(NSA_FUZZ_NPY_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_npy_corpus)
  file(MAKE_DIRECTORY ${NSA_FUZZ_NPY_CORPUS})
  add_test(NAME fuzz_npy_smoke
           COMMAND fuzz_npy -runs=20000 -dict=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/npy.dict
                   ${NSA_FUZZ_NPY_CORPUS} ${CMAKE_CURRENT_SOURCE_DIR}/data/cli)
  set_tests_properties(fuzz_npy_smoke PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
