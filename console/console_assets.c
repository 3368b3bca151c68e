/* Looks up the console's embedded files. The table itself is generated at
 * build time (console/embed.cmake) into console_assets_data.c. */
#include "console_assets.h"

#include <string.h>

/* Defined in the generated console_assets_data.c, sorted by path. */
extern const struct console_asset console_asset_table[];
extern const size_t console_asset_count;

static const char console_index_path[] = "/console/index.html";

const struct console_asset *console_asset_find(const char *path)
{
    size_t i;

    if (path == NULL) {
        return NULL;
    }
    /* The console's page is served at the root too; everything else lives
     * under /console/, where index.html's links point. */
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        path = console_index_path;
    }
    /* A handful of files: a linear scan is as fast as anything here. */
    for (i = 0; i < console_asset_count; i++) {
        if (strcmp(console_asset_table[i].path, path) == 0) {
            return &console_asset_table[i];
        }
    }
    return NULL;
}

const struct console_asset *console_assets(size_t *count)
{
    *count = console_asset_count;
    return console_asset_table;
}
