# SPDX-License-Identifier: Apache-2.0
# docs/errors.md is generated from the nsa_error() calls in src/ by scripts/gen_errors_doc.py;
# this test fails when someone changed a check without regenerating it.
find_program(NSA_PYTHON3 NAMES python3)
if(NSA_PYTHON3)
  add_test(NAME errors_doc_up_to_date
           COMMAND ${NSA_PYTHON3} ${PROJECT_SOURCE_DIR}/scripts/gen_errors_doc.py --check)
  set_tests_properties(errors_doc_up_to_date PROPERTIES LABELS repo)
endif()
