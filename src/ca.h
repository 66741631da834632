/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_CA_H
#define MITMREC_CA_H

#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/*
 * The certificate authority that signs forged leaf certificates.
 *
 * Layout (the same as mitmproxy's, so ~/.mitmproxy/mitmproxy-ca.pem loads as is):
 *   DIR/mitmrec-ca.pem       private key and certificate, PEM, mode 0600
 *   DIR/mitmrec-ca-cert.pem  certificate only, PEM (what users install)
 *   DIR/mitmrec-ca-cert.cer  certificate only, DER
 * DIR is ~/.mitmrec, created with mode 0700.
 */

typedef struct ca ca_t;

/*
 * Opens the CA. file == NULL: ~/.mitmrec/mitmrec-ca.pem, created with the
 * files above on first use ($HOME, else the passwd entry, gives ~). file given:
 * a PEM file holding a private key and a certificate (either order), never
 * created. A key file that group or others can read is refused.
 * On failure returns a negative errno and writes a one-line reason that names
 * the file into err (errlen bytes).
 */
int ca_open(const char *file, ca_t **out, char *err, size_t errlen);

/* Frees the CA and its leaf cache. NULL is a no-op. */
void ca_free(ca_t *ca);

/* The CA certificate (borrowed). */
X509 *ca_cert(const ca_t *ca);

/* Path of the PEM certificate-only file when one exists, else the CA file (borrowed). */
const char *ca_cert_path(const ca_t *ca);

/*
 * Returns a leaf certificate for a TLS server named name (an SNI host name or
 * an IP address literal; may be NULL when the client sent no SNI, then the
 * upstream certificate's names are used), signed by the CA, with the per-run
 * ECDSA P-256 leaf key. When upstream is given, its subject CN and
 * subjectAltNames are mirrored (plus name, if missing). Validity: from one
 * day before now, under 397 days. Extensions: basicConstraints CA:FALSE,
 * keyUsage digitalSignature, extendedKeyUsage serverAuth, subjectKeyIdentifier,
 * authorityKeyIdentifier, subjectAltName.
 * Cached per (name, SHA-256 of upstream). *cert_out gets a new reference the
 * caller releases with X509_free. Returns 0 or a negative errno.
 */
int ca_forge(ca_t *ca, const char *name, X509 *upstream, X509 **cert_out);

/* The per-run leaf private key (borrowed). */
EVP_PKEY *ca_leaf_key(const ca_t *ca);

/* Number of leaves in the cache, and how many requests the cache answered. */
size_t ca_cache_size(const ca_t *ca);
size_t ca_cache_hits(const ca_t *ca);

#endif
