# SPDX-License-Identifier: Apache-2.0
# Repository checks: the README's Quick start block has the shape .ci/run relies on (CI runs
# the block's second command verbatim, so the two cannot drift apart).
find_program(NSA_BASH NAMES bash)
if(NSA_BASH)
  add_test(NAME readme_quick_start
           COMMAND ${NSA_BASH} ${PROJECT_SOURCE_DIR}/.ci/run --check-readme)
  set_tests_properties(readme_quick_start PROPERTIES LABELS repo)
endif()
