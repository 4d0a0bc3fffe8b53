/* placeholder, replaced by `plexburst check` */
#include "cli.h"
int cmd_check(int argc, char **argv)
{
    return CLI_EXIT_ERROR;
}
