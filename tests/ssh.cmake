# Tests of the SSH transport (docs/ssh.md): a real OpenSSH server on 127.0.0.1, started by the test
# itself (scripts/ssh-test-server installs openssh-server when missing and root). Labels: online
# (talks to a server) and integration.
pb_add_test(NAME test_ssh SOURCES test_ssh.c transfer_util.c LABELS online integration TIMEOUT 900)

# The SSH benchmark's driver (bench/bench_ssh.sh runs it; never in CI). Built here because it
# reaches the internal transfer/ssh.h, as the tests do.
add_executable(bench_ssh ${PROJECT_SOURCE_DIR}/bench/bench_ssh.c)
set_target_properties(bench_ssh PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_link_libraries(bench_ssh PRIVATE pb_testlib)
