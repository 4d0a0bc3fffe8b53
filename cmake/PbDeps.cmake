# Finds every dependency (Debian 12 packages; scripts/install-deps installs them) and gathers
# them in the INTERFACE target pb_deps. A missing one stops the configure with the package name:
# no feature is ever silently dropped.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Librsync)
if(NOT Librsync_FOUND)
    message(FATAL_ERROR "librsync not found: install librsync-dev (scripts/install-deps)")
endif()

set(_pb_pkgs
    SQLITE3 sqlite3 libsqlite3-dev
    CURL libcurl libcurl4-openssl-dev
    LIBSSH2 libssh2 libssh2-1-dev
    EXPAT expat libexpat1-dev
    ZSTD libzstd libzstd-dev
    XXHASH libxxhash libxxhash-dev
    ICUUC icu-uc libicu-dev
    ICUI18N icu-i18n libicu-dev
    JANSSON jansson libjansson-dev
    LIBCRYPTO libcrypto libssl-dev
    YAML yaml-0.1 libyaml-dev)
set(_pb_targets)
while(_pb_pkgs)
    list(POP_FRONT _pb_pkgs var module deb)
    pkg_check_modules(${var} QUIET IMPORTED_TARGET ${module})
    if(NOT ${var}_FOUND)
        message(FATAL_ERROR "${module} not found: install ${deb} (scripts/install-deps)")
    endif()
    list(APPEND _pb_targets PkgConfig::${var})
endwhile()

# The session extension: Debian's libsqlite3 exports it; sqlite3.h declares it only with
# SQLITE_ENABLE_SESSION. Probe the symbol so a library without it fails here, not at link time.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_DEFINITIONS -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_PREUPDATE_HOOK)
set(CMAKE_REQUIRED_INCLUDES ${SQLITE3_INCLUDE_DIRS})
set(CMAKE_REQUIRED_LIBRARIES ${SQLITE3_LINK_LIBRARIES})
check_symbol_exists(sqlite3session_diff sqlite3.h PB_HAVE_SESSION)
if(NOT PB_HAVE_SESSION)
    message(FATAL_ERROR "sqlite3 lacks the session extension (sqlite3session_diff)")
endif()
unset(CMAKE_REQUIRED_DEFINITIONS)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)

add_library(pb_deps INTERFACE)
target_link_libraries(pb_deps INTERFACE ${_pb_targets} Librsync::Librsync Threads::Threads m)
