/* placeholder, replaced by Plex engine detection */
#include "plexburst/compat.h"
