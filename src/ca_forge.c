/* SPDX-License-Identifier: MIT */
#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ca_int.h"

/* Browsers reject leaves valid for more than 398 days; a year stays clear of that. */
#define LEAF_VALID_DAYS 365
/* RFC 5280's upper bound for a commonName; longer names go in subjectAltName only. */
#define CN_MAX 64
#define DNS_NAME_MAX 253

/*
 * The leaf cache holds at most CACHE_MAX certificates and drops the least recently used.
 * Twice as many buckets as entries keeps chains short. An entry is also re-forged once it
 * is CACHE_MAX_AGE old, so a long run never hands out a leaf near its notAfter.
 */
#define CACHE_MAX 4096
#define CACHE_BUCKETS 8192
#define CACHE_MAX_AGE (7 * 86400)

struct leaf {
    struct leaf *hnext;       /* bucket chain */
    struct leaf *prev, *next; /* use order, most recent first */
    uint64_t hash;
    time_t born;
    X509 *cert;               /* one reference owned by the cache */
    unsigned char digest[32]; /* SHA-256 of the upstream DER, zeros without one */
    bool has_upstream;
    size_t namelen;
    char name[]; /* "" when the client sent no name */
};

/* SHA-1 of the public key bits: RFC 5280's first method for key identifiers. */
static ASN1_OCTET_STRING *key_id(const unsigned char *bits, int len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ASN1_OCTET_STRING *os = NULL;

    if (EVP_Digest(bits, (size_t)len, md, &mdlen, EVP_sha1(), NULL) &&
        (os = ASN1_OCTET_STRING_new()) && !ASN1_OCTET_STRING_set(os, md, (int)mdlen)) {
        ASN1_OCTET_STRING_free(os);
        os = NULL;
    }
    return os;
}

/* The per-run leaf key, the digests, and the extensions that are the same in every leaf. */
int ca_prepare_leaves(ca_t *ca, char *err, size_t errlen)
{
    X509V3_CTX ctx;
    X509_PUBKEY *pub = NULL;
    const unsigned char *bits;
    int bitslen;
    ASN1_OCTET_STRING *ski = NULL, *caski = NULL;
    AUTHORITY_KEYID *akid = NULL;
    bool ok;

    if (!(ca->buckets = calloc(CACHE_BUCKETS, sizeof *ca->buckets)))
        return ca_errno_error(-ENOMEM, err, errlen, ca->file, "cannot set up the CA");
    /* EdDSA signs the message itself; every other key type gets SHA-256. */
    ca->sign_md =
        EVP_PKEY_is_a(ca->key, "ED25519") || EVP_PKEY_is_a(ca->key, "ED448") ? NULL : ca->sha256;
    X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
    const ASN1_OCTET_STRING *have = X509_get0_subject_key_id(ca->cert);
    const ASN1_BIT_STRING *cabits = X509_get0_pubkey_bitstr(ca->cert);

    ok = RAND_bytes((unsigned char *)&ca->seed, sizeof ca->seed) == 1 &&
         (ca->leaf_key = EVP_EC_gen("P-256")) && X509_PUBKEY_set(&pub, ca->leaf_key) &&
         X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, pub) &&
         (ski = key_id(bits, bitslen)) &&
         /* A CA without its own key identifier gets the one RFC 5280 would compute. */
         (caski = have     ? ASN1_OCTET_STRING_dup(have)
                  : cabits ? key_id(cabits->data, cabits->length)
                           : NULL) &&
         (akid = AUTHORITY_KEYID_new()) &&
         (ca->leaf_ext[EXT_BC] =
              X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE")) &&
         (ca->leaf_ext[EXT_KU] =
              X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,digitalSignature")) &&
         (ca->leaf_ext[EXT_EKU] =
              X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "serverAuth")) &&
         (ca->leaf_ext[EXT_SKI] = X509V3_EXT_i2d(NID_subject_key_identifier, 0, ski));
    if (ok) {
        akid->keyid = caski;
        caski = NULL;
        ca->leaf_ext[EXT_AKI] = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
        ok = ca->leaf_ext[EXT_AKI] != NULL;
    }
    X509_PUBKEY_free(pub);
    ASN1_OCTET_STRING_free(ski);
    ASN1_OCTET_STRING_free(caski);
    AUTHORITY_KEYID_free(akid);
    return ok ? 0 : ca_ossl_error(err, errlen, ca->file, "cannot set up leaf certificates");
}

