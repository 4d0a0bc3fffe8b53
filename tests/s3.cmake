# Tests of the S3 store (docs/s3.md) against a real signature-checking S3 server on loopback, which
# the test installs (npm, cached in the build tree) and starts itself through
# scripts/s3-test-server; rclone (Debian) cross-checks the objects. Skips only without node/npm.
pb_add_test(NAME test_s3 SOURCES test_s3.c transfer_util.c LABELS online integration TIMEOUT 900)

# bench_s3: the S3 store's put/get timed for bench/bench_s3.sh (on demand, never in CI).
add_executable(bench_s3 ${PROJECT_SOURCE_DIR}/bench/bench_s3.c)
set_target_properties(bench_s3 PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_link_libraries(bench_s3 PRIVATE pb_testlib)
