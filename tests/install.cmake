# Install, every night, help that teaches (issue 13): shell tests over the built binary, its
# generated man page and completions, the systemd units and the Debian package. Each skips with
# exit 77 and says why when a tool it needs is missing.
foreach(t test_install test_install_systemd test_help)
    add_test(NAME ${t} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
    set_tests_properties(${t} PROPERTIES LABELS "install;cli" TIMEOUT 600 SKIP_RETURN_CODE 77
        ENVIRONMENT "PB_BUILD_DIR=${CMAKE_BINARY_DIR};PB_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endforeach()
# the package test runs cpack over the build tree; one at a time with the systemd test (both
# unpack it)
set_tests_properties(test_install test_install_systemd PROPERTIES RESOURCE_LOCK pb_package)
