# The libFuzzer build (-DRZOO_FUZZ=ON, clang): only what the fuzz targets need. core/ and
# datasets/ (less their LibTorch parts: checkpoints, the process group, batches, samplers) are built instrumented
# into rzoo_fuzz_core; each tests/fuzz/fuzz_*.cpp becomes one fuzzer linked with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer. LibTorch is not used at all. No precompiled
# header (GCC's cannot be used by clang, and there is nothing heavy to precompile).
#   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DRZOO_FUZZ=ON
#   cmake --build build-fuzz && ctest --test-dir build-fuzz     (or scripts/fuzz.sh)
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "RZOO_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
endif()
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(Threads REQUIRED)
find_package(nlohmann_json 3 REQUIRED)

set(RZOO_FUZZ_SANITIZE "address,undefined" CACHE STRING "Sanitizers of the libFuzzer build")
set(RZOO_FUZZ_SECONDS 20 CACHE STRING "Seconds of each fuzz_short_<target> CTest run")
set(RZOO_FUZZ_FLAGS -fsanitize=fuzzer-no-link,${RZOO_FUZZ_SANITIZE} -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -g -O2 -UNDEBUG)

file(GLOB RZOO_FUZZ_LIB_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/core/*.cpp ${PROJECT_SOURCE_DIR}/datasets/*.cpp)
list(REMOVE_ITEM RZOO_FUZZ_LIB_SOURCES ${PROJECT_SOURCE_DIR}/core/checkpoint.cpp ${PROJECT_SOURCE_DIR}/core/distributed.cpp
     ${PROJECT_SOURCE_DIR}/datasets/batch.cpp ${PROJECT_SOURCE_DIR}/datasets/sampler.cpp)
add_library(rzoo_fuzz_core STATIC ${RZOO_FUZZ_LIB_SOURCES})
target_include_directories(rzoo_fuzz_core PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/generated)
target_link_libraries(rzoo_fuzz_core PUBLIC fmt::fmt yaml-cpp nlohmann_json::nlohmann_json Threads::Threads ${CMAKE_DL_LIBS})
target_compile_options(rzoo_fuzz_core PUBLIC ${RZOO_FUZZ_FLAGS})
configure_file(cmake/rzoo_build.h.in ${PROJECT_BINARY_DIR}/generated/rzoo_build.h @ONLY)
configure_file(cmake/test_paths.h.in ${PROJECT_BINARY_DIR}/generated/test_paths.h @ONLY)

enable_testing()
file(GLOB RZOO_FUZZ_TARGETS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_*.cpp)
foreach(src ${RZOO_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_definitions(${name} PRIVATE RZOO_LIBFUZZER=1)
  target_link_libraries(${name} PRIVATE rzoo_fuzz_core)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,${RZOO_FUZZ_SANITIZE})
  # A short run from the committed corpus (read-only: new inputs go to a scratch folder).
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_test(NAME fuzz_short_${short}
           COMMAND ${CMAKE_COMMAND} -E env RZOO_FUZZ_QUIET=1
                   bash -c "rm -rf \"$1\" && mkdir -p \"$1\" && exec \"$2\" \"$1\" \"$3\" -max_total_time=$4 -max_len=4096 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1"
                   _ ${PROJECT_BINARY_DIR}/fuzz-short/${name} $<TARGET_FILE:${name}>
                   ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name} ${RZOO_FUZZ_SECONDS})
  set_tests_properties(fuzz_short_${short} PROPERTIES TIMEOUT 300)
endforeach()
