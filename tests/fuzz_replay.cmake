# The seed corpus of every fuzz target (tests/fuzz/corpus/<target>: seeds and past findings)
# replayed once through the target as a plain test, in every build (no clang needed).
foreach(t bundle frame list answer solid changeset s3xml manifest settings)
    pb_add_test(NAME fuzz_replay_${t} SOURCES fuzz/fuzz_${t}.c fuzz/fuzz_replay.c
                LABELS unit TIMEOUT 120)
    target_include_directories(fuzz_replay_${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/fuzz)
    target_compile_definitions(fuzz_replay_${t} PRIVATE PB_FUZZ_TARGET="${t}")
endforeach()
