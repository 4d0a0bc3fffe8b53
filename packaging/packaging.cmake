# packaging.cmake: the install rules beyond the CLI's own (cli/CMakeLists.txt installs the binary,
# the man page and the completions) and the Debian package built by CPack (`make package`):
# the systemd units, the example configuration (a conffile), the docs, and the dependencies of
# the binary with the versions dpkg-shlibdeps finds on Debian 12.
# Included by the top-level CMakeLists.txt after cli/. mkplex and the test tools are not installed.
# `cpack` (and `make install`) install what is built without building the whole tree (tests
# included) first: the top-level `make package` builds the binary and its files, then runs cpack.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(PB_SYSCONF_DIR "/etc" CACHE PATH "Where /etc/plexburst/plexburst.env goes")
set(PB_SYSTEMD_UNIT_DIR "/lib/systemd/system" CACHE PATH "Where the systemd units go")
set(PB_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/plexburst)

find_program(PB_GZIP gzip REQUIRED)
set(PB_PKG_DIR ${CMAKE_BINARY_DIR}/generated)
add_custom_command(OUTPUT ${PB_PKG_DIR}/plexburst.1.gz ${PB_PKG_DIR}/changelog.Debian.gz
    COMMAND ${PB_GZIP} -9nkf ${PB_PKG_DIR}/plexburst.1
    COMMAND ${PB_GZIP} -9nc ${PROJECT_SOURCE_DIR}/packaging/debian/changelog
        > ${PB_PKG_DIR}/changelog.Debian.gz
    DEPENDS ${PB_PKG_DIR}/plexburst.1 ${PROJECT_SOURCE_DIR}/packaging/debian/changelog
    COMMENT "Compressing the man page and the Debian changelog")
add_custom_target(pb_package_files ALL
    DEPENDS ${PB_PKG_DIR}/plexburst.1.gz ${PB_PKG_DIR}/changelog.Debian.gz)
add_dependencies(pb_package_files pb_docs)

install(FILES ${PB_PKG_DIR}/plexburst.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/systemd/plexburst-sync.service
    ${PROJECT_SOURCE_DIR}/packaging/systemd/plexburst-sync.timer
    DESTINATION ${PB_SYSTEMD_UNIT_DIR})
# readable by root only: it may hold keys (systemd reads it before dropping to User=)
install(FILES ${PB_PKG_DIR}/plexburst.env DESTINATION ${PB_SYSCONF_DIR}/plexburst
    PERMISSIONS OWNER_READ OWNER_WRITE)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PB_PKG_DIR}/changelog.Debian.gz
    ${PROJECT_SOURCE_DIR}/packaging/debian/copyright
    DESTINATION ${PB_DOC_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/lintian-overrides
    DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME plexburst)
file(GLOB PB_DOCS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PB_DOCS} DESTINATION ${PB_DOC_DIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME plexburst)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "plexburst maintainers <maintainers@users.noreply.b-seed-00ff1db3.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Plex-aware delta sync engine for cloud bursting")
# the extended description (CPack puts the summary above it as the synopsis)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "plexburst lets a rented cloud server do the heavy work of a
Plex Media Server (scanning, media analysis, thumbnails, markers) on a copy
of the library and brings back only what changed: the rows of the SQLite
databases and the new files, as a delta, merged into the home library all or
nothing. A systemd timer runs it every night.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps on the binary (Debian 12); checked again by tests/test_install.sh
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6 (>= 2.34), libcurl4 (>= 7.16.2), libexpat1 (>= 2.0.1), \
libicu72 (>= 72.1~rc-1~), libjansson4 (>= 2.14), librsync2 (>= 2.3.1), libsqlite3-0 (>= 3.24.0), \
libssh2-1 (>= 1.2.8), libssl3 (>= 3.0.0), libxxhash0 (>= 0.8.0), libyaml-0-2, libzstd1 (>= 1.5.2)")
# https to S3 and Scaleway; rclone and fuse3 mount the media for the cloud's Plex
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "rclone, fuse3, sudo")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
