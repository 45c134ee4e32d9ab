# Refuses a Catch2 TEST_CASE whose name contains ';'. CTest splits test names at ';' (CMake's list
# separator): such a test is registered as two names that match nothing and silently never runs.
# Run at configure time (CMakeLists.txt) and as the CTest test `test_names_ctest_safe`, so that a name
# added after the last configure still fails the test run.
#   cmake -DRZOO_TEST_DIR=<dir> -P check_test_names.cmake
if(NOT RZOO_TEST_DIR)
  message(FATAL_ERROR "check_test_names.cmake: set RZOO_TEST_DIR")
endif()
file(GLOB rzoo_test_files ${RZOO_TEST_DIR}/*.cpp)
set(rzoo_bad "")
foreach(f ${rzoo_test_files})
  file(STRINGS ${f} bad_names REGEX "TEST_CASE\\(\"[^\"]*;")
  foreach(n ${bad_names})
    string(STRIP "${n}" n)
    string(APPEND rzoo_bad "\n  ${f}: ${n}")
  endforeach()
endforeach()
if(rzoo_bad)
  message(FATAL_ERROR "a TEST_CASE name contains ';', which CTest cannot run (use ',' instead):${rzoo_bad}")
endif()
