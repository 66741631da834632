/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "options.h"
#include "paths.h"
#include "priority.h"

enum {
    OPT_LISTEN = 256,
    OPT_HAR,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_CA,
    OPT_KEYLOG,
    OPT_UPSTREAM,
    OPT_MAX_BODY,
    OPT_CGROUP,
    OPT_IGNORE_HOSTS,
    OPT_NO_STATUS,
    OPT_REPAIR_HAR,
    OPT_NICE,
    OPT_ALLOW_QUIC,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"output", required_argument, NULL, 'o'},
    {"har", required_argument, NULL, OPT_HAR},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"ca", required_argument, NULL, OPT_CA},
    {"keylog", required_argument, NULL, OPT_KEYLOG},
    {"upstream", no_argument, NULL, OPT_UPSTREAM},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"process", required_argument, NULL, 'p'},
    {"read", required_argument, NULL, 'r'},
    {"filter", required_argument, NULL, 'f'},
    {"cgroup", required_argument, NULL, OPT_CGROUP},
    {"ignore-hosts", required_argument, NULL, OPT_IGNORE_HOSTS},
    {"allow-quic", no_argument, NULL, OPT_ALLOW_QUIC},
    {"no-status", no_argument, NULL, OPT_NO_STATUS},
    {"repair-har", required_argument, NULL, OPT_REPAIR_HAR},
    {"nice", required_argument, NULL, OPT_NICE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

void options_usage(FILE *f)
{
    fputs("Usage: mitmrec -p SPEC[,SPEC...] -o FILE.pcapng [options]      (running processes)\n"
          "       mitmrec -o FILE.pcapng [options] -- COMMAND [ARGS...]     (a command)\n"
          "       mitmrec --listen [ADDR:]PORT -o FILE.pcapng [options]      (explicit proxy)\n"
          "Records what programs say on the network: TLS is intercepted, the pcapng carries\n"
          "its secrets and names each packet's process, and a HAR 1.2 file is written beside it.\n"
          "\n"
          "  -p, --process SPEC    intercept processes by NAME, PID, !NAME or !PID (repeatable,\n"
          "                        comma-separated, read left to right; needs root and eBPF)\n"
          "      --cgroup PATH     only processes in this cgroup v2 subtree\n"
          "      --ignore-hosts CIDR  leave these destinations alone (repeatable)\n"
          "      --allow-quic      relay QUIC (UDP port 443) undecrypted; by default it is\n"
          "                        refused, so browsers use TLS over TCP, which is recorded\n"
          "  -- COMMAND [ARGS]     run COMMAND in a cgroup of its own and record it and its\n"
          "                        children; exit with its status\n"
          "  -r FILE               read a pcapng or pcap (gzipped or not; '-' for stdin) with\n"
          "                        TLS secrets (its DSBs and/or --keylog) and write its HTTP\n"
          "                        as a HAR (--har, -o optional)\n"
          "  -f EXPR               a tcpdump filter: the flows recorded (whole, when one of\n"
          "                        their opening packets matches), or the packets read (-r)\n"
          "      --repair-har FILE  close a HAR (or .har.gz) cut short by a crash, keeping its\n"
          "                        entries\n"
          "  --listen [ADDR:]PORT  serve as an explicit HTTP proxy (CONNECT and absolute-form);\n"
          "                        ADDR defaults to 127.0.0.1, PORT 0 picks a free port\n"
          "  -o, --output FILE     pcapng to write ('-' for stdout, '.gz' for gzip)\n"
          "  -w FILE               the same as -o (tcpdump's and mitmdump's name for it)\n"
          "      --har FILE        HAR to write (default: FILE.pcapng with .har)\n"
          "      --upstream        also record the server-side TLS session (interface 1)\n"
          "      --keylog FILE     append TLS secrets in NSS key log format (with -r: read them)\n"
          "      --cacert FILE     trust FILE's certificates for upstream servers (repeatable)\n"
          "  -k, --insecure        do not verify upstream certificates\n"
          "      --ca FILE         CA key and certificate (default ~/.mitmrec/mitmrec-ca.pem)\n"
          "      --max-body BYTES  keep at most BYTES of each body in the HAR (default 16M)\n"
          "  -q, --quiet           only errors on stderr (no status line, no summary)\n"
          "      --no-status       no live status line\n"
          "      --nice N          run the relay N steps of niceness from where mitmrec\n"
          "                        started (default -5 when allowed; 0 leaves it; the\n"
          "                        command keeps the niceness mitmrec started with)\n"
          "  -v, --verbose         log every flow (-vv: and more on each)\n"
          "  -h, --help            this text\n"
          "  -V, --version         print the version\n"
          "\n"
          "Bodies being received wait past 64 KiB in an unlinked file in $TMPDIR (or /tmp).\n",
          f);
}

/* "[ADDR:]PORT", "[v6addr]:PORT" or "PORT". */
static int parse_listen(options_t *o, const char *arg, char *err, size_t errlen)
{
    const char *colon = strrchr(arg, ':');
    const char *port = arg;
    char *end;
    long p;

    if (colon) {
        size_t hlen = (size_t)(colon - arg);
        const char *host = arg;
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            host++;
            hlen -= 2;
        }
        if (hlen == 0 || hlen >= sizeof(o->listen_host))
            goto bad;
        memcpy(o->listen_host, host, hlen);
        o->listen_host[hlen] = '\0';
        o->listen_host_given = 1;
        /* The one name taken, without asking a resolver: the loopback address. */
        if (strcasecmp(o->listen_host, "localhost") == 0)
            strcpy(o->listen_host, "127.0.0.1");
        {
            unsigned char a[16];
            if (inet_pton(AF_INET, o->listen_host, a) != 1 &&
                inet_pton(AF_INET6, o->listen_host, a) != 1) {
                snprintf(err, errlen,
                         "invalid --listen address '%s': give an IPv4 or IPv6 "
                         "address",
                         o->listen_host);
                return -EINVAL;
            }
        }
        port = colon + 1;
    }
    errno = 0;
    p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || errno || p < 0 || p > 65535)
        goto bad;
    o->listen_port = (int)p;
    o->listen_given = 1;
    return 0;
