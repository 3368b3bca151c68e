/* The web console's files, embedded in the binary at build time.
 *
 * console/CMakeLists.txt turns every file of console/ (but the build files)
 * into a constant array, so a node serves its console with no file on disk
 * and no network. The HTTP layer maps a request path to an asset with
 * console_asset_find() and sends data/len with content_type; the etag lets it
 * answer If-None-Match with 304. */
#ifndef CAIRN_CONSOLE_ASSETS_H
#define CAIRN_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset
{
    const char *path;          /* "/console/app.js"; index.html is also "/" */
    const char *content_type;  /* with "; charset=utf-8" for text */
    const unsigned char *data; /* the file's bytes, static */
    size_t len;                /* bytes in data */
    const char *etag;          /* "\"<first 16 hex of SHA-256>\"", quoted */
};

/* The asset served at path (the URL path without query string: "/",
 * "/index.html" or "/console/<file>"), or NULL. Valid for the whole process;
 * the caller frees nothing. */
const struct console_asset *console_asset_find(const char *path);

/* Every asset, for listings and tests: sets *count and returns the table. */
const struct console_asset *console_assets(size_t *count);

#endif /* CAIRN_CONSOLE_ASSETS_H */