static void lru_unlink(ca_t *ca, struct leaf *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        ca->newest = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        ca->oldest = l->prev;
}

static void lru_push_newest(ca_t *ca, struct leaf *l)
{
    l->prev = NULL;
    l->next = ca->newest;
    if (ca->newest)
        ca->newest->prev = l;
    ca->newest = l;
    if (!ca->oldest)
        ca->oldest = l;
}

static void cache_remove(ca_t *ca, struct leaf *l)
{
    struct leaf **pp = &ca->buckets[l->hash & (CACHE_BUCKETS - 1)];
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    lru_unlink(ca, l);
    ca->count--;
    X509_free(l->cert);
    free(l);
}

void ca_free_leaves(ca_t *ca)
{
    for (struct leaf *l = ca->newest, *next; l; l = next) {
        next = l->next;
        X509_free(l->cert);
        free(l);
    }
    free(ca->buckets);
    for (int i = 0; i < EXT_COUNT; i++)
        X509_EXTENSION_free(ca->leaf_ext[i]);
    EVP_PKEY_free(ca->leaf_key);
}

EVP_PKEY *ca_leaf_key(const ca_t *ca)
{
    return ca ? ca->leaf_key : NULL;
}

size_t ca_cache_size(const ca_t *ca)
{
    return ca ? ca->count : 0;
}

size_t ca_cache_hits(const ca_t *ca)
{
    return ca ? ca->hits : 0;
}

/*
 * Names become IA5String SAN entries and a CN, so only the characters of host names (and a
 * wildcard's star) are let through; anything else from a client's SNI is refused.
 */
static bool valid_host_name(const char *name, size_t len)
{
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '*'))
            return false;
    }
    return true;
}

/* Parses an IPv4 or IPv6 literal into ip; returns its length, or 0 for a host name. */
static size_t parse_ip(const char *name, unsigned char ip[16])
{
    if (inet_pton(AF_INET, name, ip) == 1)
        return 4;
    if (inet_pton(AF_INET6, name, ip) == 1)
        return 16;
    return 0;
}

/* Whether a client would already accept name (or ip) with the SAN entries in gens. */
static bool san_covers(const GENERAL_NAMES *gens, const char *name, const unsigned char *ip,
                       size_t iplen)
{
    size_t namelen = strlen(name);
    const char *dot = strchr(name, '.');

    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (iplen && g->type == GEN_IPADD) {
            if ((size_t)g->d.iPAddress->length == iplen &&
                memcmp(g->d.iPAddress->data, ip, iplen) == 0)
                return true;
        } else if (!iplen && g->type == GEN_DNS) {
            const char *d = (const char *)g->d.dNSName->data;
            size_t dlen = (size_t)g->d.dNSName->length;
            if (dlen == namelen && strncasecmp(d, name, dlen) == 0)
                return true;
            /* "*.example.com" covers exactly one more label. */
            if (dlen > 2 && d[0] == '*' && d[1] == '.' && dot && dot != name &&
                strlen(dot) == dlen - 1 && strncasecmp(dot, d + 1, dlen - 1) == 0)
                return true;
        }
    }
    return false;
}

static int san_push(GENERAL_NAMES *gens, const char *name, const unsigned char *ip, size_t iplen)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s = iplen ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
    int ok = g && s && (iplen ? ASN1_STRING_set(s, ip, (int)iplen) : ASN1_STRING_set(s, name, -1));
    if (ok) {
        GENERAL_NAME_set0_value(g, iplen ? GEN_IPADD : GEN_DNS, s);
        s = NULL;
        ok = sk_GENERAL_NAME_push(gens, g) > 0;
    }
    if (!ok) {
        ASN1_STRING_free(s);
        GENERAL_NAME_free(g);
        return -1;
    }
    return 0;
}

