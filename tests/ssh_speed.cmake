# Tests of the SSH transport's speed work (docs/ssh.md, "Benchmark"): the bulk AES-CTR offered to
# libssh2 (unit), and SFTP downloads through the pipelined read path against a real sshd
# (online, integration; skipped when sshd cannot run).
pb_add_test(NAME test_ssh_bulk SOURCES test_ssh_bulk.c LABELS unit)
pb_add_test(NAME test_sftp_read SOURCES test_sftp_read.c transfer_util.c LABELS online integration
    TIMEOUT 900)
