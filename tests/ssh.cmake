# Tests of the SSH transport (issue 6): a real OpenSSH server on 127.0.0.1, started by the test
# itself (scripts/ssh-test-server installs openssh-server when missing and root). Labels: online
# (talks to a server) and integration.
pb_add_test(NAME test_ssh SOURCES test_ssh.c LABELS online integration TIMEOUT 300)
