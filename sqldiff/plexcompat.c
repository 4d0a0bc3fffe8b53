/* placeholder, replaced by the compatibility layer */
#include "plexburst/compat.h"
