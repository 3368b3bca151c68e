/* cairnctl's help for one command (help.c). */
#ifndef CAIRNCTL_HELP_H
#define CAIRNCTL_HELP_H

#include <stdio.h>

enum {
    HELP_FOUND = 0,      /* the page was printed */
    HELP_NO_COMMAND = 1, /* no such command; nothing printed */
    HELP_NO_VERB = 2,    /* no such verb; the command's overview went to err */
};

/* Print the help of `cairnctl CMD [VERB]` to out. VERB may be NULL; for a
 * command without verbs it is ignored. */
int help_page(FILE *out, FILE *err, const char *cmd, const char *verb);

#endif /* CAIRNCTL_HELP_H */
