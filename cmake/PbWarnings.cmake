# Warnings for every target: -Wall -Wextra and a few more; PB_WERROR turns them into errors.
add_compile_options(-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wno-unused-parameter)
if(PB_WERROR)
    add_compile_options(-Werror)
endif()
