# SPDX-License-Identifier: Apache-2.0
# Install rules: headers, the library, nsa-run (tools/nsa-run), the CMake package
# (find_package(nsa CONFIG) -> nsa::nsa) and nsa.pc for pkg-config.
include(CMakePackageConfigHelpers)

set(NSA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/nsa CACHE STRING
    "Where nsaConfig.cmake is installed, relative to the prefix")
set(NSA_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig CACHE STRING
    "Where nsa.pc is installed, relative to the prefix")

file(GLOB NSA_PUBLIC_HEADERS ${PROJECT_SOURCE_DIR}/include/nsa/*.h)
install(FILES ${NSA_PUBLIC_HEADERS} ${PROJECT_BINARY_DIR}/include/nsa/nsa_version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nsa COMPONENT devel)

install(TARGETS nsa EXPORT nsaTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT devel
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT nsaTargets NAMESPACE nsa:: DESTINATION ${NSA_INSTALL_CMAKEDIR} COMPONENT devel)

# A static libnsa carries its dependencies to the consumer: the config file re-finds OpenBLAS
# the way the build found it (the build's own OpenBLAS target is build-tree only).
get_target_property(NSA_LIBRARY_TYPE nsa TYPE)
if(NSA_LIBRARY_TYPE STREQUAL "STATIC_LIBRARY")
  set(NSA_CONFIG_STATIC ON)
else()
  set(NSA_CONFIG_STATIC OFF)
endif()
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/nsaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nsaConfig.cmake INSTALL_DESTINATION ${NSA_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nsaConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nsaConfig.cmake ${PROJECT_BINARY_DIR}/nsaConfigVersion.cmake
        DESTINATION ${NSA_INSTALL_CMAKEDIR} COMPONENT devel)

# nsa.pc is relocatable: its prefix is found from the .pc file's own location, so a staged
# install (cmake --install build --prefix DIR) works as well as the configured prefix.
set(NSA_PC_LIBS_PRIVATE "")
if(NSA_BLAS_USED STREQUAL "openblas" AND NOT NSA_BLAS_PC_REQUIRES)
  foreach(lib IN LISTS NSA_BLAS_LIBRARIES)
    string(APPEND NSA_PC_LIBS_PRIVATE " ${lib}")
  endforeach()
endif()
string(APPEND NSA_PC_LIBS_PRIVATE " -lpthread -lm")
string(STRIP "${NSA_PC_LIBS_PRIVATE}" NSA_PC_LIBS_PRIVATE)
file(RELATIVE_PATH NSA_PC_TO_PREFIX "/prefix/${NSA_INSTALL_PKGCONFIGDIR}" "/prefix")
string(REGEX REPLACE "/$" "" NSA_PC_TO_PREFIX "${NSA_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/nsa.pc.in ${PROJECT_BINARY_DIR}/nsa.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nsa.pc DESTINATION ${NSA_INSTALL_PKGCONFIGDIR}
        COMPONENT devel)
