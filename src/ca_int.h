/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_CA_INT_H
#define MITMREC_CA_INT_H

/*
 * Private to the CA: ca.c loads, creates and stores the CA's key and certificate; ca_forge.c
 * forges leaf certificates and keeps their cache.
 */

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca.h"

/* Extensions every leaf carries, made once per CA rather than once per leaf. */
enum { EXT_BC, EXT_KU, EXT_EKU, EXT_SKI, EXT_AKI, EXT_COUNT };

/* Not thread-safe: one CA belongs to one event loop. */
struct ca {
    EVP_PKEY *key;
    X509 *cert;
    char *file;
    char *cert_path;
    EVP_PKEY *leaf_key;
    EVP_MD *sha256;
    const EVP_MD *sign_md; /* NULL for EdDSA keys, which take no separate digest */
    X509_EXTENSION *leaf_ext[EXT_COUNT];
    struct leaf **buckets;
    struct leaf *newest, *oldest;
    size_t count, hits;
    uint64_t seed;
};

/*
 * ca.c: the one place where OpenSSL's error queue becomes a message (into err, errlen bytes,
 * naming file) and an errno, which is returned; err may be NULL.
 */
int ca_ossl_error(char *err, size_t errlen, const char *file, const char *what);

/* ca.c: writes "file: what: strerror(-rc)" into err and returns rc. */
int ca_errno_error(int rc, char *err, size_t errlen, const char *file, const char *what);

/* ca.c: gives x a random 128-bit serial number. 0, or -1 when OpenSSL failed. */
int ca_set_random_serial(X509 *x);

/*
 * ca_forge.c: makes the per-run leaf key, the leaf extensions and the empty cache for a
 * loaded CA. 0, or a negative errno with a reason in err.
 */
int ca_prepare_leaves(ca_t *ca, char *err, size_t errlen);

/* ca_forge.c: frees the cached leaves and what ca_prepare_leaves made (any part may be
   missing). */
void ca_free_leaves(ca_t *ca);

#endif
