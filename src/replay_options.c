/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "config.h"
#include "options.h"
#include "paths.h"
#include "priority.h"
#include "replay_options.h"

enum {
    OPT_CLIENT = 256,
    OPT_HAR,
    OPT_TO,
    OPT_CONCURRENCY,
    OPT_CGROUP,
    OPT_STRICT,
    OPT_IGNORE_PARAM,
    OPT_IGNORE_PAYLOAD_PARAM,
    OPT_IGNORE_BODY,
    OPT_IGNORE_HOST,
    OPT_IGNORE_PORT,
    OPT_USE_HEADER,
    OPT_NO_REUSE,
    OPT_UNMATCHED,
    OPT_RECORD_NEW,
    OPT_NO_REFRESH,
    OPT_REALTIME,
    OPT_REPORT,
    OPT_KEYLOG,
    OPT_CA,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_NICE,
};

static const struct option long_opts[] = {
    {"client", no_argument, NULL, OPT_CLIENT},
    {"output", required_argument, NULL, 'o'},
    {"har", required_argument, NULL, OPT_HAR},
    {"to", required_argument, NULL, OPT_TO},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"process", required_argument, NULL, 'p'},
    {"cgroup", required_argument, NULL, OPT_CGROUP},
    {"strict", no_argument, NULL, OPT_STRICT},
    {"ignore-param", required_argument, NULL, OPT_IGNORE_PARAM},
    {"ignore-payload-param", required_argument, NULL, OPT_IGNORE_PAYLOAD_PARAM},
    {"ignore-body", no_argument, NULL, OPT_IGNORE_BODY},
    {"ignore-host", no_argument, NULL, OPT_IGNORE_HOST},
    {"ignore-port", no_argument, NULL, OPT_IGNORE_PORT},
    {"use-header", required_argument, NULL, OPT_USE_HEADER},
    {"no-reuse", no_argument, NULL, OPT_NO_REUSE},
    {"unmatched", required_argument, NULL, OPT_UNMATCHED},
    {"record-new", required_argument, NULL, OPT_RECORD_NEW},
    {"no-refresh", no_argument, NULL, OPT_NO_REFRESH},
    {"realtime", no_argument, NULL, OPT_REALTIME},
    {"report", required_argument, NULL, OPT_REPORT},
    {"keylog", required_argument, NULL, OPT_KEYLOG},
    {"ca", required_argument, NULL, OPT_CA},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"nice", required_argument, NULL, OPT_NICE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

