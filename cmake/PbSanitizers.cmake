# PB_SANITIZE="address;undefined" builds everything with those sanitizers.
if(PB_SANITIZE)
    foreach(s IN LISTS PB_SANITIZE)
        add_compile_options(-fsanitize=${s})
        add_link_options(-fsanitize=${s})
    endforeach()
    add_compile_options(-fno-omit-frame-pointer -fno-sanitize-recover=all)
endif()
