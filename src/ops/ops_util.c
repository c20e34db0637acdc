/* ops_util.c - option parsing, clock and PRNG shared by the operator kit. */
#include "ops/ops.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cf_ops_opt(int argc, char **argv, int *i, const char *name, const char **val, cf_err *err)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;                   /* --tables is not --table */
    if (*i + 1 >= argc)
        return cf_err_set(err, CF_E_ARG, "option %s needs a value", name);
    *val = argv[++*i];
    return 1;
}

int cf_ops_parse_i64(const char *s, const char *what, int64_t lo, int64_t hi,
                     int64_t *out, cf_err *err)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return cf_err_set(err, CF_E_ARG, "%s: '%s' is not an integer", what, s);
    if (v < lo || v > hi)
        return cf_err_set(err, CF_E_ARG, "%s: %lld is out of range [%lld, %lld]", what, v,
                          (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int cf_ops_parse_double(const char *s, const char *what, double lo, double hi,
                        double *out, cf_err *err)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (!*s || *end || errno || isnan(v))
        return cf_err_set(err, CF_E_ARG, "%s: '%s' is not a number", what, s);
    if (v < lo || v > hi)
        return cf_err_set(err, CF_E_ARG, "%s: %g is out of range [%g, %g]", what, v, lo, hi);
    *out = v;
    return 0;
}

const char *cf_ops_env(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

double cf_ops_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64 and xoshiro256** as published by Vigna and Blackman
 * (prng.di.unimi.it); written here from the algorithm description. */
uint64_t cf_ops_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cf_ops_rng_seed(cf_ops_rng *r, uint64_t seed)
{
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = cf_ops_splitmix64(&sm);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t cf_ops_rng_next(cf_ops_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t cf_ops_rng_below(cf_ops_rng *r, uint64_t n)
{
    uint64_t x, limit;

    if (n == 0)
        return 0;
    /* Reject the top sliver that would make small values likelier. */
    limit = UINT64_MAX - UINT64_MAX % n;
    do
        x = cf_ops_rng_next(r);
    while (x >= limit);
    return x % n;
}

double cf_ops_rng_unit(cf_ops_rng *r)
{
    return (double)(cf_ops_rng_next(r) >> 11) * 0x1.0p-53;
}

bool cf_ops_rng_chance(cf_ops_rng *r, double p)
{
    return cf_ops_rng_unit(r) < p;
}
