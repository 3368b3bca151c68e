/* The embedded console: every file is there, "/" is the page, types are
 * right, and nothing outside the console is served. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "console_assets.h"

static void expect_type(const char *path, const char *type)
{
    const struct console_asset *a = console_asset_find(path);
    if (a == NULL || strcmp(a->content_type, type) != 0) {
        fprintf(stderr, "test_console_assets: %s: want %s, got %s\n", path, type,
                a == NULL ? "no asset" : a->content_type);
        assert(!"wrong content type");
    }
}

int main(void)
{
    size_t n = 0;
    size_t i;
    const struct console_asset *all = console_assets(&n);
    const struct console_asset *root = console_asset_find("/");

    /* The root is index.html, an HTML page that loads the app module. */
    assert(root != NULL);
    assert(root == console_asset_find("/console/index.html"));
    assert(root == console_asset_find("/index.html"));
    assert(strstr((const char *)root->data, "/console/app.js") != NULL);
    expect_type("/", "text/html; charset=utf-8");
    expect_type("/console/app.js", "text/javascript; charset=utf-8");
    expect_type("/console/console.css", "text/css; charset=utf-8");
    expect_type("/console/icon.svg", "image/svg+xml");

    /* Build files and anything else are not assets. */
    assert(console_asset_find("/console/CMakeLists.txt") == NULL);
    assert(console_asset_find("/console/embed.cmake") == NULL);
    assert(console_asset_find("/console/console_assets.h") == NULL);
    assert(console_asset_find("/console/") == NULL);
    assert(console_asset_find("/console/../CMakeLists.txt") == NULL);
    assert(console_asset_find("") == NULL);
    assert(console_asset_find(NULL) == NULL);

    /* Each asset: a path under /console/, its bytes NUL-terminated after
     * len, and a quoted ETag. */
    assert(n >= 8);
    for (i = 0; i < n; i++) {
        assert(strncmp(all[i].path, "/console/", 9) == 0);
        assert(all[i].data[all[i].len] == 0);
        assert(all[i].etag[0] == '"'); /* quoted, as HTTP wants it */
        assert(strlen(all[i].etag) == 18);
        assert(console_asset_find(all[i].path) == &all[i]);
    }
    printf("test_console_assets: %zu assets OK\n", n);
    return 0;
}
