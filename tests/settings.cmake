# settings.cmake: strict numeric options and settings, known PLEXBURST_* keys of a config file.
pb_add_test(NAME test_settings SOURCES test_settings.c LABELS unit cli)
