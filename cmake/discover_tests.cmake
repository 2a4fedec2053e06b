# Run by CTest (TEST_INCLUDE_FILES): adds one test per case that `${EDFAST_TEST_EXE} --list`
# prints, named ${EDFAST_TEST_PREFIX}<case>. See edfast_discover_tests() in CMakeLists.txt.
execute_process(COMMAND "${EDFAST_TEST_EXE}" --list OUTPUT_VARIABLE cases RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  # Listing failed (e.g. the executable was not built): a test that fails and shows why.
  add_test("${EDFAST_TEST_PREFIX}list" "${EDFAST_TEST_EXE}" --list)
  return()
endif()
string(REPLACE "\n" ";" cases "${cases}")
foreach(case IN LISTS cases)
  if(case)
    add_test("${EDFAST_TEST_PREFIX}${case}" "${EDFAST_TEST_EXE}" "${case}")
    set_tests_properties("${EDFAST_TEST_PREFIX}${case}" PROPERTIES TIMEOUT 300)
  endif()
endforeach()
