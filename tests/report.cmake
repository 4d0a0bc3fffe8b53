# What each night brought: run records with the report's summary, `status` (dates, --limit,
# --run ID) and `report --html`, after a week of nightly syncs through the local cloud; the page
# is also loaded in headless Chromium (test_report_browser, skipped when chromium is absent).
pb_add_test(NAME test_report SOURCES test_report.c LABELS cli TIMEOUT 600)
find_package(ZLIB REQUIRED)
target_link_libraries(test_report PRIVATE ZLIB::ZLIB)
add_test(NAME test_report_browser COMMAND test_report browser)
set_tests_properties(test_report_browser PROPERTIES LABELS "cli;browser" TIMEOUT 900
    SKIP_RETURN_CODE 77
    ENVIRONMENT "PB_BUILD_DIR=${CMAKE_BINARY_DIR};PB_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
