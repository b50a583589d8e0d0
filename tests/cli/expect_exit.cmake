# SPDX-License-Identifier: Apache-2.0
# Run one nsa-run command and check its exit status (and optionally its stderr).
#   cmake -DCMD="exe|arg|arg..." -DRC=2 [-DREGEX=...] -P expect_exit.cmake
string(REPLACE "|" ";" cmd "${CMD}")
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT "${rc}" STREQUAL "${RC}")
  message(FATAL_ERROR "exit status ${rc}, expected ${RC}\nstdout: ${out}\nstderr: ${err}")
endif()
if(DEFINED REGEX AND NOT "${err}${out}" MATCHES "${REGEX}")
  message(FATAL_ERROR "output does not match '${REGEX}'\nstdout: ${out}\nstderr: ${err}")
endif()
message(STATUS "exit ${rc} as expected; stderr: ${err}")
