/*
 * http_status: the error table of docs/http.md, from a CAIRN_E* code to the
 * HTTP status and the stable error code the JSON API answers with. A pure
 * table, kept apart from the gateway so that a unit test can hold it to the
 * documented one.
 */
#ifndef CAIRN_HTTP_STATUS_H
#define CAIRN_HTTP_STATUS_H

/* Sets *status and *code (a static string) for rv; anything the table does
 * not name is 500 "internal". */
void http_status_of(int rv, int *status, const char **code);

#endif /* CAIRN_HTTP_STATUS_H */