void replay_options_usage(FILE *f)
{
    fputs(
        "Usage: mitmreplay RECORDING [options] -- COMMAND [ARGS...]  (replay for a command)\n"
        "       mitmreplay RECORDING -p SPEC [--cgroup PATH] [options] (running processes)\n"
        "       mitmreplay --client RECORDING [-o NEW.pcapng] [--har NEW.har] [--to HOST:PORT]\n"
        "Serves what RECORDING (a pcapng or pcap with TLS secrets, or a HAR) recorded to the\n"
        "programs that connect, with no network: TLS is answered with forged certificates,\n"
        "HTTP/1.1 and HTTP/2 from the recorded responses, DNS from the recorded answers,\n"
        "other TCP as the recorded conversation. Exits with COMMAND's status.\n"
        "\n"
        "  -p, --process SPEC        replay for processes by NAME, PID, !NAME or !PID (until\n"
        "                            SIGINT; needs root and eBPF)\n"
        "      --cgroup PATH         only processes in this cgroup v2 subtree\n"
        "      --strict              exit non-zero when a request had no recorded response\n"
        "      --ignore-param NAME   leave the query parameter NAME out of matching (repeatable)\n"
        "      --ignore-payload-param NAME  the same for a form body's parameter\n"
        "      --ignore-body         bodies do not count when matching\n"
        "      --ignore-host         the host does not count\n"
        "      --ignore-port         the port does not count\n"
        "      --use-header NAME     the header NAME counts (repeatable; others do not)\n"
        "      --no-reuse            each recorded response answers once\n"
        "      --unmatched WHAT      404 (default; the body says what failed to match), 502,\n"
        "                            kill (reset the connection) or passthrough (go upstream)\n"
        "      --record-new FILE     with passthrough: record those flows to FILE.pcapng (+.har)\n"
        "      --no-refresh          keep Date, Expires, Last-Modified, cookie expiry as recorded\n"
        "      --realtime            keep the recorded delays (default: as fast as possible)\n"
        "      --report FILE         FILE.xml: JUnit XML, FILE.json: JSON (repeatable)\n"
        "      --keylog FILE         TLS secrets for a capture that has none inside\n"
        "      --ca FILE             CA key and certificate (default ~/.mitmrec/mitmrec-ca.pem)\n"
        "      --cacert FILE         trust FILE for upstream servers (client, passthrough)\n"
        "  -k, --insecure            do not verify upstream certificates\n"
        "      --nice N              run the replay server N steps of niceness from where\n"
        "                            mitmreplay started (default -5 when allowed; 0 leaves it)\n"
        "Client replay:\n"
        "      --client              send RECORDING's requests again and compare the responses\n"
        "  -o, --output FILE         record the new run to FILE.pcapng (and FILE.har)\n"
        "  -w FILE                   the same as -o\n"
        "      --har FILE            the new run's HAR\n"
        "      --to HOST:PORT        send every request there instead of its server\n"
        "      --concurrency N       requests in flight at once (default 1)\n"
        "  -q, --quiet               only errors and differences on stderr\n"
        "  -v, --verbose             log every request (-vv: and every connection)\n"
        "  -h, --help                this text\n"
        "  -V, --version             print the version\n",
        f);
}

static int add_list(const char **list, size_t *n, const char *v, const char *opt, char *err,
                    size_t errlen)
{
    if (*n == REPLAY_MAX_LIST) {
        snprintf(err, errlen, "too many %s (at most %d)", opt, REPLAY_MAX_LIST);
        return -EINVAL;
    }
    list[(*n)++] = v;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int replay_parse_to(const char *to, struct sockaddr_storage *out)
{
    const char *colon = strrchr(to, ':');
    char host[128], *end;
    size_t n;
    long port;

    if (!colon || (n = (size_t)(colon - to)) == 0 || n >= sizeof(host))
        return -EINVAL;
    memcpy(host, to, n);
    host[n] = '\0';
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = '\0';
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port <= 0 || port > 65535)
        return -EINVAL;
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) != 0 &&
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) != 0)
        return -EINVAL;
    return 0;
}

/* No output may be the recording, the key log or another output (src/paths.h). */
static int check_files(const replay_options_t *o, char *err, size_t errlen)
{
    path_use_t out[6], in[2];
    int nout = 0, nin = 0;

    in[nin++] = (path_use_t){"the recording", o->recording};
    if (o->keylog_path)
        in[nin++] = (path_use_t){"--keylog", o->keylog_path};
    if (o->out_path) {
        out[nout++] = (path_use_t){"-o", o->out_path};
        out[nout++] = (path_use_t){o->har_path ? "--har" : "the HAR of -o", o->out_har};
    }
    if (o->record_new) {
        out[nout++] = (path_use_t){"--record-new", o->record_new};
        out[nout++] = (path_use_t){"the HAR of --record-new", o->record_new_har};
    }
    if (o->report_xml)
        out[nout++] = (path_use_t){"--report", o->report_xml};
    if (o->report_json)
        out[nout++] = (path_use_t){"--report", o->report_json};
    return paths_check(out, nout, in, nin, err, errlen);
}

/* The first option given that only server replay uses (it would do nothing with --client). */
static const char *server_option(const replay_options_t *o)
{
    if (o->nignore_params)
        return "--ignore-param";
    if (o->nignore_payload_params)
        return "--ignore-payload-param";
    if (o->nuse_headers)
        return "--use-header";
    if (o->ignore_body)
        return "--ignore-body";
    if (o->ignore_host)
        return "--ignore-host";
    if (o->ignore_port)
        return "--ignore-port";
    if (o->no_reuse)
        return "--no-reuse";
    if (o->unmatched != UNMATCHED_404)
        return "--unmatched";
    if (o->record_new)
        return "--record-new";
    if (o->no_refresh)
        return "--no-refresh";
    if (o->realtime)
        return "--realtime";
    if (o->ca_file)
        return "--ca";
    if (o->cgroup)
        return "--cgroup";
    return NULL;
}