bad:
    snprintf(err, errlen, "invalid --listen '%s': expected [ADDR:]PORT", arg);
    return -EINVAL;
}

static int parse_size(const char *arg, size_t *out)
{
    char *end;
    unsigned long long v;
    int shift = 0;

    if (*arg < '0' || *arg > '9') /* (strtoull would take " 5", "+5" and "-5") */
        return -EINVAL;
    errno = 0;
    v = strtoull(arg, &end, 10);
    if (end == arg || errno)
        return -EINVAL;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (*end != '\0' || v > (SIZE_MAX >> shift))
        return -EINVAL;
    v <<= shift;
    *out = (size_t)v;
    return 0;
}

/* Linux's PID_MAX_LIMIT: no PID is larger. */
#define PID_LIMIT 4194304ul

int options_parse_process_specs(redirect_rule_t **rules, size_t *nrules, const char *arg, char *err,
                                size_t errlen)
{
    const char *p = arg;

    while (*p) {
        size_t n = strcspn(p, ","), len = n;
        const char *s = p;
        redirect_rule_t r, *more;
        unsigned long pid;
        char *end;

        memset(&r, 0, sizeof(r));
        if (len && s[0] == '!') {
            r.exclude = 1;
            s++;
            len--;
        }
        if (len == 0 || len >= sizeof(r.name) || memchr(s, '/', len)) {
            snprintf(err, errlen, "invalid -p '%.*s': expected NAME, PID, !NAME or !PID", (int)n,
                     p);
            return -EINVAL;
        }
        memcpy(r.name, s, len);
        r.name[len] = '\0';
        /* All digits is a PID, and must be one a process can have. */
        if (strspn(r.name, "0123456789") == len) {
            errno = 0;
            pid = strtoul(r.name, &end, 10);
            if (errno || pid == 0 || pid > PID_LIMIT) {
                snprintf(err, errlen, "invalid -p '%.*s': no process has PID %s", (int)n, p,
                         r.name);
                return -EINVAL;
            }
            r.pid = (uint32_t)pid;
            r.name[0] = '\0';
        }
        if (*nrules == REDIRECT_MAX_RULES) {
            snprintf(err, errlen, "too many -p rules (at most %d)", REDIRECT_MAX_RULES);
            return -EINVAL;
        }
        if (!(more = realloc(*rules, (*nrules + 1) * sizeof(*more))))
            return -ENOMEM;
        *rules = more;
        (*rules)[(*nrules)++] = r;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* The first option given that only live recording uses (it would do nothing with -r). */
static const char *live_option(const options_t *o)
{
    if (o->upstream)
        return "--upstream";
    if (o->ncacerts)
        return "--cacert";
    if (o->insecure)
        return "--insecure";
    if (o->ca_file)
        return "--ca";
    if (o->cgroup)
        return "--cgroup";
    if (o->nignore)
        return "--ignore-hosts";
    if (o->allow_quic)
        return "--allow-quic";
    return NULL;
}

/* No output may be an input (opening it would empty it first) or another output. With -r,
   --keylog is read; otherwise it is written. */
static int check_files(const options_t *o, char *err, size_t errlen)
{
    path_use_t out[3], in[2];
    int nout = 0, nin = 0;

    if (o->out_path)
        out[nout++] = (path_use_t){"-o", o->out_path};
    out[nout++] = (path_use_t){"--har", o->har_path};
    if (o->read_path) {
        in[nin++] = (path_use_t){"-r", o->read_path};
        if (o->keylog_path)
            in[nin++] = (path_use_t){"--keylog", o->keylog_path};
    } else if (o->keylog_path) {
        out[nout++] = (path_use_t){"--keylog", o->keylog_path};
    }
    return paths_check(out, nout, in, nin, err, errlen);
}

void options_getopt_error(int c, char *const *argv, char *err, size_t errlen)
{
    /* The argument getopt was at: a long option is named as typed ("--output", not the
       '-o' it stands for); a short one by optopt, which may sit inside a cluster. */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    const char *eq = strchr(arg, '=');
    int is_long = strncmp(arg, "--", 2) == 0;

    if (c == ':' && !is_long && optopt > 0 && optopt < 256)
        snprintf(err, errlen, "option '-%c' needs an argument", optopt);
    else if (c == ':')
        snprintf(err, errlen, "option '%s' needs an argument", arg);
    else if (is_long && eq && optopt)
        snprintf(err, errlen, "option '%.*s' takes no argument", (int)(eq - arg), arg);
    else if (!is_long && optopt > 0 && optopt < 256)
        snprintf(err, errlen, "unknown option '-%c' (see --help)", optopt);
    else
        snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
}

int options_parse(options_t *o, int argc, char **argv, char *err, size_t errlen)
{
    int c, rc;

    memset(o, 0, sizeof(*o));
    strcpy(o->listen_host, "127.0.0.1");
    o->max_body = 16u << 20;
    opterr = 0;
    optind = 1;
    o->status_line = -1;
    o->nice = PRIORITY_DEFAULT_ADJUST;
    while ((c = getopt_long(argc, argv, "+:o:w:p:r:f:kqvhV", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            if ((rc = parse_listen(o, optarg, err, errlen)) < 0)
                return rc;
            break;
        case 'o':
        case 'w': /* tcpdump's and mitmdump's name for it */
            o->out_path = optarg;
            break;
        case OPT_HAR:
            free(o->har_path);
            if (!(o->har_path = strdup(optarg)))
                return -ENOMEM;
            break;
        case OPT_CACERT: {
            const char **n = realloc(o->cacerts, (o->ncacerts + 1) * sizeof(*n));
            if (!n)
                return -ENOMEM;
            o->cacerts = n;
            o->cacerts[o->ncacerts++] = optarg;
            break;
        }
        case 'k':
        case OPT_INSECURE:
            o->insecure = 1;
            break;
        case OPT_CA:
            o->ca_file = optarg;
            break;
        case OPT_KEYLOG:
            o->keylog_path = optarg;
            break;
        case OPT_UPSTREAM:
            o->upstream = 1;
            break;
        case OPT_MAX_BODY:
            /* (0 would be taken for the default by formats/: said, not done silently) */
            if (parse_size(optarg, &o->max_body) < 0 || o->max_body == 0) {
                snprintf(err, errlen,
                         "invalid --max-body '%s': expected a size of 1 byte or more, like 16M",
                         optarg);
                return -EINVAL;
            }
            break;
        case 'p':
            if ((rc = options_parse_process_specs(&o->rules, &o->nrules, optarg, err, errlen)) < 0)
                return rc;
            break;
        case 'r':
            o->read_path = optarg;
            break;
        case 'f':
            o->filter = optarg;
            break;
        case OPT_CGROUP:
            o->cgroup = optarg;
            break;
        case OPT_IGNORE_HOSTS: {
            const char **n;
            if (redirect_cidr_check(optarg) < 0) {
                snprintf(err, errlen,
                         "invalid --ignore-hosts '%s': expected an IPv4 or IPv6 "
                         "address or CIDR (10.0.0.0/8, ::1)",
                         optarg);
                return -EINVAL;
            }
            n = realloc(o->ignore, (o->nignore + 1) * sizeof(*n));
            if (!n)
                return -ENOMEM;
            o->ignore = n;
            o->ignore[o->nignore++] = optarg;
            break;
        }
        case OPT_ALLOW_QUIC:
            o->allow_quic = 1;
            break;
        case OPT_REPAIR_HAR:
            o->repair_path = optarg;
            break;
        case OPT_NICE:
            if ((rc = priority_option(optarg, &o->nice, &o->nice_given, err, errlen)) < 0)
                return rc;
            break;
        case OPT_NO_STATUS:
            o->status_line = 0;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'v':
            o->verbose++;
            break;
        case 'h':
            options_usage(stdout);
            return 1;
        case 'V':
            printf("mitmrec %s\n", PACKAGE_VERSION);
            return 1;
        default: /* ':' or '?' */
            options_getopt_error(c, argv, err, errlen);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        if (optind == 0 || strcmp(argv[optind - 1], "--") != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (a command goes after '--')",
                     argv[optind]);
            return -EINVAL;
        }
        o->command = argv + optind;
    } else if (optind > 0 && optind <= argc && strcmp(argv[optind - 1], "--") == 0) {
        snprintf(err, errlen, "no command after '--'");
        return -EINVAL;
    }
    if (o->repair_path) {
        o->mode = MODE_REPAIR;
        return 0;
    }
    if (o->read_path) {
        const char *live = live_option(o);

        if (o->listen_given || o->nrules || o->command) {
            snprintf(err, errlen, "-r cannot be combined with --listen, -p or a command");
            return -EINVAL;
        }
        if (live) {
            snprintf(err, errlen, "%s goes with live recording (--listen, -p or a command), not -r",
                     live);
            return -EINVAL;
        }
        o->mode = MODE_READ;
        if (!o->har_path) {
            if (strcmp(o->read_path, "-") == 0) {
                snprintf(err, errlen, "with -r - give --har FILE");
                return -EINVAL;
            }
            if (!(o->har_path = paths_har_for(o->read_path)))
                return -ENOMEM;
        }
        return check_files(o, err, errlen);
    }
    if (o->listen_given && (o->nrules || o->command)) {
        snprintf(err, errlen, "--listen cannot be combined with -p or a command");
        return -EINVAL;
    }
    if (o->listen_given) {
        o->mode = MODE_LISTEN;
    } else if (o->command) {
        o->mode = MODE_SPAWN;
    } else if (o->nrules) {
        o->mode = MODE_ATTACH;
    } else {
        snprintf(err, errlen,
                 "nothing to record: give -p NAME, -- COMMAND or --listen PORT "
                 "(see --help)");
        return -EINVAL;
    }
    if (o->cgroup && o->mode == MODE_LISTEN) {
        snprintf(err, errlen, "--cgroup goes with -p or a command, not --listen");
        return -EINVAL;
    }
    if (o->nignore && o->mode == MODE_LISTEN) {
        /* An explicit proxy's clients chose it: there is no redirect to leave out. */
        snprintf(err, errlen, "--ignore-hosts goes with -p or a command, not --listen");
        return -EINVAL;
    }
    if (o->allow_quic && o->mode == MODE_LISTEN) {
        /* A proxy's clients send it no UDP. */
        snprintf(err, errlen, "--allow-quic goes with -p or a command, not --listen");
        return -EINVAL;
    }
    if (!o->out_path) {
        snprintf(err, errlen, "no output file: give -o FILE.pcapng");
        return -EINVAL;
    }
    if (!o->har_path) {
        if (strcmp(o->out_path, "-") == 0) {
            snprintf(err, errlen, "with -o - give --har FILE as well");
            return -EINVAL;
        }
        if (paths_is_special(o->out_path)) {
            snprintf(err, errlen, "with -o %s (not a regular file) give --har FILE as well",
                     o->out_path);
            return -EINVAL;
        }
        if (!(o->har_path = paths_har_for(o->out_path)))
            return -ENOMEM;
    }
    return check_files(o, err, errlen);
}

void options_free(options_t *o)
{
    free(o->rules);
    free(o->ignore);
    o->rules = NULL;
    o->ignore = NULL;
    free(o->har_path);
    free(o->cacerts);
    o->har_path = NULL;
    o->cacerts = NULL;
}
