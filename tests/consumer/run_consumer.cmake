# cmake -P script behind the "install: consumer project" test (see CMakeLists.txt).
# Inputs: MMSB_BUILD_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR, CXX_COMPILER,
# BUILD_TYPE, SANITIZE (may be empty).
cmake_minimum_required(VERSION 3.25)

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})  # a fresh prefix every run: nothing stale can help

function(step what)
  message(STATUS "consumer test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: '${what}' failed (${rc})")
  endif()
endfunction()

step("install ${MMSB_BUILD_DIR} into ${prefix}"
  ${CMAKE_COMMAND} --install ${MMSB_BUILD_DIR} --prefix ${prefix})

set(flags "")
if(SANITIZE)
  set(flags "-fsanitize=${SANITIZE} -fno-omit-frame-pointer")
endif()
# Only the prefix may provide mmsb: no package registry, no system paths
# that could hold another copy.
step("configure the consumer project against ${prefix}"
  ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    "-DCMAKE_CXX_FLAGS=${flags}"
    -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DEXPECTED_MMSB_DIR=${prefix})
step("build the consumer" ${CMAKE_COMMAND} --build ${build})
step("run the consumer" ${build}/mmsb_consumer)
