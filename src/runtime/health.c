/* health.c - `cdcflow health`: probe a running pipeline's /healthz and
 * /metrics and say in one line (and the exit code) whether it is well. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "util/buf.h"

#define BODY_CAP ((size_t)4 << 20)

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    cf_buf *b = opaque;
    return cf_buf_append(b, p, size * n, NULL) ? 0 : size * n;
}

/* GET url into b.  Returns the HTTP status, or -1 with why filled. */
static long http_get(const char *url, cf_buf *b, long timeout_s, char *why, size_t cap)
{
    CURL *c = curl_easy_init();
    CURLcode rc;
    long status = -1;

    if (!c) {
        snprintf(why, cap, "curl init failed");
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        snprintf(why, cap, "%s: %s", url, curl_easy_strerror(rc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* Value of an unlabelled sample `name`, or the sum over its label sets. */
static int metric(const char *text, const char *name, double *out)
{
    size_t n = strlen(name);
    const char *p = text;
    bool found = false;
    double sum = 0;

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        if (!strncmp(p, name, n) && (p[n] == ' ' || p[n] == '{')) {
            const char *v = p[n] == '{' ? strchr(p + n, '}') : p + n;
            if (v && (!eol || v < eol)) {
                sum += strtod(v + 1, NULL);
                found = true;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    if (found)
        *out = sum;
    return found ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cdcflow health [--url URL] [--max-lag N] [--max-age S] [--timeout S]\n"
            "\n"
            "Probe a running pipeline's metrics endpoint (/healthz and /metrics) and print\n"
            "a one-line summary.\n"
            "\n"
            "  --url URL      base URL of the endpoint (default http://127.0.0.1:9464;\n"
            "                 the iceberg pipeline listens on 9465)\n"
            "  --max-lag N    unhealthy when the consumer lag is above N messages\n"
            "  --max-age S    unhealthy when input waits (lag > 0) and the last commit\n"
            "                 is older than S seconds\n"
            "  --timeout S    HTTP timeout in seconds (default 5)\n"
            "\n"
            "Exit status: 0 healthy, 1 unhealthy, 2 unreachable (or bad usage).\n");
}

int cf_cmd_health(int argc, char **argv)
{
    static const struct option opts[] = {
        { "url", required_argument, 0, 'u' },
        { "max-lag", required_argument, 0, 'l' },
        { "max-age", required_argument, 0, 'a' },
        { "timeout", required_argument, 0, 't' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *base = "http://127.0.0.1:9464";
    double max_lag = -1, max_age = -1;
    long timeout = 5;
    char url[1024], why[512], reason[600] = "";
    cf_buf hb, mb;
    long hs, ms;
    int c, rc;
    double up = -1, lag = -1, version = -1, last = 0, events = 0, dlq = 0, batches = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'u': base = optarg; break;
        case 'l': max_lag = atof(optarg); break;
        case 'a': max_age = atof(optarg); break;
        case 't': timeout = atol(optarg) > 0 ? atol(optarg) : 5; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    /* Accept the base URL with or without a trailing slash or path. */
    snprintf(url, sizeof url, "%s", base);
    {
        size_t n = strlen(url);
        while (n && url[n - 1] == '/')
            url[--n] = '\0';
        if (n > 8 && !strcmp(url + n - 8, "/metrics"))
            url[n - 8] = '\0';
        else if (n > 8 && !strcmp(url + n - 8, "/healthz"))
            url[n - 8] = '\0';
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cf_buf_init(&hb, BODY_CAP);
    cf_buf_init(&mb, BODY_CAP);
    {
        char u[1100];
        snprintf(u, sizeof u, "%s/healthz", url);
        hs = http_get(u, &hb, timeout, why, sizeof why);
        if (hs >= 0) {
            snprintf(u, sizeof u, "%s/metrics", url);
            ms = http_get(u, &mb, timeout, why, sizeof why);
        } else {
            ms = -1;
        }
    }
    if (hs < 0 || ms != 200) {
        if (ms >= 0)
            snprintf(why, sizeof why, "%.400s/metrics: HTTP %ld", url, ms);
        printf("unreachable: %s\n", why);
        rc = 2;
        goto out;
    }
    {
        const char *text = cf_buf_cstr(&mb, NULL);
        const char *htext = cf_buf_cstr(&hb, NULL);
        if (!text || !htext) {
            printf("unreachable: response too big\n");
            rc = 2;
            goto out;
        }
        metric(text, "cdcflow_up", &up);
        metric(text, "cdcflow_consumer_lag", &lag);
        metric(text, "cdcflow_table_version", &version);
        metric(text, "cdcflow_last_commit_timestamp_seconds", &last);
        metric(text, "cdcflow_dead_letter_total", &dlq);
        metric(text, "cdcflow_batches_total", &batches);
        if (!metric(text, "cdcflow_events_total", &events)) {
            double tomb = 0;
            /* Tombstones are messages, not row events. */
            const char *t = strstr(text, "op=\"tombstone\"} ");
            if (t)
                tomb = strtod(t + 16, NULL);
            events -= tomb;
        }
        if (hs != 200) {
            size_t n = strcspn(htext, "\n");
            snprintf(reason, sizeof reason, "%.*s", (int)(n < 400 ? n : 400), htext);
        } else if (max_lag >= 0 && lag > max_lag) {
            snprintf(reason, sizeof reason, "lag %.0f above %.0f", lag, max_lag);
        } else if (max_age >= 0 && lag != 0) {
            double age = last > 0 ? (double)time(NULL) - last : -1;
            if (age < 0 || age > max_age)
                snprintf(reason, sizeof reason, "last commit %s (max %.0f s) with lag %.0f",
                         age < 0 ? "never" : "too old", max_age, lag);
        }
    }
    {
        char age[32];
        if (last > 0)
            snprintf(age, sizeof age, "%lds ago", (long)((double)time(NULL) - last > 0 ? (double)time(NULL) - last : 0));
        else
            snprintf(age, sizeof age, "never");
        printf("%s%s%s up=%.0f lag=%.0f version=%.0f last_commit=%s events=%.0f dead_letter=%.0f batches=%.0f\n",
               reason[0] ? "unhealthy: " : "healthy:", reason, reason[0] ? ";" : "", up, lag, version, age,
               events, dlq, batches);
    }
    rc = reason[0] ? 1 : 0;
out:
    cf_buf_free(&hb);
    cf_buf_free(&mb);
    curl_global_cleanup();
    return rc;
}
