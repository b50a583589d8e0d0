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

# Exit statuses and messages (nsa_cli_test comes from tests/cli.cmake).
if(COMMAND nsa_cli_test)
  set(d ${CMAKE_CURRENT_SOURCE_DIR}/data/nsa/nsa_cmp_attn_nomask_g1)
  set(common --scale-value 0.125 --compress-block-size 64 --compress-stride 16
             --select-block-size 64 --select-block-count 8 --actual-seq-qlen 37
             --actual-cmp-seq-kvlen 81 --in query=${d}/query.npy --in key=${d}/key.npy
             --in value=${d}/value.npy)
  nsa_cli_test(compress_missing_seq 2 "nsa-run: compress: missing required option --actual-seq-len"
               compress --compress-block-size 64 --compress-stride 16
               --in input=${d}/key.npy --in weight=${d}/key.npy --out ${NSA_CLI_OUT}/cmp_seq)
  nsa_cli_test(compress_attention_head_num 3
               "NSA_ERR_INVALID_ARGUMENT: head_num \\(3\\) must equal query.shape\\[1\\] \\(4\\)"
               compress-attention --dtype bf16 --head-num 3 ${common}
               --out ${NSA_CLI_OUT}/cattn_head_num)
  nsa_cli_test(compress_attention_strict 3
               "NSA_ERR_UNSUPPORTED: strict validation supports only compress_block_size 32"
               compress-attention --dtype bf16 --strict --head-num 4 ${common}
               --out ${NSA_CLI_OUT}/cattn_strict)
  nsa_cli_test(compress_attention_ok 0 "^$"
               compress-attention --dtype bf16 --head-num 4 ${common}
               --out ${NSA_CLI_OUT}/cattn_ok)
  unset(common)
  unset(d)
endif()
