/* SPDX-License-Identifier: MIT */
#ifndef MITMREC_FORMATS_PCAPREAD_H
#define MITMREC_FORMATS_PCAPREAD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Streaming reader for pcapng (any byte order, any number of sections and
 * interfaces) and classic pcap (micro- or nanosecond, either byte order).
 * The format is detected from the first four bytes.
 *
 * Bytes go in through pcapread_feed, split anywhere; blocks come out through
 * callbacks, in file order, as soon as they are complete. A complete block
 * inside the fed buffer is parsed in place; only a block that straddles two
 * feeds is copied into an internal buffer, which grows up to the size of the
 * largest block seen and never beyond PCAPREAD_MAX_BLOCK. Nothing is
 * allocated per packet.
 *
 * Callbacks run only inside pcapread_feed (and never from pcapread_finish
 * except on_error). Pointers they receive are borrowed for the duration of
 * the call. A callback returning non-zero stops the reader: the feed returns
 * that value, and so does every later call. Callbacks must not call back into
 * the same reader.
 *
 * Malformed input: on_error(opaque, offset, message) is called once with the
 * file offset of the first byte of the bad block and a one-line message, and
 * the call returns -EBADMSG (and so does every later call). Every block before
 * the bad one has been delivered.
 */

#define PCAPREAD_MAX_BLOCK (16u * 1024u * 1024u) /* larger blocks are an error */
#define PCAPREAD_MAX_INTERFACES 65536u           /* per section */

#define PCAPREAD_SECRETS_TLS 0x544c534bu /* DSB type: NSS key log lines */

typedef struct pcapread pcapread_t;

/* A pcapng Section Header Block, or the header of a classic pcap file. */
typedef struct pcapread_section {
    uint32_t index; /* 0, 1, ... in file order */
    int classic;    /* 1 for classic pcap (one section, one interface) */
    int big_endian;
    uint16_t major, minor; /* format version */
    uint64_t offset;       /* file offset of the block */
} pcapread_section_t;

/* An Interface Description Block (or the classic pcap header's link type). */
typedef struct pcapread_interface {
    uint32_t id;         /* file-wide: 0, 1, ... in file order over all sections */
    uint32_t section_id; /* the id within its section, as packets name it there */
    uint32_t section;    /* pcapread_section_t.index */
    uint16_t linktype;   /* LINKTYPE_* */
    uint32_t snaplen;
    uint8_t tsresol;         /* raw if_tsresol (6 when absent, 9 for nanosecond pcap) */
    int64_t tsoffset;        /* if_tsoffset in seconds, 0 when absent */
    const char *name;        /* if_name, NUL-terminated, or NULL */
    const char *description; /* if_description, NUL-terminated, or NULL */
} pcapread_interface_t;

/* An EPB, SPB, obsolete Packet Block, or classic pcap record. */
typedef struct pcapread_packet {
    uint64_t frame;      /* 1-based over the file, as Wireshark numbers frames */
    uint32_t ifid;       /* file-wide interface id (pcapread_interface_t.id) */
    uint16_t linktype;   /* the interface's link type */
    uint64_t ts_ns;      /* nanoseconds since the epoch (0 for an SPB, which has none);
                            saturates instead of wrapping */
    const uint8_t *data; /* caplen bytes, unaligned */
    uint32_t caplen;
    uint32_t origlen;    /* length on the wire */
    const char *comment; /* first opt_comment, NUL-terminated, or NULL */
    size_t comment_len;  /* its length in bytes (it may hold a NUL itself) */
    uint32_t flags;      /* epb_flags / pack_flags, 0 when absent */
    uint64_t offset;     /* file offset of the block */
} pcapread_packet_t;

/*
 * Every member may be NULL. The int-returning ones return 0 to go on, or
 * non-zero (a negative errno) to stop the reader.
 * on_secrets: a Decryption Secrets Block: secrets type (PCAPREAD_SECRETS_TLS
 *   for a TLS key log), and its len bytes without the padding.
 * on_error: see above; the message has no newline.
 */
typedef struct pcapread_callbacks {
    int (*on_section)(void *opaque, const pcapread_section_t *s);
    int (*on_interface)(void *opaque, const pcapread_interface_t *ifc);
    int (*on_packet)(void *opaque, const pcapread_packet_t *pkt);
    int (*on_secrets)(void *opaque, uint32_t type, const uint8_t *data, size_t len);
    void (*on_error)(void *opaque, uint64_t offset, const char *msg);
} pcapread_callbacks_t;

/*
 * Creates a reader. cb is copied; opaque is passed to every callback.
 * Returns NULL and sets *err (-EINVAL, -ENOMEM) on failure, else sets *err = 0
 * (err may be NULL).
 */
pcapread_t *pcapread_new(const pcapread_callbacks_t *cb, void *opaque, int *err);

/* Frees the reader; calls nothing. pcapread_free(NULL) is a no-op. */
void pcapread_free(pcapread_t *r);

/*
 * Consumes len bytes (borrowed; may be 0) that follow the bytes fed before.
 * Returns 0, -EBADMSG (malformed input, reported through on_error), -ENOMEM,
 * -EINVAL (after pcapread_finish), or a callback's non-zero return value.
 */
int pcapread_feed(pcapread_t *r, const void *buf, size_t len);

/*
 * Declares the end of the input. Returns 0 when it ended on a block boundary;
 * -EBADMSG (with on_error at the offset of the cut block) when the input was
 * empty or ends inside a block; the reader's earlier error if it had one.
 * After it, pcapread_feed returns -EINVAL.
 */
int pcapread_finish(pcapread_t *r);

/* Packets delivered so far (the frame number of the last one). */
uint64_t pcapread_frames(const pcapread_t *r);

/* Bytes consumed so far: the file offset of the next block, or of the partial one. */
uint64_t pcapread_offset(const pcapread_t *r);

#endif