int replay_options_parse(replay_options_t *o, int argc, char **argv, char *err, size_t errlen)
{
    int c, rc, nargs = argc;
    char *end;
    long v;

    memset(o, 0, sizeof(*o));
    o->concurrency = 1;
    o->nice = PRIORITY_DEFAULT_ADJUST;
    /* Everything after "--" is the command; getopt sees only what comes before. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            nargs = i;
            if (i + 1 >= argc) {
                snprintf(err, errlen, "no command after '--'");
                return -EINVAL;
            }
            o->command = argv + i + 1;
            break;
        }
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(nargs, argv, ":o:w:p:kqvhV", long_opts, NULL)) != -1) {
        rc = 0;
        switch (c) {
        case OPT_CLIENT:
            o->mode = REPLAY_CLIENT;
            break;
        case 'o':
        case 'w':
            o->out_path = optarg;
            break; /* -w: tcpdump's and mitmdump's name */
        case OPT_HAR:
            o->har_path = optarg;
            break;
        case OPT_TO:
            o->to = optarg;
            break;
        case OPT_CONCURRENCY:
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1024) {
                snprintf(err, errlen, "invalid --concurrency '%s': expected 1 to 1024", optarg);
                return -EINVAL;
            }
            o->concurrency = (int)v;
            break;
        case 'p':
            rc = options_parse_process_specs(&o->rules, &o->nrules, optarg, err, errlen);
            break;
        case OPT_CGROUP:
            o->cgroup = optarg;
            break;
        case OPT_STRICT:
            o->strict = 1;
            break;
        case OPT_IGNORE_PARAM:
            rc = add_list(o->ignore_params, &o->nignore_params, optarg, "--ignore-param", err,
                          errlen);
            break;
        case OPT_IGNORE_PAYLOAD_PARAM:
            rc = add_list(o->ignore_payload_params, &o->nignore_payload_params, optarg,
                          "--ignore-payload-param", err, errlen);
            break;
        case OPT_USE_HEADER:
            rc = add_list(o->use_headers, &o->nuse_headers, optarg, "--use-header", err, errlen);
            break;
        case OPT_IGNORE_BODY:
            o->ignore_body = 1;
            break;
        case OPT_IGNORE_HOST:
            o->ignore_host = 1;
            break;
        case OPT_IGNORE_PORT:
            o->ignore_port = 1;
            break;
        case OPT_NO_REUSE:
            o->no_reuse = 1;
            break;
        case OPT_UNMATCHED:
            if (!strcmp(optarg, "404"))
                o->unmatched = UNMATCHED_404;
            else if (!strcmp(optarg, "502"))
                o->unmatched = UNMATCHED_502;
            else if (!strcmp(optarg, "kill"))
                o->unmatched = UNMATCHED_KILL;
            else if (!strcmp(optarg, "passthrough"))
                o->unmatched = UNMATCHED_PASSTHROUGH;
            else {
                snprintf(err, errlen,
                         "invalid --unmatched '%s': expected 404, 502, kill or "
                         "passthrough",
                         optarg);
                return -EINVAL;
            }
            break;
        case OPT_RECORD_NEW:
            o->record_new = optarg;
            break;
        case OPT_NO_REFRESH:
            o->no_refresh = 1;
            break;
        case OPT_REALTIME:
            o->realtime = 1;
            break;
        case OPT_REPORT:
            if (ends_with(optarg, ".xml")) {
                o->report_xml = optarg;
            } else if (ends_with(optarg, ".json")) {
                o->report_json = optarg;
            } else {
                snprintf(err, errlen,
                         "invalid --report '%s': the name must end in .xml (JUnit) "
                         "or .json",
                         optarg);
                return -EINVAL;
            }
            break;
        case OPT_KEYLOG:
            o->keylog_path = optarg;
            break;
        case OPT_CA:
            o->ca_file = optarg;
            break;
        case OPT_CACERT:
            rc = add_list(o->cacerts, &o->ncacerts, optarg, "--cacert", err, errlen);
            break;
        case 'k':
        case OPT_INSECURE:
            o->insecure = 1;
            break;
        case OPT_NICE:
            rc = priority_option(optarg, &o->nice, &o->nice_given, err, errlen);
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'v':
            o->verbose++;
            break;
        case 'h':
            replay_options_usage(stdout);
            return 1;
        case 'V':
            printf("mitmreplay %s\n", PACKAGE_VERSION);
            return 1;
        default: /* ':' or '?' */
            options_getopt_error(c, argv, err, errlen);
            return -EINVAL;
        }
        if (rc < 0)
            return rc;
    }
    if (optind >= nargs) {
        snprintf(err, errlen, "no recording given (see --help)");
        return -EINVAL;
    }
    if (optind + 1 < nargs) {
        snprintf(err, errlen, "unexpected argument '%s' (a command goes after '--')",
                 argv[optind + 1]);
        return -EINVAL;
    }
    o->recording = argv[optind];
    if (o->out_path && !o->har_path && paths_is_special(o->out_path)) {
        snprintf(err, errlen, "with -o %s (not a regular file) give --har FILE as well",
                 o->out_path);
        return -EINVAL;
    }
    if (o->record_new && paths_is_special(o->record_new)) {
        snprintf(err, errlen, "--record-new %s: not a regular file (its HAR goes beside it)",
                 o->record_new);
        return -EINVAL;
    }
    if (o->out_path &&
        !(o->out_har = o->har_path ? strdup(o->har_path) : paths_har_for(o->out_path)))
        return -ENOMEM;
    if (o->record_new && !(o->record_new_har = paths_har_for(o->record_new)))
        return -ENOMEM;
    if (o->mode == REPLAY_CLIENT) {
        const char *server_only = server_option(o);

        if (o->command || o->nrules) {
            snprintf(err, errlen, "--client sends the requests itself: no command or -p");
            return -EINVAL;
        }
        if (server_only) {
            snprintf(err, errlen, "%s goes with server replay (a command or -p), not --client",
                     server_only);
            return -EINVAL;
        }
        if (o->to) {
            struct sockaddr_storage ss;
            if (replay_parse_to(o->to, &ss) < 0) {
                snprintf(err, errlen,
                         "invalid --to '%s': expected ADDRESS:PORT (127.0.0.1:8443, "
                         "[::1]:8443, localhost:8443)",
                         o->to);
                return -EINVAL;
            }
        }
        return check_files(o, err, errlen);
    }
    if (o->out_path || o->har_path || o->to || o->concurrency != 1) {
        snprintf(err, errlen, "-o, --har, --to and --concurrency go with --client");
        return -EINVAL;
    }
    if (o->command && o->nrules) {
        snprintf(err, errlen, "give either -p or a command, not both");
        return -EINVAL;
    }
    if (o->command)
        o->mode = REPLAY_SPAWN;
    else if (o->nrules)
        o->mode = REPLAY_ATTACH;
    else {
        snprintf(err, errlen,
                 "nothing to replay for: give -- COMMAND, -p NAME or --client "
                 "(see --help)");
        return -EINVAL;
    }
    if (o->record_new && o->unmatched != UNMATCHED_PASSTHROUGH) {
        snprintf(err, errlen,
                 "--record-new records passthrough flows: give --unmatched "
                 "passthrough too");
        return -EINVAL;
    }
    return check_files(o, err, errlen);
}

void replay_options_free(replay_options_t *o)
{
    free(o->rules);
    free(o->out_har);
    free(o->record_new_har);
    o->rules = NULL;
    o->out_har = NULL;
    o->record_new_har = NULL;
}