/* Adds name to gens unless it is covered already. */
static int san_add_name(GENERAL_NAMES *gens, const char *name)
{
    unsigned char ip[16];
    size_t iplen = parse_ip(name, ip);
    if (!iplen && !valid_host_name(name, strlen(name)))
        return 0;
    return san_covers(gens, name, ip, iplen) ? 0 : san_push(gens, name, ip, iplen);
}

/* The most specific (last) commonName of a certificate, as UTF-8; caller OPENSSL_frees. */
static char *subject_cn(X509 *x)
{
    const X509_NAME *subj = X509_get_subject_name(x);
    int idx = -1;
    for (int i; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, idx)) >= 0;)
        idx = i;
    if (idx < 0)
        return NULL;
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)));
    /* A CN with an embedded NUL is an attack on C strings, not a name. */
    if (len <= 0 || memchr(utf8, '\0', (size_t)len)) {
        OPENSSL_free(utf8);
        ERR_clear_error();
        return NULL;
    }
    return (char *)utf8;
}

/* The names the leaf carries: the upstream's DNS and IP entries, then name if needed. */
static int leaf_names(X509 *upstream, const char *name, const char *up_cn, GENERAL_NAMES *gens)
{
    if (upstream) {
        GENERAL_NAMES *up = X509_get_ext_d2i(upstream, NID_subject_alt_name, NULL, NULL);
        for (int i = 0; i < sk_GENERAL_NAME_num(up); i++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(up, i), *copy;
            if (g->type != GEN_DNS && g->type != GEN_IPADD)
                continue;
            if (!(copy = GENERAL_NAME_dup(g)) || sk_GENERAL_NAME_push(gens, copy) <= 0) {
                GENERAL_NAME_free(copy);
                GENERAL_NAMES_free(up);
                return -1;
            }
        }
        GENERAL_NAMES_free(up);
        ERR_clear_error(); /* an upstream without subjectAltName is no error */
        /* Clients only fall back to the CN when there is no subjectAltName: keep that name. */
        if (sk_GENERAL_NAME_num(gens) == 0 && up_cn && san_add_name(gens, up_cn) < 0)
            return -1;
    }
    return name ? san_add_name(gens, name) : 0;
}

/* Builds and signs a leaf; *out gets the only reference. */
static int leaf_build(ca_t *ca, const char *name, X509 *upstream, X509 **out)
{
    char *up_cn = upstream ? subject_cn(upstream) : NULL;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    X509_NAME *subj = X509_NAME_new();
    X509 *x = X509_new();
    int rc = -ENOMEM;

    if (!gens || !subj || !x || leaf_names(upstream, name, up_cn, gens) < 0)
        goto fail;
    if (sk_GENERAL_NAME_num(gens) == 0) {
        rc = -EINVAL; /* nothing a client could check the certificate against */
        goto fail;
    }
    /* The upstream's CN is mirrored (per the header); clients match on subjectAltName. */
    const char *cn = up_cn ? up_cn : name;
    if (cn && strlen(cn) <= CN_MAX &&
        !X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0))
        goto fail;

    const ASN1_TIME *ca_end = X509_get0_notAfter(ca->cert);
    bool ok = X509_set_version(x, X509_VERSION_3) && ca_set_random_serial(x) == 0 &&
              X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) &&
              X509_set_subject_name(x, subj) && X509_gmtime_adj(X509_getm_notBefore(x), -86400) &&
              X509_time_adj_ex(X509_getm_notAfter(x), LEAF_VALID_DAYS, 0, NULL) &&
              X509_set_pubkey(x, ca->leaf_key);
    /* No leaf outlives its CA: clients would reject it at that point anyway. */
    if (ok && ASN1_TIME_compare(X509_get0_notAfter(x), ca_end) > 0)
        ok = X509_set1_notAfter(x, ca_end);
    for (int i = 0; ok && i < EXT_COUNT; i++)
        ok = X509_add_ext(x, ca->leaf_ext[i], -1);
    /* RFC 5280: with an empty subject, subjectAltName must be critical. */
    ok = ok &&
         X509_add1_ext_i2d(x, NID_subject_alt_name, gens, X509_NAME_entry_count(subj) == 0,
                           X509V3_ADD_DEFAULT) == 1 &&
         X509_sign(x, ca->key, ca->sign_md) > 0;
    if (!ok) {
        rc = ca_ossl_error(NULL, 0, NULL, "cannot forge a leaf certificate");
        goto fail;
    }
    *out = x;
    x = NULL;
    rc = 0;
