# SPDX-License-Identifier: Apache-2.0
# ctest driver of the consumer test (cmake -P). Installs the libnsa build into a staging
# prefix, then configures, builds and runs the consumer project against it, once through
# find_package(nsa) and once through pkg-config.
# Inputs (-D): NSA_BUILD_DIR, NSA_WORK_DIR, NSA_STATIC, C_COMPILER, CXX_COMPILER, GENERATOR,
#              SANITIZE_FLAGS (the build's -fsanitize flags; a sanitized libnsa needs them).
cmake_minimum_required(VERSION 3.18)
set(src ${CMAKE_CURRENT_LIST_DIR})
set(stage ${NSA_WORK_DIR}/stage)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: ${what} failed (${rc}):\n${out}")
  endif()
  message(STATUS "consumer: ${what}: ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${NSA_WORK_DIR})
run_step("install into ${stage}" ${CMAKE_COMMAND} --install ${NSA_BUILD_DIR} --prefix ${stage})

# Only the staged package may be found: no system nsa.pc, no other nsa package.
set(ENV{PKG_CONFIG_PATH} "")
file(GLOB_RECURSE pc_files ${stage}/nsa.pc)
list(GET pc_files 0 pc_file)
get_filename_component(pc_dir ${pc_file} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pc_dir})

foreach(via cmake pkg-config)
  set(bin ${NSA_WORK_DIR}/${via})
  set(flags "")
  if(SANITIZE_FLAGS)
    set(flags "-DCMAKE_C_FLAGS=${SANITIZE_FLAGS}" "-DCMAKE_CXX_FLAGS=${SANITIZE_FLAGS}"
              "-DCMAKE_EXE_LINKER_FLAGS=${SANITIZE_FLAGS}")
  endif()
  run_step("configure (${via})" ${CMAKE_COMMAND} -S ${src} -B ${bin} -G ${GENERATOR}
           -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
           -DCMAKE_PREFIX_PATH=${stage} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
           -DNSA_CONSUMER_VIA=${via} -DNSA_CONSUMER_STATIC=${NSA_STATIC} ${flags})
  run_step("build (${via})" ${CMAKE_COMMAND} --build ${bin})
  foreach(exe consumer_c consumer_cpp)
    run_step("run ${exe} (${via})" ${bin}/${exe})
    string(STRIP "${step_output}" step_output)
    message(STATUS "  ${step_output}")
  endforeach()
endforeach()
