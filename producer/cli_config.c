/* cli_config.c: the --config FILE option of every `mutirao` command, so that
 * all of them accept both spellings and report a bad file the same way. */
#include "cli_config.h"

#include <stdio.h>
#include <string.h>

#include "config.h"

int cli_config_option(int argc, char **argv, int *i, const char *prog, const char *hint)
{
    const char *a = argv[*i];
    if (strcmp(a, "--config") && strncmp(a, "--config=", 9))
        return CLI_CONFIG_OTHER;
    const char *v = a[8] == '=' ? a + 9 : *i + 1 < argc ? argv[++*i] : NULL;
    if (!v || !*v) {
        fprintf(stderr, "%s: option --config needs a file (see %s)\n", prog, hint);
        return 2;
    }
    char why[512];
    if (config_use_file(v, why, sizeof why) != 0) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return 2;
    }
    return 0;
}