fail:
    X509_free(x);
    X509_NAME_free(subj);
    GENERAL_NAMES_free(gens);
    OPENSSL_free(up_cn);
    return rc;
}

/* FNV-1a, started from a per-CA random seed so names can't be picked to share a bucket. */
static uint64_t cache_hash(const ca_t *ca, const char *name, size_t namelen,
                           const unsigned char digest[32], bool has_upstream)
{
    uint64_t h = 14695981039346656037ULL ^ ca->seed;
    for (size_t i = 0; i < 32; i++)
        h = (h ^ digest[i]) * 1099511628211ULL;
    h = (h ^ (has_upstream ? 1 : 2)) * 1099511628211ULL;
    for (size_t i = 0; i < namelen; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

int ca_forge(ca_t *ca, const char *name, X509 *upstream, X509 **cert_out)
{
    if (!cert_out)
        return -EINVAL;
    *cert_out = NULL;
    if (!ca)
        return -EINVAL;
    if (name && !*name)
        name = NULL;

    unsigned char ip[16];
    size_t namelen = name ? strlen(name) : 0;
    if (name && !parse_ip(name, ip) && !valid_host_name(name, namelen))
        return -EINVAL;
    if (!name && !upstream)
        return -EINVAL;

    unsigned char digest[32] = {0};
    unsigned int dlen = 0;
    if (upstream && (!X509_digest(upstream, ca->sha256, digest, &dlen) || dlen != sizeof digest))
        return ca_ossl_error(NULL, 0, NULL, "cannot hash the upstream certificate");

    uint64_t h = cache_hash(ca, name, namelen, digest, upstream != NULL);
    time_t now = time(NULL);
    for (struct leaf *l = ca->buckets[h & (CACHE_BUCKETS - 1)]; l; l = l->hnext) {
        if (l->hash != h || l->has_upstream != (upstream != NULL) || l->namelen != namelen ||
            memcmp(l->digest, digest, sizeof digest) != 0 ||
            (namelen && memcmp(l->name, name, namelen) != 0))
            continue;
        if (now - l->born >= CACHE_MAX_AGE || now < l->born) {
            cache_remove(ca, l);
            break;
        }
        if (!X509_up_ref(l->cert))
            return -ENOMEM;
        lru_unlink(ca, l);
        lru_push_newest(ca, l);
        ca->hits++;
        *cert_out = l->cert;
        return 0;
    }

    X509 *x = NULL;
    int rc = leaf_build(ca, name, upstream, &x);
    if (rc < 0)
        return rc;
    /* The cache only saves work: without memory for an entry the leaf is still good. */
    struct leaf *l = malloc(sizeof *l + namelen + 1);
    if (!l || !X509_up_ref(x)) {
        free(l);
        *cert_out = x;
        return 0;
    }
    if (ca->count >= CACHE_MAX)
        cache_remove(ca, ca->oldest);
    l->hash = h;
    l->born = now;
    l->cert = x;
    memcpy(l->digest, digest, sizeof digest);
    l->has_upstream = upstream != NULL;
    l->namelen = namelen;
    if (namelen)
        memcpy(l->name, name, namelen);
    l->name[namelen] = '\0';
    l->hnext = ca->buckets[h & (CACHE_BUCKETS - 1)];
    ca->buckets[h & (CACHE_BUCKETS - 1)] = l;
    lru_push_newest(ca, l);
    ca->count++;
    *cert_out = x;
    return 0;
}
