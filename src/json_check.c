/*
 * json_check: exits 0 when every file named on the command line is one JSON
 * document our own parser (json.c) accepts, and 1 with the parser's message
 * otherwise. The build runs it on src/openapi.json before embedding it, so a
 * broken document fails the build instead of reaching /v1/openapi.json.
 *
 *   cairn-json-check FILE...
 */
#include <stdio.h>
#include <stdlib.h>

#include "json.h"

/* Larger than any document we embed; a bound rather than trust in the file. */
#define JSON_CHECK_FILE_BYTES_MAX (16u * 1024 * 1024)

static int check(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0;
    struct arena arena;
    struct json_value *v;
    char errmsg[256];
    int rv = 1;
    if (f == NULL) {
        perror(path);
        return 1;
    }
    text = malloc(JSON_CHECK_FILE_BYTES_MAX + 1);
    if (text == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
        goto err_after_open;
    }
    len = fread(text, 1, JSON_CHECK_FILE_BYTES_MAX + 1, f);
    if (ferror(f)) {
        perror(path);
        goto err_after_alloc;
    }
    if (len > JSON_CHECK_FILE_BYTES_MAX) {
        fprintf(stderr, "%s: larger than %u bytes\n", path, JSON_CHECK_FILE_BYTES_MAX);
        goto err_after_alloc;
    }
    arena_init(&arena);
    if (json_parse(text, len, &arena, &v, errmsg, sizeof(errmsg)) != 0) {
        fprintf(stderr, "%s: not valid JSON: %s\n", path, errmsg);
    } else {
        rv = 0;
    }
    arena_free(&arena);
err_after_alloc:
    free(text);
err_after_open:
    fclose(f);
    return rv;
}

int main(int argc, char **argv)
{
    int i;
    int failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        failed |= check(argv[i]);
    }
    return failed;
}
