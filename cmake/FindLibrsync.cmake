# Finds librsync (Debian ships no pkg-config file for it) and defines Librsync::Librsync.
find_path(LIBRSYNC_INCLUDE_DIR librsync.h)
find_library(LIBRSYNC_LIBRARY NAMES rsync)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Librsync REQUIRED_VARS LIBRSYNC_LIBRARY LIBRSYNC_INCLUDE_DIR)
if(Librsync_FOUND AND NOT TARGET Librsync::Librsync)
    add_library(Librsync::Librsync UNKNOWN IMPORTED)
    set_target_properties(Librsync::Librsync PROPERTIES
        IMPORTED_LOCATION "${LIBRSYNC_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${LIBRSYNC_INCLUDE_DIR}")
endif()
