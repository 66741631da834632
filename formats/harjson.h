/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_HARJSON_H
#define MITMREC_FORMATS_HARJSON_H

#include <stddef.h>
#include <stdint.h>

/*
 * Private to the HAR writer (har.c, harmsg.c): the JSON printer its entries
 * are printed with, and the UTF-8 test that decides between text and base64.
 */

/*
 * Each entry is printed straight into a buffer, in the order its members are
 * added; nothing is built first (building a cJSON tree and printing it took
 * most of the CPU spent per request). A container is named by a handle; adding
 * to a container closes the ones opened inside it since, so the code reads
 * like tree building as long as it never goes back into a closed container
 * (that is a bug, caught as one). The output is what cJSON_PrintUnformatted
 * printed for the same tree, byte for byte.
 */
#define J_DEPTH 16

typedef unsigned jnode_t; /* 0: none */

typedef struct jctx {
    char *buf;
    size_t len, cap;
    int oom;
    int bad; /* a member added to a closed container */
    int depth;
    struct {
        jnode_t id;
        char close;   /* '}' or ']' */
        size_t count; /* members so far */
    } st[J_DEPTH];
    jnode_t next_id;
    size_t ph[2]; /* where the request and response bodies go; 0: none */
} jctx_t;

/* True when p[0..len) can be HAR text: valid UTF-8 without NUL bytes. */
int jis_text(const uint8_t *p, size_t len);

/*
 * Printing. Every call adds one member to the container obj (a key of NULL: an
 * array element) and closes what was opened inside obj since. Strings are
 * copied, made valid UTF-8 (NULL prints as ""). Nothing is returned: a failed
 * allocation sets j->oom and a member added to a closed container sets j->bad,
 * and the caller checks both once the entry is printed.
 */

/* Empties the buffer (keeping its memory) for the next entry. */
void jreset(jctx_t *j);
/* Opens the outermost object. */
jnode_t jroot(jctx_t *j);
/* Closes every open container. */
void jend(jctx_t *j);
void jstrn(jctx_t *j, jnode_t obj, const char *key, const char *s, size_t len);
void jstr(jctx_t *j, jnode_t obj, const char *key, const char *s);
/* Non-finite numbers print as -1. */
void jnum(jctx_t *j, jnode_t obj, const char *key, double v);
void jbool(jctx_t *j, jnode_t obj, const char *key, int v);
/* Opens an object or an array member; returns its handle (0 on failure). */
jnode_t jobj(jctx_t *j, jnode_t obj, const char *key);
jnode_t jarr(jctx_t *j, jnode_t obj, const char *key);
/* Leaves the value of key out and records where it goes in j->ph[which]. */
void jbody(jctx_t *j, jnode_t obj, const char *key, int which);
/* Adds {"name": ..., "value": ...} to arr; returns the object. */
jnode_t jnv(jctx_t *j, jnode_t arr, const char *name, size_t nlen, const char *value, size_t vlen);

#endif
