# SPDX-License-Identifier: Apache-2.0
# cmake -DNM=nm -DLIBRARY=libnsa.so -P NsaCheckSymbols.cmake
# Fails unless every symbol the shared library defines in its dynamic table starts with nsa_
# (hidden visibility plus NSA_API keep internals out of the ABI).
execute_process(COMMAND ${NM} -D --defined-only ${LIBRARY}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only ${LIBRARY} failed: ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(count 0)
set(bad "")
foreach(line IN LISTS lines)
  # "<address> <type> <name>"; the linker's version node (type A) is not a symbol of ours.
  if(line MATCHES "^[0-9a-fA-F]* +([A-Za-z]) +([^ ]+)$")
    set(type ${CMAKE_MATCH_1})
    set(name ${CMAKE_MATCH_2})
    if(type STREQUAL "A")
      continue()
    endif()
    math(EXPR count "${count} + 1")
    if(NOT name MATCHES "^nsa_")
      list(APPEND bad "${name}")
    endif()
  endif()
endforeach()
if(bad)
  list(JOIN bad ", " bad)
  message(FATAL_ERROR "${LIBRARY} exports symbols without the nsa_ prefix: ${bad}")
endif()
if(count EQUAL 0)
  message(FATAL_ERROR "${LIBRARY}: nm listed no defined dynamic symbols")
endif()
message(STATUS "${LIBRARY}: ${count} exported symbols, all nsa_")
